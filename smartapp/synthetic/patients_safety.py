"""Safety scenarios beyond the ANC: myocarditis (§4), levels and C/N ratio (§5), smoking
(§6), interactions (§7), dose and seizures (§8), laxatives and metabolic monitoring (§9),
and unreadable data."""

from __future__ import annotations

from smartapp.synthetic import builders as b
from smartapp.synthetic import clinic as c
from smartapp.synthetic import terms
from smartapp.synthetic.builders import Json
from smartapp.synthetic.chart import Chart, Dose
from smartapp.synthetic.scenario import scenario

USUAL = Dose("100", 2)  # 400 mg/day


def _early_course(chart: Chart, day: int, last_anc: int) -> int:
    """Day ``day`` of a new course: titration orders, weekly ANCs, baseline weight and labs,
    troponin and CRP only at baseline (the scenario adds the rest)."""
    start = -day
    c.schizophrenia(chart, start - 1800)
    c.clozapine_course(chart, start, USUAL)
    c.anc_series(chart, start, last_anc)
    c.metabolic_monitoring(chart, start)
    c.laxative(chart, start)
    chart.troponin(start - 2, 4)
    chart.crp(start - 2, 1.2)
    return start


@scenario(
    "myocarditis-day8-troponin-due",
    "Day 8 of a new clozapine course: baseline troponin and CRP done, the day-7 pair was "
    "never drawn",
    ("myocarditis-monitoring-due", "anc-normal"),
)
def myocarditis_due(chart: Chart) -> None:
    _early_course(chart, 8, -1)


@scenario(
    "myocarditis-day10-watch",
    "Day 10 of clozapine: hs-troponin I 39 ng/L (1.5 x the assay's ULN of 26), CRP 18: "
    "watch, troponin and CRP daily",
    ("myocarditis-watch", "anc-normal"),
)
def myocarditis_watch(chart: Chart) -> None:
    start = _early_course(chart, 10, -3)
    chart.troponin(start + 7, 5)
    chart.crp(start + 7, 2.1)
    chart.troponin(0, 39)
    chart.crp(0, 18)


@scenario(
    "myocarditis-day15-stop",
    "Day 15 of clozapine with fever: CRP 120 mg/L (troponin 24 ng/L, under the ULN): stop "
    "clozapine",
    ("myocarditis-stop", "anc-normal"),
)
def myocarditis_stop(chart: Chart) -> None:
    start = _early_course(chart, 15, -1)
    for day, trop, crp in ((7, 6, 1.8), (14, 9, 4.0)):
        chart.troponin(start + day, trop)
        chart.crp(start + day, crp)
    chart.troponin(0, 24, hour=15)
    chart.crp(0, 120, hour=15)


@scenario(
    "levels-high-fluvoxamine",
    "On clozapine 400 mg/day with fluvoxamine: trough clozapine 840, norclozapine 240 ug/L "
    "(C/N 3.5): level high, ratio high, CYP1A2 inhibitor",
    ("level-high", "ratio-high", "interaction-cyp1a2-inhibitor", "anc-normal"),
)
def levels_high(chart: Chart) -> None:
    c.clozapine_patient(chart, weeks=57, dose=USUAL, last_anc=-8)
    fluvoxamine = c.ingredient("Fluvoxamine maleate 100 mg oral tablet", "fluvoxamine")
    c.drug_order(chart, fluvoxamine, 100, 2, -60)
    chart.levels(-3, 840, 240, "ug/L")


@scenario(
    "levels-low-ratio-low",
    "On clozapine 400 mg/day: clozapine 0.18 mg/L with norclozapine 0.45 mg/L (C/N 0.4): "
    "level low, suspect missed doses or a non-trough sample",
    ("level-low", "ratio-low", "anc-normal"),
)
def levels_low(chart: Chart) -> None:
    c.clozapine_patient(chart, weeks=43, dose=USUAL, last_anc=-4)
    chart.levels(-2, 0.18, 0.45, "mg/L")


@scenario(
    "levels-alert-seizure-risk",
    "Clozapine 650 mg/day (250 mg mornings, 400 mg nights): level 1,100 ng/mL, norclozapine "
    "550: alert level, seizure risk",
    ("level-alert", "seizure-risk", "anc-normal"),
)
def levels_alert(chart: Chart) -> None:
    def split_order(day: int) -> Json:
        code, display, _ = terms.CLOZAPINE_PRODUCTS["50"]
        dosages = [
            b.dosage(
                f"{mg} mg by mouth {label}",
                b.quantity(mg, "mg"),
                b.timing(chart.day(day), frequency=1, period=1, when=[when]),
                sequence=1,
            )
            for mg, label, when in ((250, "in the morning", "MORN"), (400, "at night", "NIGHT"))
        ]
        return chart.order(c.rxnorm(display, code), dosages, authored=day, status="active")

    c.clozapine_patient(chart, weeks=100, dose=USUAL, last_anc=-6, maintenance=split_order)
    chart.levels(-4, 1100, 550)


