"""Treatment resistance and suicidality (rulebook §10), the UK traffic lights (§3) and a
failed FHIR query."""

from __future__ import annotations

from smartapp.synthetic import builders as b
from smartapp.synthetic import clinic as c
from smartapp.synthetic.builders import Json
from smartapp.synthetic.chart import Chart, Dose
from smartapp.synthetic.scenario import scenario


def _checked(chart: Chart) -> None:
    """Recent weight, glucose and lipids, as any antipsychotic clinic records."""
    chart.weight(-20, 84.2)
    chart.metabolic_panel(-60)


def _risperidone(chart: Chart, mg_per_dose: float, start: int, end: int | None) -> Json:
    medication = c.ingredient(f"Risperidone {mg_per_dose:g} mg oral tablet", "risperidone")
    return c.drug_order(chart, medication, mg_per_dose, 2, start, end)


@scenario(
    "trs-met-third-antipsychotic",
    "Risperidone 8 mg/day for 10 weeks (94 % of days dispensed) and haloperidol decanoate "
    "300 mg every 4 weeks for 10 months (every injection given), PANSS unchanged; aripiprazole "
    "is now ordered: treatment resistance met, consider clozapine",
    ("trs-met",),
)
def trs_met(chart: Chart) -> None:
    c.schizophrenia(chart, -1500, "paranoid-schizophrenia")
    risperidone = _risperidone(chart, 4, -420, -350)
    for day in (-420, -388, -356):
        c.dispense(chart, risperidone, day, 30, 2)
    lai_text = "Haloperidol decanoate 100 mg/mL intramuscular injection"
    medication = c.ingredient(lai_text, "haloperidol")
    dosage = b.dosage(
        "300 mg intramuscularly every 4 weeks",
        b.quantity(300, "mg"),
        b.timing(chart.day(-300), frequency=1, period=4, period_unit="wk"),
        route="im",
    )
    lai = chart.order(medication, [dosage], authored=-300, status="active")
    for day in range(-300, 0, 28):
        chart.add(
            b.medication_administration(
                chart.new_id("admin"),
                chart.subject,
                medication,
                when=chart.at(day, 11),
                dose=b.quantity(300, "mg"),
                request=b.reference(lai),
            )
        )
    for day, total in ((-421, 98), (-351, 95), (-301, 96), (-150, 94), (-10, 95)):
        chart.panss(day, total)
    _checked(chart)
    aripiprazole = c.ingredient("Aripiprazole 15 mg oral tablet", "aripiprazole")
    c.drug_order(chart, aripiprazole, 15, 1, 0, draft=True)


@scenario(
    "trs-possible-no-dispensing",
    "Risperidone 8 mg/day for 10 weeks, then quetiapine 800 mg/day for 57 weeks, no "
    "dispensing records or ratings; olanzapine is now ordered: adherence not documented, "
    "TRS possible",
    ("trs-possible",),
)
def trs_possible(chart: Chart) -> None:
    c.schizophrenia(chart, -1400)
    _risperidone(chart, 4, -500, -430)
    quetiapine = c.ingredient("Quetiapine 400 mg oral tablet", "quetiapine")
    c.drug_order(chart, quetiapine, 400, 2, -400)
    _checked(chart)
    olanzapine = c.ingredient("Olanzapine 20 mg oral tablet", "olanzapine")
    c.drug_order(chart, olanzapine, 20, 1, 0, draft=True)


@scenario(
    "trs-not-met",
    "Risperidone only 4 mg/day (400 mg chlorpromazine equivalents) and olanzapine stopped "
    "after 3 weeks; quetiapine is ordered: fewer than two adequate trials",
    ("trs-not-met",),
)
def trs_not_met(chart: Chart) -> None:
    c.schizophrenia(chart, -900)
    risperidone = _risperidone(chart, 2, -400, -300)
    for day in (-400, -370, -340, -310):
        c.dispense(chart, risperidone, day, 30, 2)
    olanzapine = c.ingredient("Olanzapine 20 mg oral tablet", "olanzapine")
    c.drug_order(chart, olanzapine, 20, 1, -250, -229)
    _checked(chart)
    quetiapine = c.ingredient("Quetiapine 300 mg oral tablet", "quetiapine")
    c.drug_order(chart, quetiapine, 300, 2, 0, draft=True)


@scenario(
    "suicidality-not-on-clozapine",
    "Schizoaffective disorder with two suicide attempts this year, on risperidone, never on "
    "clozapine: clozapine reduces recurrent suicidal behaviour",
    ("clozapine-suicidality-indication",),
)
def suicidality(chart: Chart) -> None:
    c.schizophrenia(chart, -2000, "schizoaffective")
    chart.diagnosis("suicide-attempt", -240)
    chart.diagnosis("suicide-attempt", -45)
    _risperidone(chart, 2, -200, None)
    _checked(chart)


def _uk(chart: Chart, weeks: int, last: int) -> int:
    """A UK patient with full blood counts (WBC and neutrophils, 10^9/L) up to ``last``."""
    return c.clozapine_patient(
        chart, weeks=weeks, dose=Dose("100", 2), last_anc=last, with_wbc=True
    )


@scenario(
    "uk-green",
    "UK, two years on clozapine: WBC and neutrophils in range: green, continue; a cancelled "
    "carbamazepine order must be ignored",
    ("fbc-green",),
    profile="uk-mhra",
)
def uk_green(chart: Chart) -> None:
    _uk(chart, 100, -8)
    medication = c.ingredient("Carbamazepine 200 mg oral tablet", "carbamazepine")
    c.drug_order(chart, medication, 200, 2, -30)["status"] = "cancelled"


@scenario(
    "uk-amber",
    "UK, week 30: WBC 3.2 and neutrophils 1.7 x10^9/L: amber, full blood count twice weekly",
    ("fbc-amber",),
    profile="uk-mhra",
)
def uk_amber(chart: Chart) -> None:
    _uk(chart, 30, -14)
    chart.wbc(0, 3.2)
    chart.anc(0, 1.7)


@scenario(
    "uk-red",
    "UK, week 17: amber yesterday, today WBC 2.7 and neutrophils 1.2 x10^9/L: red, stop "
    "clozapine, daily counts",
    ("fbc-red",),
    profile="uk-mhra",
)
def uk_red(chart: Chart) -> None:
    _uk(chart, 17, -7)
    chart.wbc(-1, 3.1)
    chart.anc(-1, 1.6)
    chart.wbc(0, 2.7)
    chart.anc(0, 1.2)


@scenario(
    "data-unavailable-observation-timeout",
    "Two years on clozapine; the Observation search timed out (OperationOutcome in the "
    "searchset): nothing can be said about the ANC",
    ("data-unavailable",),
    kind="searchset",
    note="The Bundle carries an OperationOutcome (search.mode 'outcome', issue code 'timeout') "
    "for the failed Observation query; the record assembler turns it into "
    "PatientRecord.unavailable, which produces data-unavailable. With no Observations the ANC "
    "rules may add anc-missing as well.",
)
def data_unavailable(chart: Chart) -> None:
    c.clozapine_patient(chart, weeks=104, dose=Dose("100", 2), last_anc=None)
    chart.resources = [r for r in chart.resources if r["resourceType"] != "Observation"]
    outcome = chart.add(
        b.operation_outcome(
            chart.new_id("outcome"),
            "timeout",
            f"Observation?patient={chart.name}: the FHIR server did not answer within 10 s",
        )
    )
    chart.search_modes[b.reference(outcome)] = "outcome"
