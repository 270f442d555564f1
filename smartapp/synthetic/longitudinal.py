"""Large longitudinal patients for benchmarks and load tests (design.md, performance targets).

``ten_year_bundle`` is the benchmark patient: about ten years on clozapine with earlier
antipsychotic trials, two interruptions (one long enough to restart monitoring), a mild
neutropenia episode, a smoking change, and the monitoring a clinic records - about 1,500
Observations and 80 MedicationRequests. ``typical_bundle`` is a two-year patient for load tests.
Both are generated, not committed, and deterministic: values come from a seeded
``random.Random``; dates are offsets from ``as_of``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from smartapp.synthetic import clinic as c
from smartapp.synthetic import terms
from smartapp.synthetic.builders import Json
from smartapp.synthetic.chart import Chart, Dose

DEFAULT_AS_OF = date(2026, 3, 1)

#: Clozapine titration of a course: (day of course, dose), label pace (rulebook §8).
_TITRATION: tuple[tuple[int, Dose], ...] = (
    (0, Dose("12.5-odt", 1, "QD")),
    (2, Dose("12.5-odt", 1, "BID")),
    (5, Dose("25", 1, "BID")),
    (8, Dose("25", 2, "BID")),
    (12, Dose("100", 1, "BID")),
)
_MAINTENANCE = (Dose("100", 3, "QD"), Dose("100", 2, "BID"), Dose("200", 1, "BID"))


@dataclass(frozen=True)
class Span:
    """A clozapine course (or part of one) from ``start`` to ``end`` (None: ongoing)."""

    start: int
    end: int | None


def _chart(name: str, as_of: date, seed: int) -> Chart:
    chart = Chart(name, as_of, "Longley", "Morgan", "male", "1979-05-14")
    chart.rng = random.Random(seed)  # noqa: S311 - reproducible test data
    return chart


def _clozapine_orders(chart: Chart, span: Span, renew_days: int) -> None:
    """Titration steps, then maintenance orders renewed every ``renew_days``."""
    limit = span.end if span.end is not None else 0
    steps: list[tuple[int, Dose]] = [(span.start + d, dose) for d, dose in _TITRATION]
    day = span.start + 16
    while day < limit or (span.end is None and day <= limit):
        steps.append((day, chart.rng.choice(_MAINTENANCE)))
        day += renew_days
    steps = [(s, d) for s, d in steps if s < limit or (span.end is None and s <= limit)]
    for i, (s, d) in enumerate(steps):
        stop = steps[i + 1][0] if i + 1 < len(steps) else span.end
        c.clozapine_order(chart, d, s, stop, style="code" if i % 2 else "frequency")


def _blood_counts(chart: Chart, span: Span, unit_switch: int) -> None:
    """WBC, neutrophil % and ANC at each scheduled draw (the lab moved from 10*3/uL to
    10*9/L on day ``unit_switch``)."""
    last = (span.end - 3) if span.end is not None else -3
    for day in c.anc_draw_days(span.start, last):
        unit = "10*3/uL" if day < unit_switch else "10*9/L"
        anc = round(chart.rng.uniform(2.2, 5.4), 1)
        pct = round(chart.rng.uniform(48, 66))
        chart.wbc(day, round(anc * 100 / pct, 1), unit)
        chart.neutrophil_pct(day, pct)
        chart.anc(day, anc, unit)


def _neutropenia_episode(chart: Chart, day: int) -> None:
    """A mild neutropenia confirmed within 24 h, three-times-weekly counts until >= 1,500."""
    for offset, value, hour in ((0, 1.3, 8), (0, 1.25, 18), (2, 1.35, 8), (4, 1.45, 8)):
        chart.anc(day + offset, value, hour=hour)
    for offset in (7, 9, 11):
        chart.anc(day + offset, round(chart.rng.uniform(1.6, 2.4), 1))


def _levels(chart: Chart, span: Span, every: int) -> None:
    last = span.end if span.end is not None else 0
    for day in range(span.start + 28, last, every):
        clozapine = chart.rng.randint(320, 620)
        chart.levels(day, clozapine, round(clozapine / chart.rng.uniform(1.3, 2.0)))


def _weights_and_bloods(chart: Chart, start: int, weigh_every: int, panel_every: int) -> None:
    kg = 76.0
    for day in range(start, 0, weigh_every):
        kg = min(kg + chart.rng.uniform(-0.4, 0.7), 104.0)
        chart.weight(day, round(kg, 1))
    for day in range(start, 0, panel_every):
        chart.metabolic_panel(day)


def _myocarditis(chart: Chart, spans: list[Span]) -> None:
    for span in spans:
        c.myocarditis_monitoring(chart, span.start, min(span.start + 30, 0))


def _trials(chart: Chart, start: int) -> None:
    """Antipsychotic trials before clozapine, with pharmacy fills and PANSS ratings."""
    trials = (("risperidone", "Risperidone 4 mg oral tablet", 4.0, 2, 84),
              ("olanzapine", "Olanzapine 10 mg oral tablet", 10.0, 2, 70),
              ("haloperidol", "Haloperidol 5 mg oral tablet", 5.0, 3, 60))  # fmt: skip
    day = start
    for name, text, mg, per_day, weeks_days in trials:
        order = c.drug_order(chart, c.ingredient(text, name), mg, per_day, day, day + weeks_days)
        for fill in range(day, day + weeks_days, 30):
            c.dispense(chart, order, fill, 30, per_day)
        chart.panss(day, chart.rng.randint(92, 104))
        chart.panss(day + weeks_days - 1, chart.rng.randint(88, 100))
        day += weeks_days + 21


def _other_drugs(chart: Chart, start: int, renew_days: int) -> None:
    """Laxatives and the usual co-medication, renewed as EHRs do (one order per renewal)."""
    for day in range(start, 0, renew_days):
        c.laxative(chart, day, end=day + renew_days if day + renew_days <= 0 else None)
    lamotrigine = c.rxnorm("Lamotrigine 100 mg oral tablet", None)
    for day in range(start + 3 * renew_days, 0, 2 * renew_days):
        end = day + 2 * renew_days
        c.drug_order(chart, lamotrigine, 100, 2, day, end if end <= 0 else None)
    cipro = c.ingredient("Ciprofloxacin 500 mg oral tablet", "ciprofloxacin")
    c.drug_order(chart, cipro, 500, 2, start + 1400, start + 1407)
    c.laxative(chart, start + 900, "docusate", end=start + 1100)


def _clozapine_fills(chart: Chart, start: int) -> None:
    """Monthly pharmacy fills of the clozapine order in force (adherence evidence)."""
    orders = [
        r
        for r in chart.resources
        if r["resourceType"] == "MedicationRequest"
        and "clozapine" in r["medicationCodeableConcept"].get("text", "")
    ]
    for day in range(start, 0, 28):
        when = chart.day(day)
        order = next(
            o
            for o in reversed(orders)
            if o["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["start"] <= when
        )
        per_day = terms.TIMING_CODES[_timing_code(order)][2]
        tablets = order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]
        c.dispense(chart, order, day, 28, per_day * tablets, hour=16)


def _timing_code(order: Json) -> str:
    timing = order["dosageInstruction"][0]["timing"]
    if "code" in timing:
        return str(timing["code"]["coding"][0]["code"])
    return {1: "QD", 2: "BID", 3: "TID"}[timing["repeat"]["frequency"]]


def _smoking(chart: Chart, start: int) -> None:
    for day in range(start, 0, 182):
        chart.smoking(day, "every-day" if day < -400 else "former")


def ten_year_bundle(as_of: date = DEFAULT_AS_OF, seed: int = 10) -> Json:
    """The benchmark patient: about ten years of clozapine (``design.md`` performance)."""
    chart = _chart("longitudinal-10y", as_of, seed)
    first = -3650
    spans = [Span(first, -2190), Span(-2186, -1500), Span(-1455, None)]  # 4 and 45 days off
    c.schizophrenia(chart, first - 1100, "paranoid-schizophrenia")
    _trials(chart, first - 900)
    for span in spans:
        _clozapine_orders(chart, span, renew_days=120)
        _blood_counts(chart, span, unit_switch=-2000)
        _levels(chart, span, every=56)
    _neutropenia_episode(chart, -900)
    _myocarditis(chart, [spans[0], spans[2]])
    _weights_and_bloods(chart, first - 3, weigh_every=14, panel_every=91)
    _other_drugs(chart, first, renew_days=182)
    _clozapine_fills(chart, -364)
    _smoking(chart, first)
    for day in range(first, 0, 182):
        chart.panss(day, chart.rng.randint(58, 74))
    return chart.bundle()


def typical_bundle(as_of: date = DEFAULT_AS_OF, seed: int = 2) -> Json:
    """A typical patient for load tests: two years on clozapine, monitoring up to date."""
    chart = _chart("typical-2y", as_of, seed)
    span = Span(-730, None)
    c.schizophrenia(chart, -2000)
    _clozapine_orders(chart, span, renew_days=182)
    _blood_counts(chart, span, unit_switch=-365)
    _levels(chart, span, every=91)
    _myocarditis(chart, [span])
    _weights_and_bloods(chart, -733, weigh_every=28, panel_every=168)
    _other_drugs(chart, -730, renew_days=365)
    _smoking(chart, -730)
    return chart.bundle()
