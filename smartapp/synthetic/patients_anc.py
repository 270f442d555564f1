"""ANC scenarios, US profile: baseline eligibility, the general and BEN tables, the
24-hour repeat, due dates, missing counts and restarted schedules (rulebook §1-2)."""

from __future__ import annotations

from smartapp.synthetic import builders as b
from smartapp.synthetic import clinic as c
from smartapp.synthetic import terms
from smartapp.synthetic.builders import Json
from smartapp.synthetic.chart import Chart, Dose
from smartapp.synthetic.scenario import scenario

START_DOSE = Dose("12.5-odt", 1, "QD")  # label: 12.5 mg once or twice daily on day 1


def _new_start(chart: Chart, anc: float | None, dose: Dose = START_DOSE) -> None:
    """Order-sign for a first clozapine course: draft clozapine and laxative orders."""
    c.schizophrenia(chart, -2400, "paranoid-schizophrenia")
    c.new_start_workup(chart, anc=anc)
    c.clozapine_order(chart, dose, 0, draft=True)
    c.laxative(chart, 0, draft=True)


@scenario(
    "new-start-baseline-ok",
    "First clozapine order (12.5 mg at night) with a baseline ANC of 3,400 two days ago: "
    "eligible to start",
    ("anc-normal",),
)
def new_start_baseline_ok(chart: Chart) -> None:
    _new_start(chart, anc=3.4)


@scenario(
    "new-start-baseline-missing",
    "First clozapine order drafted, but no ANC has ever been drawn: baseline missing",
    ("anc-baseline-missing",),
)
def new_start_baseline_missing(chart: Chart) -> None:
    _new_start(chart, anc=None)


@scenario(
    "new-start-baseline-low",
    "First clozapine order drafted; baseline ANC 1,300/uL is below 1,500: starting not recommended",
    ("anc-baseline-low",),
)
def new_start_baseline_low(chart: Chart) -> None:
    c.schizophrenia(chart, -2000)
    c.new_start_workup(chart, anc=None)
    chart.anc(-2, 1300, "/uL")
    c.clozapine_order(chart, START_DOSE, 0, draft=True)
    c.laxative(chart, 0, draft=True)


@scenario(
    "titration-start-100mg",
    "New clozapine course ordered at 50 mg twice daily (100 mg/day) on day 1: the label "
    "starts at 12.5 mg",
    ("titration-start-dose", "anc-normal"),
)
def titration_start_100mg(chart: Chart) -> None:
    _new_start(chart, anc=3.6, dose=Dose("50", 1, "BID"))


def _ben(chart: Chart, text: str, weeks: int, baselines: tuple[float, float]) -> int:
    """A BEN patient on clozapine with two baseline ANCs (rulebook §2.1) and weekly counts in
    the BEN normal range up to a week ago."""
    start = -weeks * 7
    chart.text_condition(text, start - 400)
    c.schizophrenia(chart, start - 1200)
    chart.anc(start - 10, baselines[0])
    chart.anc(start - 3, baselines[1])
    c.clozapine_course(chart, start, Dose("100", 2))
    c.anc_series(chart, start, -7, normal=(1.1, 1.6), baseline=False)
    c.myocarditis_monitoring(chart, start)
    c.metabolic_monitoring(chart, start)
    c.laxative(chart, start + 1)
    return start


@scenario(
    "ben-two-baselines-neutropenia",
    "Benign ethnic neutropenia (two baselines 1,150 and 1,100), week 16: ANC 880 then 860 "
    "confirmed within 24 h: BEN neutropenia, continue with three-times-weekly counts",
    ("anc-ben-neutropenia",),
)
def ben_neutropenia(chart: Chart) -> None:
    _ben(chart, "Benign ethnic neutropenia", 16, (1.15, 1.1))
    chart.anc(-1, 0.88, hour=8)
    chart.anc(0, 0.86, hour=7, minute=30)


@scenario(
    "ben-severe",
    "Duffy-null associated neutrophil count (BEN), week 20: ANC 620 then 450 within 24 h: "
    "BEN severe neutropenia, interrupt clozapine",
    ("anc-ben-severe",),
)
def ben_severe(chart: Chart) -> None:
    _ben(chart, "Duffy-null associated neutrophil count", 20, (1.2, 1.25))
    chart.anc(-1, 0.62, hour=8)
    chart.anc(0, 0.45, hour=7, minute=30)


@scenario(
    "clozapine-week10-mild",
    "Week 10 of clozapine, ANC 1,200 this morning after 3,100 last week: mild neutropenia, "
    "repeat within 24 hours",
    ("anc-mild", "anc-repeat-needed"),
)
def week10_mild(chart: Chart) -> None:
    c.clozapine_patient(chart, weeks=10, dose=Dose("100", 2), last_anc=-7)
    chart.anc(0, 1.2, hour=7)


@scenario(
    "clozapine-week11-moderate",
    "Week 11 of clozapine, ANC 820 yesterday confirmed at 740 today (10*3/uL): moderate "
    "neutropenia, interrupt and count daily",
    ("anc-moderate",),
)
def week11_moderate(chart: Chart) -> None:
    c.clozapine_patient(chart, weeks=11, dose=Dose("100", 2), last_anc=-7, anc_unit="10*3/uL")
    chart.anc(-1, 0.82, "10*3/uL", hour=9)
    chart.anc(0, 0.74, "10*3/uL", hour=8)


