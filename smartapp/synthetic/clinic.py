"""Clinical fragments the scenarios are assembled from: a clozapine course with its titration
orders, the ANC draws its monitoring phase asks for, myocarditis and metabolic monitoring,
laxatives and other drugs.

Each fragment records what a well-run clinic would have on file, so a scenario only has to
add (or leave out) the one thing its story is about. Schedules follow the rulebook: ANC
weekly / every 2 weeks / monthly (§2.2; the UK's shorter 4-weekly step is used after week 52
so both profiles are satisfied), troponin and CRP at baseline and days 7-28 (§4), weight at
baseline and weeks 4, 8, 12 then every 91 days, glucose, HbA1c and lipids at baseline, week 12
and then every 365 days (§9), each recorded on its scheduled day.
"""

from __future__ import annotations

from collections.abc import Callable

from smartapp.synthetic import builders as b
from smartapp.synthetic import terms
from smartapp.synthetic.builders import Json
from smartapp.synthetic.chart import Chart, Dose, status_for

#: Titration steps before the maintenance dose: (day of course, dose). Label: start at
#: 12.5 mg once or twice daily, reach the target over about two weeks.
TITRATION: tuple[tuple[int, Dose], ...] = ((0, Dose("12.5-odt", 1, "BID")), (4, Dose("25", 2)))
MAINTENANCE_DAY = 14
METABOLIC_EARLY_DAYS = 10  # a check due this soon is done early (rule window: 7 days)
_ANC_SCALE = {"10*9/L": 1.0, "10*3/uL": 1.0, "/uL": 1000.0}


def rxnorm(display: str, code: str | None, code_display: str | None = None) -> Json:
    """``medicationCodeableConcept`` with an RxNorm code (``code_display`` names an ingredient
    code), or text only when ``code`` is None."""
    if code is None:
        return {"medicationCodeableConcept": b.concept(display)}
    coded = b.coding(terms.RXNORM, code, code_display or display)
    return {"medicationCodeableConcept": b.concept(display, coded)}


def ingredient(display: str, name: str) -> Json:
    """A product named in text, coded with its RxNorm ingredient (rulebook §12)."""
    return rxnorm(display, terms.RXNORM_INGREDIENTS[name], name)


def clozapine_medication(dose: Dose) -> Json:
    code, display, _ = terms.CLOZAPINE_PRODUCTS[dose.product]
    return rxnorm(display, code)


def clozapine_dosage(
    chart: Chart, dose: Dose, start: int, end: int | None, *, style: str = "code"
) -> Json:
    """Tablets x strength; ``style`` ``code`` uses the GTS timing code, ``frequency`` spells
    out frequency/period as other EHRs do."""
    strength = terms.CLOZAPINE_PRODUCTS[dose.product][2]
    label, per_day = terms.TIMING_CODES[dose.timing][1:]
    end_day = chart.day(end) if end is not None else None
    if style == "code":
        timing = b.timing(chart.day(start), end_day, code=dose.timing)
    else:
        timing = b.timing(chart.day(start), end_day, frequency=per_day, period=1)
    tablets = "tablet" if dose.tablets == 1 else "tablets"
    text = f"{dose.tablets:g} {tablets} ({dose.tablets * strength:g} mg) by mouth {label}"
    return b.dosage(text, b.quantity(dose.tablets, "tablet", "{tbl}"), timing)


def clozapine_order(
    chart: Chart,
    dose: Dose,
    start: int,
    end: int | None = None,
    *,
    draft: bool = False,
    style: str = "code",
    medication: Json | None = None,
    contained: list[Json] | None = None,
) -> Json:
    return chart.order(
        medication or clozapine_medication(dose),
        [clozapine_dosage(chart, dose, start, end, style=style)],
        authored=start,
        status=status_for(chart, end, draft),
        contained=contained,
    )


