"""The ANC chart: neutrophil counts over time against the threshold bands of the patient's
table, with clozapine dose changes, interruptions and the next due date (issue 4 item 4;
design.md Contract 3).

Bands come from the rule data in force: the general table (L1 Table 1: 1,500 / 1,000 / 500)
or the BEN table (L1 Table 2: 1,000 / 500) as the evaluation chose it, or the UK neutrophil
traffic lights (U1/U2: 2,000 / 1,500). Counts are the rules' own series (reported ANC, or
WBC x neutrophil % where no count was reported; rulebook §2.6). Doses and breaks come from
``clozapine_timeline`` (the rules' courses, rulebook §1).

The SVG is drawn on the server; its text alternative is the ``<title>``/``<desc>`` pair and the
data table the page builds from ``AncChart.points``. ``levels_chart`` is in ``level_chart.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

from smartapp.dashboard.clozapine_timeline import DoseStep, Gap, dose_steps, gaps_of
from smartapp.dashboard.level_chart import LevelChart, levels_chart
from smartapp.dashboard.svg import (
    DateScale,
    LinearScale,
    Svg,
    count_text,
    date_ticks,
    fmt,
    line,
    marker,
    nice_ceiling,
    polyline,
    rect,
    text,
    value_step,
)
from smartapp.domain import PatientRecord
from smartapp.rules.anc_values import anc_series, fbc_series
from smartapp.rules.courses import ClozapineHistory, clozapine_history
from smartapp.rules.fbc_uk import thresholds as uk_thresholds
from smartapp.rules.findings import Evaluation
from smartapp.rules.ruleset import RuleContext

__all__ = [
    "AncChart",
    "DoseStep",
    "Gap",
    "LevelChart",
    "anc_chart",
    "dose_steps",
    "gaps_of",
    "levels_chart",
]

WIDTH, HEIGHT = 860, 390
PLOT_X0, PLOT_X1, PLOT_TOP, PLOT_BOTTOM = 62.0, 690.0, 28.0, 250.0
DOSE_TOP, DOSE_BOTTOM = 282.0, 336.0
AXIS_LABEL_Y = 366.0
LABEL_ROOM = 56.0  # px between dose labels; a crowded change keeps its <title> only
# Hatch density per band, worst band densest: readable without colour.
HATCH = {0: (14, 45, False), 1: (9, 45, False), 2: (6, -45, False), 3: (5, 45, True)}
MIN_Y_TOP = 1.6  # the y axis reaches at least 1.6 x the top threshold, so bands are visible


@dataclass(frozen=True)
class Band:
    """A horizontal band ``low`` <= count < ``high`` (``high`` None: open above)."""

    key: str
    label: str
    low: float
    high: float | None


@dataclass(frozen=True)
class AncPoint:
    day: date
    value: float
    ref: str
    band: str
    current: bool  # in the current course (or since the previous one ended)
    derived: str = ""  # how a derived count was computed
    wbc: float | None = None  # UK profile: the WBC of the same specimen


@dataclass(frozen=True)
class AncChart:
    title: str
    table_label: str
    bands: tuple[Band, ...]
    points: tuple[AncPoint, ...]
    doses: tuple[DoseStep, ...]
    gaps: tuple[Gap, ...]
    next_due: date | None
    overdue: bool
    as_of: date
    description: str
    svg: str | None  # None when there is no count to chart
    empty_message: str = ""
    uk: bool = False


def _bands(evaluation: Evaluation, ctx: RuleContext) -> tuple[str, tuple[Band, ...]]:
    r = ctx.rules
    ben = evaluation.anc.threshold_set == "ben"
    if ctx.profile == "uk-mhra":
        t = uk_thresholds(ben, r)
        green, amber = t.neut_green_min, t.neut_amber_min
        name = "UK local BEN thresholds" if t.ben else "UK traffic lights (neutrophils)"
        return name, (
            Band("green", f"Green ≥ {count_text(green)}", green, None),
            Band("amber", f"Amber {count_text(amber)}–{count_text(green - 1)}", amber, green),
            Band("red", f"Red < {count_text(amber)}", 0.0, amber),
        )
    if ben:
        normal, neutropenia = r.num("anc.ben.normal_min"), r.num("anc.ben.neutropenia_min")
        return "BEN table (L1 Table 2)", (
            Band("normal", f"BEN normal ≥ {count_text(normal)}", normal, None),
            Band(
                "ben-neutropenia",
                f"BEN neutropenia {count_text(neutropenia)}–{count_text(normal - 1)}",
                neutropenia,
                normal,
            ),
            Band("ben-severe", f"BEN severe < {count_text(neutropenia)}", 0.0, neutropenia),
        )
    normal, mild = r.num("anc.general.normal_min"), r.num("anc.general.mild_min")
    moderate = r.num("anc.general.moderate_min")
    return "General table (L1 Table 1)", (
        Band("normal", f"Normal ≥ {count_text(normal)}", normal, None),
        Band("mild", f"Mild {count_text(mild)}–{count_text(normal - 1)}", mild, normal),
        Band("moderate", f"Moderate {count_text(moderate)}–{count_text(mild - 1)}", moderate, mild),
        Band("severe", f"Severe < {count_text(moderate)}", 0.0, moderate),
    )


def band_of(value: float, bands: tuple[Band, ...]) -> Band:
    for band in bands:
        if value >= band.low and (band.high is None or value < band.high):
            return band
    return bands[-1]


def _current_from(history: ClozapineHistory) -> date | None:
    """Counts from this day on belong to the current course: the end of the previous course
    (a baseline drawn before the first dose is part of the course it precedes)."""
    current = history.current
    if current is None:
        return None
    earlier = [c for c in history.courses if c.start < current.start and c.end is not None]
    return max((c.end for c in earlier if c.end is not None), default=date.min)


def _points(
    record: PatientRecord, bands: tuple[Band, ...], history: ClozapineHistory, ctx: RuleContext
) -> list[AncPoint]:
    since = _current_from(history)
    wbc = {}
    if ctx.profile == "uk-mhra":
        wbc = {p.when: p.wbc.value for p in fbc_series(record, ctx.as_of) if p.wbc is not None}
    return [
        AncPoint(
            day=r.day,
            value=r.value,
            ref=r.ref,
            band=band_of(r.value, bands).label,
            current=since is None or r.day >= since,
            derived=r.original if r.derived_from else "",
            wbc=wbc.get(r.when),
        )
        for r in anc_series(record, ctx.as_of)
    ]


def anc_chart(record: PatientRecord, evaluation: Evaluation, ctx: RuleContext) -> AncChart:
    """The ANC chart of ``record`` as evaluated in ``evaluation`` (same rule data and day)."""
    table_label, bands = _bands(evaluation, ctx)
    history = clozapine_history(record, ctx)
    points = _points(record, bands, history, ctx)
    uk = ctx.profile == "uk-mhra"
    title = "Neutrophil count over time" if uk else "Absolute neutrophil count (ANC) over time"
    chart = AncChart(
        title=title,
        table_label=table_label,
        bands=bands,
        points=tuple(points),
        doses=tuple(dose_steps(history, ctx.as_of)),
        gaps=tuple(gaps_of(history)),
        next_due=evaluation.anc.next_due,
        overdue=evaluation.anc.overdue,
        as_of=ctx.as_of,
        description="",
        svg=None,
        uk=uk,
    )
    description = describe(chart)
    if not points:
        what = "neutrophil" if uk else "ANC"
        message = f"No {what} results on record up to {ctx.as_of}: there is nothing to chart."
        return replace(chart, description=description, empty_message=message)
    return replace(chart, description=description, svg=render_anc(chart, description))


def describe(chart: AncChart) -> str:
    """The chart in words (the SVG ``<desc>``)."""
    parts = [f"Threshold table: {chart.table_label} ({'; '.join(b.label for b in chart.bands)})."]
    if chart.points:
        last = chart.points[-1]
        parts.append(
            f"{len(chart.points)} results from {chart.points[0].day} to {last.day}; latest "
            f"{count_text(last.value)}/µL on {last.day} ({last.band})."
        )
    else:
        parts.append("No results on record.")
    if chart.doses:
        changes = ", ".join(f"{count_text(d.mg)} mg/day from {d.start}" for d in chart.doses[-4:])
        parts.append(f"Clozapine dose: {changes}.")
    for gap in chart.gaps:
        kind = "new course after" if gap.new_course else "interruption of"
        parts.append(f"No clozapine {gap.start} to {gap.end} ({kind} {gap.days} days).")
    if chart.next_due:
        late = " (overdue)" if chart.overdue else ""
        parts.append(f"Next count due {chart.next_due}{late}.")
    return " ".join(parts)


def _x_range(chart: AncChart) -> tuple[date, date]:
    days = [p.day for p in chart.points] + [d.start for d in chart.doses]
    days += [g.start for g in chart.gaps]
    start = min(days) if days else chart.as_of
    end = max([chart.as_of, *([chart.next_due] if chart.next_due else [])])
    pad = max(3, (end - start).days // 30)
    return start - timedelta(days=pad), end + timedelta(days=pad)


def render_anc(chart: AncChart, description: str) -> str:
    svg = Svg("anc-chart", WIDTH, HEIGHT, chart.title, description)
    start, end = _x_range(chart)
    x = DateScale(start, end, PLOT_X0, PLOT_X1)
    top_threshold = max(b.low for b in chart.bands)
    peak = max([p.value for p in chart.points] + [top_threshold * MIN_Y_TOP])
    step = value_step(peak * 1.05)
    y = LinearScale(0.0, nice_ceiling(peak * 1.05, step), PLOT_BOTTOM, PLOT_TOP)
    _draw_bands(svg, chart.bands, y)
    _draw_gaps(svg, chart.gaps, x)
    _draw_axes(svg, x, y, step, start, end)
    _draw_due(svg, chart, x)
    _draw_points(svg, chart.points, x, y)
    _draw_doses(svg, chart.doses, x)
    return svg.serialise()


def _draw_bands(svg: Svg, bands: tuple[Band, ...], y: LinearScale) -> None:
    group = svg.group("bands")
    for rank, band in enumerate(bands):
        spacing, angle, cross = HATCH[min(rank, 3)]
        fill = svg.hatch(f"band-{rank}", spacing, angle, cross) if rank else "none"
        high = band.high if band.high is not None else y.hi
        rect(
            group,
            PLOT_X0,
            y(band.low),
            PLOT_X1,
            y(high),
            {"class": f"band band-{band.key}", "fill": fill, "data-low": fmt(band.low)},
        )
        text(group, PLOT_X1 + 6, (y(band.low) + y(high)) / 2 + 4, band.label, "band-label")
        if band.low > 0:
            threshold = line(group, PLOT_X0, y(band.low), PLOT_X1, y(band.low), "threshold")
            threshold.set("data-value", fmt(band.low))


def _draw_gaps(svg: Svg, gaps: tuple[Gap, ...], x: DateScale) -> None:
    group = svg.group("gaps")
    fill = svg.hatch("gap", 6, 0, cross=True)
    for gap in gaps:
        kind = "new course" if gap.new_course else "interrupted"
        label = f"off {gap.days} d ({kind})"
        shade = rect(
            group,
            x(gap.start),
            PLOT_TOP,
            max(x(gap.end), x(gap.start) + 2),
            DOSE_BOTTOM,
            {"class": "gap", "fill": fill},
        )
        shade.set("data-days", str(gap.days))
        title = shade.makeelement("title", {})
        title.text = f"No clozapine {gap.start} to {gap.end}: {label}"
        shade.append(title)
        text(group, x(gap.start) + 2, PLOT_TOP - 6, label, "gap-label")


def _draw_axes(svg: Svg, x: DateScale, y: LinearScale, step: float, start: date, end: date) -> None:
    group = svg.group("axes")
    line(group, PLOT_X0, PLOT_BOTTOM, PLOT_X1, PLOT_BOTTOM, "axis")
    line(group, PLOT_X0, PLOT_TOP, PLOT_X0, PLOT_BOTTOM, "axis")
    value = 0.0
    while value <= y.hi + 1e-9:
        line(group, PLOT_X0 - 4, y(value), PLOT_X0, y(value), "tick")
        text(
            group,
            PLOT_X0 - 7,
            y(value) + 4,
            count_text(value),
            "tick-label",
            **{"text-anchor": "end"},
        )
        value += step
    text(group, 14, PLOT_TOP - 10, "cells/µL", "axis-label")
    for day, label in date_ticks(start, end):
        line(group, x(day), PLOT_BOTTOM, x(day), PLOT_BOTTOM + 4, "tick")
        text(group, x(day), AXIS_LABEL_Y, label, "tick-label", **{"text-anchor": "middle"})


def _draw_due(svg: Svg, chart: AncChart, x: DateScale) -> None:
    group = svg.group("markers")
    line(group, x(chart.as_of), PLOT_TOP, x(chart.as_of), DOSE_BOTTOM, "today")
    text(
        group,
        x(chart.as_of) - 3,
        PLOT_BOTTOM - 6,
        f"today {chart.as_of}",
        "today-label",
        **{"text-anchor": "end"},
    )
    if chart.next_due is None:
        return
    due = line(group, x(chart.next_due), PLOT_TOP, x(chart.next_due), PLOT_BOTTOM, "next-due")
    due.set("data-date", chart.next_due.isoformat())
    late = " (overdue)" if chart.overdue else ""
    text(
        group,
        x(chart.next_due) + 3,
        PLOT_TOP + 12,
        f"next due {chart.next_due}{late}",
        "next-due-label",
    )


def _draw_points(svg: Svg, points: tuple[AncPoint, ...], x: DateScale, y: LinearScale) -> None:
    earlier = svg.group("series earlier")
    current = svg.group("series current")
    polyline(current, [(x(p.day), y(p.value)) for p in points if p.current], "anc-line")
    for p in points:
        how = f", derived: {p.derived}" if p.derived else ""
        title = f"ANC {count_text(p.value)}/µL on {p.day} ({p.band}){how}; {p.ref}"
        if not p.current:
            title += " (earlier course)"
        shape = "circle" if p.current else "square"
        marker(current if p.current else earlier, shape, x(p.day), y(p.value), "point", title)
    if points:
        last = points[-1]
        text(current, x(last.day) + 7, y(last.value) - 7, count_text(last.value), "value-label")


def _draw_doses(svg: Svg, doses: tuple[DoseStep, ...], x: DateScale) -> None:
    group = svg.group("doses")
    text(
        group,
        PLOT_X0 - 7,
        DOSE_TOP - 6,
        "Clozapine mg/day",
        "axis-label",
        **{"text-anchor": "start"},
    )
    line(group, PLOT_X0, DOSE_BOTTOM, PLOT_X1, DOSE_BOTTOM, "axis")
    if not doses:
        text(
            group,
            PLOT_X0 + 6,
            DOSE_BOTTOM - 8,
            "no clozapine order with a readable dose",
            "dose-label",
        )
        return
    dose_y = LinearScale(0.0, max(d.mg for d in doses), DOSE_BOTTOM, DOSE_TOP + 8)
    previous: DoseStep | None = None
    labelled_at = float("-inf")
    for i, d in enumerate(doses):
        y0 = dose_y(d.mg)
        if previous is not None and previous.end == d.start:
            line(group, x(d.start), dose_y(previous.mg), x(d.start), y0, "dose-line")
        line(group, x(d.start), y0, x(d.end), y0, "dose-line")
        draft = " (draft order)" if d.proposed else ""
        title = f"Clozapine {count_text(d.mg)} mg/day from {d.start}{draft}; {d.ref}"
        marker(group, "diamond", x(d.start), y0, "dose-change", title)
        room = x(d.start) - labelled_at >= LABEL_ROOM or i == len(doses) - 1
        if (previous is None or previous.mg != d.mg) and room:
            text(group, x(d.start) + 6, y0 - 5, f"{count_text(d.mg)} mg{draft}", "dose-label")
            labelled_at = x(d.start)
        previous = d