@scenario(
    "dose-above-max-order-sign",
    "On 800 mg/day; an increase to 1,000 mg/day (5 x 100 mg twice daily) is drafted: above "
    "the 900 mg maximum, seizure risk",
    ("dose-above-max", "seizure-risk", "anc-normal"),
)
def dose_above_max(chart: Chart) -> None:
    c.clozapine_patient(chart, weeks=170, dose=Dose("200", 2), last_anc=-10)
    c.clozapine_order(chart, Dose("100", 5), 0, draft=True)


@scenario(
    "smoking-cessation",
    "Smoked daily until last week, now a former smoker; level 480 ng/mL (reported in "
    "nmol/L) is therapeutic today: expect it to rise by about half",
    ("smoking-cessation", "level-therapeutic", "anc-normal"),
)
def smoking_cessation(chart: Chart) -> None:
    c.clozapine_patient(chart, weeks=70, dose=USUAL, last_anc=-5)
    chart.smoking(-150, "every-day")
    chart.smoking(-60, "every-day")
    chart.smoking(-7, "former")
    # 480 ng/mL clozapine and 320 ng/mL norclozapine, as a lab reporting molar units sends them
    chart.levels(-2, 1469, 1023, "nmol/L")


@scenario(
    "smoking-started",
    "Former smoker who started again (now a heavy smoker): clozapine levels will fall",
    ("smoking-started", "anc-normal"),
)
def smoking_started(chart: Chart) -> None:
    c.clozapine_patient(chart, weeks=86, dose=USUAL, last_anc=-3)
    chart.smoking(-150, "former")
    chart.smoking(-5, "heavy")


@scenario(
    "carbamazepine-interaction",
    "Neurology started carbamazepine 200 mg twice daily for a patient on clozapine: "
    "inducer and additive marrow suppression",
    ("interaction-inducer", "interaction-agranulocytosis", "anc-normal"),
)
def carbamazepine(chart: Chart) -> None:
    c.clozapine_patient(chart, weeks=104, dose=Dose("100", 3, "QD"), last_anc=-6)
    medication = c.ingredient("Carbamazepine 200 mg oral tablet", "carbamazepine")
    c.drug_order(chart, medication, 200, 2, -20)


@scenario(
    "benztropine-no-laxative",
    "On clozapine with benztropine for tremor and no laxative: anticholinergic burden and "
    "no constipation prophylaxis",
    ("interaction-anticholinergic", "constipation-prophylaxis", "anc-normal"),
)
def benztropine(chart: Chart) -> None:
    c.clozapine_patient(chart, weeks=78, dose=USUAL, last_anc=-7, with_laxative=False)
    medication = c.rxnorm("Benztropine mesylate 1 mg oral tablet", None)
    c.drug_order(chart, medication, 1, 2, -200)


@scenario(
    "valproate-week2",
    "Day 10 of clozapine titration; divalproex started three days ago: myocarditis risk "
    "during titration",
    ("interaction-valproate-titration", "anc-normal"),
)
def valproate_week2(chart: Chart) -> None:
    start = _early_course(chart, 10, -3)
    chart.troponin(start + 7, 5)
    chart.crp(start + 7, 1.6)
    medication = c.ingredient("Depakote 250 mg delayed release oral tablet", "divalproex")
    c.drug_order(chart, medication, 250, 2, -3)


@scenario(
    "ciprofloxacin-order-sign",
    "Order-sign: ciprofloxacin 500 mg twice daily for 7 days drafted for a patient on "
    "clozapine 400 mg/day: CYP1A2 inhibitor, use a third of the dose or another antibiotic",
    ("interaction-cyp1a2-inhibitor", "anc-normal"),
)
def ciprofloxacin(chart: Chart) -> None:
    c.clozapine_patient(chart, weeks=114, dose=USUAL, last_anc=-11)
    medication = c.ingredient("Ciprofloxacin 500 mg oral tablet", "ciprofloxacin")
    c.drug_order(chart, medication, 500, 2, 0, 7, draft=True)


@scenario(
    "metabolic-monitoring-due",
    "Two years on clozapine; last weight 8 months ago and last HbA1c and lipids 21 months "
    "ago: metabolic monitoring due",
    ("metabolic-monitoring-due", "anc-normal"),
)
def metabolic_due(chart: Chart) -> None:
    c.clozapine_patient(chart, weeks=104, dose=USUAL, last_anc=-9, metabolic_upto=-520)
    chart.weight(-240, 91.4)


@scenario(
    "unknown-unit-data-unmapped",
    "Week 43 on clozapine with normal counts; a point-of-care neutrophil count arrived in "
    "'cells/hpf', a unit no blood count uses: reported, not read",
    ("data-unmapped", "anc-normal"),
)
def unknown_unit(chart: Chart) -> None:
    c.clozapine_patient(chart, weeks=43, dose=USUAL, last_anc=-3)
    code, display = terms.LAB_CODES["anc"]
    chart.add(
        b.observation(
            chart.new_id("anc"),
            chart.subject,
            b.concept("Neutrophils abs (point of care)", b.coding(terms.LOINC, code, display)),
            chart.at(-1, 16),
            value={"valueQuantity": b.quantity(2.4, "cells/hpf", ucum=False)},
        )
    )