def clozapine_course(
    chart: Chart, start: int, dose: Dose, *, end: int | None = None, style: str = "code"
) -> list[Json]:
    """Orders for one course: titration steps, then ``dose`` from day 14 until ``end``
    (``None`` = ongoing). Each order's end date is the next one's start, so coverage is
    continuous whether a reader takes boundsPeriod.end as inclusive or not."""
    limit = end if end is not None else 0
    steps = [(start + day, d) for day, d in TITRATION] + [(start + MAINTENANCE_DAY, dose)]
    steps = [(s, d) for s, d in steps if s < limit or (end is None and s <= limit)]
    orders = []
    for i, (s, d) in enumerate(steps):
        stop = steps[i + 1][0] if i + 1 < len(steps) else end
        orders.append(clozapine_order(chart, d, s, stop, style=style))
    return orders


def anc_value(chart: Chart, low: float, high: float, unit: str) -> float:
    value = round(chart.rng.uniform(low, high), 1)
    return round(value * _ANC_SCALE[unit]) if _ANC_SCALE[unit] != 1.0 else value


def anc_draw_days(start: int, last: int, baseline: bool = True) -> list[int]:
    """Draw days from the course start to ``last`` at the phase interval, plus a baseline
    three days before the start."""
    days: list[int] = []
    d = last
    while d >= start + 5:
        days.append(d)
        weeks = (d - start) / 7
        d -= 7 if weeks <= 26 else 14 if weeks <= 52 else 28
    if baseline:
        days.append(start - 3)
    return sorted(days)


def anc_series(
    chart: Chart,
    start: int,
    last: int,
    *,
    unit: str = "10*9/L",
    normal: tuple[float, float] = (2.4, 5.6),
    with_wbc: bool = False,
    baseline: bool = True,
) -> None:
    """Normal ANCs (10*9/L range ``normal``) from baseline to ``last``; with ``with_wbc`` a
    WBC from the same specimen, as the UK traffic lights need."""
    for day in anc_draw_days(start, last, baseline):
        value = anc_value(chart, *normal, unit)
        chart.anc(day, value, unit)
        if with_wbc:
            ratio = chart.rng.uniform(0.55, 0.65)
            wbc = value / ratio
            chart.wbc(day, round(wbc, 1) if unit != "/uL" else round(wbc, -1), unit)


def myocarditis_monitoring(chart: Chart, start: int, upto: int = 0) -> None:
    """Troponin and CRP at baseline and days 7, 14, 21, 28 of a course (rulebook §4)."""
    for day in (-2, 7, 14, 21, 28):
        if start + day <= upto:
            chart.troponin(start + day, chart.rng.randint(2, 9))
            chart.crp(start + day, round(chart.rng.uniform(0.5, 4.5), 1))


def metabolic_points(first: tuple[int, ...], every: int, until: int) -> list[int]:
    """Course days of a schedule: the ``first`` points, then every ``every`` days."""
    points = list(first)
    while points[-1] + every <= until:
        points.append(points[-1] + every)
    return points


def metabolic_monitoring(chart: Chart, start: int, upto: int = 0, kg: float = 78.0) -> None:
    """Weight at baseline, weeks 4, 8, 12, then every 91 days; fasting glucose, HbA1c and
    lipids at baseline, week 12, then every 365 days (rulebook §9), each on its scheduled day
    (baseline 3 days before the course). A check falling due within the coming week is done
    early, on ``upto``, as a clinic would at the visit before."""
    horizon = upto - start + METABOLIC_EARLY_DAYS
    for points, record in (
        (metabolic_points((0, 28, 56, 84), 91, horizon), "weight"),
        (metabolic_points((0, 84), 365, horizon), "panel"),
    ):
        for i, point in enumerate(points):
            day = min(start + point if point else start - 3, upto)
            if record == "weight":
                chart.weight(day, round(kg + min(i, 12) * 0.6 + chart.rng.uniform(-0.5, 0.5), 1))
            else:
                chart.metabolic_panel(day)