@scenario(
    "clozapine-week9-severe",
    "Week 9 of clozapine, ANC 460/uL confirmed at 380/uL: severe neutropenia, interrupt, "
    "haematology consult",
    ("anc-severe",),
)
def week9_severe(chart: Chart) -> None:
    c.clozapine_patient(chart, weeks=9, dose=Dose("100", 2), last_anc=-7, anc_unit="/uL")
    chart.anc(-1, 460, "/uL", hour=10)
    chart.anc(0, 380, "/uL", hour=8)


@scenario(
    "clozapine-week30-due-soon",
    "Week 30 (every-2-weeks phase); last count 13 days ago, ANC derived from WBC 5.8 x 52 % "
    "neutrophils: normal, next due tomorrow",
    ("anc-normal", "anc-due-soon"),
)
def week30_due_soon(chart: Chart) -> None:
    dose = Dose("100", 2)

    def contained_order(day: int) -> Json:
        code, display, _ = terms.CLOZAPINE_PRODUCTS[dose.product]
        med = b.medication("med1", b.concept(display, b.coding(terms.RXNORM, code, display)))
        return c.clozapine_order(
            chart,
            dose,
            day,
            medication={"medicationReference": {"reference": "#med1", "display": display}},
            contained=[med],
            style="frequency",
        )

    start = c.clozapine_patient(
        chart, weeks=30, dose=dose, last_anc=None, maintenance=contained_order
    )
    c.anc_series(chart, start, -27)
    chart.wbc(-13, 5.8, "10*3/uL")
    chart.neutrophil_pct(-13, 52)


@scenario(
    "clozapine-year3-overdue",
    "Year 3 (monthly phase) on Clozaril 200 mg at night recorded as text only; last ANC "
    "40 days ago: overdue",
    ("anc-normal", "anc-overdue"),
)
def year3_overdue(chart: Chart) -> None:
    def text_only_order(day: int) -> Json:
        dosage = b.dosage(
            "2 tablets at night",
            b.quantity(2, "tablet", "{tbl}"),
            b.timing(chart.day(day), frequency=1, period=1, when=["HS"]),
        )
        medication = {"medicationCodeableConcept": b.concept("Clozaril 100mg tablets")}
        return chart.order(medication, [dosage], authored=day, status="active")

    c.clozapine_patient(
        chart,
        weeks=143,
        dose=Dose("100", 1, "BID"),
        last_anc=-40,
        anc_unit="/uL",
        with_laxative=False,
        maintenance=text_only_order,
    )
    c.laxative(chart, -990, "docusate")


@scenario(
    "clozapine-no-anc",
    "Two years on clozapine 300 mg/day after a transfer of care; no ANC on record at all",
    ("anc-missing",),
)
def no_anc(chart: Chart) -> None:
    c.clozapine_patient(chart, weeks=104, dose=Dose("100", 3, "QD"), last_anc=None)


@scenario(
    "clozapine-restart-after-45-days",
    "Clozapine stopped 45 days ago after two years; restart drafted at 12.5 mg with a fresh "
    "baseline ANC: monitoring restarts weekly as for a new patient",
    ("anc-schedule-restart", "anc-normal"),
)
def restart_after_45_days(chart: Chart) -> None:
    start = -800
    c.schizophrenia(chart, start - 900)
    c.clozapine_course(chart, start, Dose("100", 2), end=-45)
    c.anc_series(chart, start, -52)
    c.myocarditis_monitoring(chart, start)
    c.metabolic_monitoring(chart, start, -45)
    c.laxative(chart, start + 1, end=-45)
    chart.anc(-2, 3.9)
    c.myocarditis_monitoring(chart, 0)
    c.metabolic_monitoring(chart, 0)
    c.clozapine_order(chart, START_DOSE, 0, draft=True)
    c.laxative(chart, 0, draft=True)


@scenario(
    "clozapine-restart-after-5-days",
    "Missed 5 days of clozapine 300 mg (at night); the restart is drafted at the full "
    "300 mg: re-titrate from 12.5 mg",
    ("retitration-needed", "anc-normal"),
)
def restart_after_5_days(chart: Chart) -> None:
    dose = Dose("100", 3, "QD")
    start = -400
    c.schizophrenia(chart, start - 700)
    c.clozapine_course(chart, start, dose, end=-5)
    c.anc_series(chart, start, -12)
    c.myocarditis_monitoring(chart, start)
    c.metabolic_monitoring(chart, start)
    c.laxative(chart, start + 1)
    c.clozapine_order(chart, dose, 0, draft=True)


@scenario(
    "stable-monthly-searchset",
    "Five years stable on clozapine 400 mg/day, data as a Patient/$everything searchset "
    "with the Medication included; an entered-in-error ANC of 300 and a cancelled "
    "carbamazepine order must be ignored",
    ("anc-normal",),
    kind="searchset",
)
def stable_searchset(chart: Chart) -> None:
    dose = Dose("200", 1)

    def referenced_order(day: int) -> Json:
        code, display, _ = terms.CLOZAPINE_PRODUCTS[dose.product]
        med = chart.add(
            b.medication(
                chart.new_id("med"), b.concept(display, b.coding(terms.RXNORM, code, display))
            )
        )
        chart.search_modes[b.reference(med)] = "include"
        ref = {"medicationReference": {"reference": b.reference(med), "display": display}}
        return c.clozapine_order(chart, dose, day, medication=ref)

    c.clozapine_patient(chart, weeks=261, dose=dose, last_anc=-9, maintenance=referenced_order)
    chart.anc(-1, 0.3, status="entered-in-error")
    cancelled = c.drug_order(
        chart, c.ingredient("Carbamazepine 200 mg oral tablet", "carbamazepine"), 200, 2, -3
    )
    cancelled["status"] = "cancelled"