def drug_order(
    chart: Chart,
    medication: Json,
    mg: float,
    per_day: int,
    start: int,
    end: int | None = None,
    *,
    draft: bool = False,
    when: list[str] | None = None,
    sig: str | None = None,
) -> Json:
    """A non-clozapine oral drug with its dose in mg (RxNorm ingredient code or text only)."""
    timing = b.timing(
        chart.day(start),
        chart.day(end) if end is not None else None,
        frequency=per_day,
        period=1,
        when=when,
    )
    text = sig or f"{mg:g} mg by mouth {per_day} time{'s' if per_day > 1 else ''} a day"
    dosage = b.dosage(text, b.quantity(mg, "mg"), timing)
    return chart.order(medication, [dosage], authored=start, status=status_for(chart, end, draft))


def dispense(
    chart: Chart, order: Json, day: int, supply: int, tablets_per_day: float, hour: int = 15
) -> Json:
    """A pharmacy fill of ``order`` handed over on ``day`` at ``hour``: ``supply`` days of
    tablets (fills are the adherence evidence, proportion of days covered)."""
    return chart.add(
        b.medication_dispense(
            chart.new_id("disp"),
            chart.subject,
            {"medicationCodeableConcept": order["medicationCodeableConcept"]},
            prescription=b.reference(order),
            handed_over=chart.at(day, hour),
            days_supply=supply,
            quantity_=b.quantity(supply * tablets_per_day, "tablet", "{tbl}"),
            dosages=order["dosageInstruction"],
        )
    )


def laxative(
    chart: Chart, start: int, kind: str = "senna", *, end: int | None = None, draft: bool = False
) -> Json:
    """Prophylactic laxative (rulebook §9); text only, no RxNorm code confirmed offline."""
    drugs = {
        "senna": ("Senna 8.6 mg oral tablet", 17.2, 1, ["HS"], "2 tablets at bedtime"),
        "docusate": ("Docusate sodium 100 mg oral capsule", 100.0, 2, None, None),
        "bisacodyl": ("Bisacodyl 5 mg oral tablet", 10.0, 1, ["HS"], "2 tablets at bedtime"),
    }
    display, mg, per_day, when, sig = drugs[kind]
    return drug_order(
        chart, rxnorm(display, None), mg, per_day, start, end, draft=draft, when=when, sig=sig
    )


def schizophrenia(chart: Chart, onset: int, key: str = "schizophrenia") -> Json:
    return chart.diagnosis(key, onset)


def clozapine_patient(
    chart: Chart,
    *,
    weeks: float,
    dose: Dose,
    last_anc: int | None = -2,
    anc_unit: str = "10*9/L",
    with_wbc: bool = False,
    with_laxative: bool = True,
    style: str = "code",
    metabolic_upto: int = 0,
    maintenance: Callable[[int], Json] | None = None,
) -> int:
    """An established clozapine patient whose monitoring is up to date; returns the course
    start offset. ``last_anc`` is the day of the latest ANC (``None``: no ANC at all);
    ``maintenance(day)`` writes the maintenance order when a scenario needs a special form
    (contained Medication, text only, split doses)."""
    start = -round(weeks * 7)
    schizophrenia(chart, start - 1500)
    if maintenance is None:
        clozapine_course(chart, start, dose, style=style)
    else:
        clozapine_course(chart, start, dose, end=start + MAINTENANCE_DAY, style=style)
        maintenance(start + MAINTENANCE_DAY)
    if last_anc is not None:
        anc_series(chart, start, last_anc, unit=anc_unit, with_wbc=with_wbc)
    myocarditis_monitoring(chart, start)
    metabolic_monitoring(chart, start, metabolic_upto)
    if with_laxative:
        laxative(chart, start + 1)
    return start


def new_start_workup(chart: Chart, *, anc: float | None = 3.1, kg: float = 74.0) -> None:
    """Baseline before a first clozapine dose: ANC, troponin, CRP, weight, glucose, lipids."""
    if anc is not None:
        chart.anc(-2, anc)
    myocarditis_monitoring(chart, 0)
    metabolic_monitoring(chart, 0, kg=kg)
