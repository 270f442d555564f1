"""The levels chart: clozapine and norclozapine (ng/mL) over time with the 350-600 ng/mL target
band, the 1,000 ng/mL alert level and the clozapine/norclozapine ratio of each sample
(rulebook §5) [T1, T2, T3].

Ranges come from the rule data (``levels.*``). A norclozapine is paired with a clozapine level
by the rules' own pairing (``levels.paired_norclozapine``: same specimen, by policy the same
calendar day); the ratio is shown for every pair, its reading (below 0.5, typical 1.25-2,
above 3) from the same rule data. The chart marks clozapine with circles and norclozapine with
triangles, so the two series differ without colour.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

from smartapp.dashboard.svg import (
    DateScale,
    LinearScale,
    Svg,
    count_text,
    date_ticks,
    line,
    marker,
    nice_ceiling,
    polyline,
    rect,
    text,
    value_step,
)
from smartapp.domain import PatientRecord
from smartapp.rules.levels import NORCLOZAPINE, UNIT, paired_norclozapine
from smartapp.rules.ruleset import RuleContext

WIDTH, HEIGHT = 860, 300
X0, X1, TOP, BOTTOM = 62.0, 690.0, 24.0, 250.0
LABEL_Y = 276.0
MAX_LABELLED = 12  # samples; beyond this the points keep their <title> and the table


@dataclass(frozen=True)
class LevelRow:
    """One sample: the clozapine level, its paired norclozapine and their ratio."""

    day: date
    clozapine: float | None
    clozapine_ref: str | None
    norclozapine: float | None
    norclozapine_ref: str | None
    ratio: float | None
    reading: str  # the level against the target range
    ratio_reading: str  # the ratio against the rule data's limits


@dataclass(frozen=True)
class LevelChart:
    rows: tuple[LevelRow, ...]
    target: tuple[float, float]
    alert: float
    ratio_typical: tuple[float, float]
    ratio_limits: tuple[float, float]
    description: str
    svg: str | None
    empty_message: str = ""


def _reading(value: float | None, ctx: RuleContext) -> str:
    r = ctx.rules
    if value is None:
        return "no clozapine level on this day"
    low, high = r.num("levels.therapeutic_min_ng_ml"), r.num("levels.therapeutic_max_ng_ml")
    alert = r.num("levels.alert_ng_ml")
    value = round(value, 9)
    if value >= alert:
        return f"at or above the alert level ({count_text(alert)})"
    if value > high:
        return f"above the target range ({count_text(low)}–{count_text(high)})"
    if value >= low:
        return "within the target range"
    return f"below {count_text(low)}"


def _ratio_reading(ratio: float | None, ctx: RuleContext) -> str:
    r = ctx.rules
    if ratio is None:
        return "no pair on the same specimen"
    low, high = r.num("levels.ratio.low_below"), r.num("levels.ratio.high_above")
    typical = (r.num("levels.ratio.typical_min"), r.num("levels.ratio.typical_max"))
    ratio = round(ratio, 9)
    if ratio < low:
        return f"low (< {count_text(low)})"
    if ratio > high:
        return f"high (> {count_text(high)})"
    if typical[0] <= ratio <= typical[1]:
        return "typical"
    return "outside the typical range, within the limits"


def level_rows(record: PatientRecord, ctx: RuleContext) -> list[LevelRow]:
    """Every clozapine level up to ``as_of`` with its paired norclozapine, plus any
    norclozapine that has no clozapine level beside it; oldest first."""
    rows: list[LevelRow] = []
    paired: set[str] = set()
    for level in record.labs_of("clozapine"):
        if level.unit != UNIT or level.day > ctx.as_of:
            continue
        nor = paired_norclozapine(record, level, ctx)
        ratio = level.value / nor.value if nor is not None and nor.value > 0 else None
        if nor is not None:
            paired.add(nor.ref)
        rows.append(
            LevelRow(
                level.day,
                level.value,
                level.ref,
                nor.value if nor else None,
                nor.ref if nor else None,
                ratio,
                _reading(level.value, ctx),
                _ratio_reading(ratio, ctx),
            )
        )
    for nor in record.labs_of(NORCLOZAPINE):
        if nor.unit == UNIT and nor.day <= ctx.as_of and nor.ref not in paired:
            rows.append(
                LevelRow(
                    nor.day,
                    None,
                    None,
                    nor.value,
                    nor.ref,
                    None,
                    _reading(None, ctx),
                    _ratio_reading(None, ctx),
                )
            )
    return sorted(rows, key=lambda row: (row.day, row.clozapine_ref or row.norclozapine_ref or ""))


def levels_chart(record: PatientRecord, ctx: RuleContext) -> LevelChart:
    r = ctx.rules
    rows = tuple(level_rows(record, ctx))
    target = (r.num("levels.therapeutic_min_ng_ml"), r.num("levels.therapeutic_max_ng_ml"))
    alert = r.num("levels.alert_ng_ml")
    chart = LevelChart(
        rows=rows,
        target=target,
        alert=alert,
        ratio_typical=(r.num("levels.ratio.typical_min"), r.num("levels.ratio.typical_max")),
        ratio_limits=(r.num("levels.ratio.low_below"), r.num("levels.ratio.high_above")),
        description="",
        svg=None,
    )
    description = describe(chart)
    if not rows:
        message = f"No clozapine or norclozapine levels on record up to {ctx.as_of}."
        return replace(chart, description=description, empty_message=message)
    svg = render_levels(chart, description)
    return replace(chart, description=description, svg=svg)


def describe(chart: LevelChart) -> str:
    low, high = chart.target
    parts = [
        f"Target range {count_text(low)}–{count_text(high)} ng/mL; alert level "
        f"{count_text(chart.alert)} ng/mL."
    ]
    levels = [row for row in chart.rows if row.clozapine is not None]
    if levels:
        last = levels[-1]
        ratio = f", C/N ratio {last.ratio:.2f}" if last.ratio is not None else ""
        parts.append(
            f"{len(levels)} clozapine levels from {levels[0].day} to {last.day}; latest "
            f"{count_text(last.clozapine or 0)} ng/mL on {last.day} ({last.reading}){ratio}."
        )
    elif chart.rows:
        parts.append("Norclozapine only, no clozapine level.")
    else:
        parts.append("No levels on record.")
    return " ".join(parts)


def render_levels(chart: LevelChart, description: str) -> str:
    svg = Svg("levels-chart", WIDTH, HEIGHT, "Clozapine and norclozapine levels", description)
    days = [row.day for row in chart.rows]
    pad = max(3, (max(days) - min(days)).days // 30)
    start, end = min(days) - timedelta(days=pad), max(days) + timedelta(days=pad)
    x = DateScale(start, end, X0, X1)
    values = [v for row in chart.rows for v in (row.clozapine, row.norclozapine) if v is not None]
    peak = max([*values, chart.alert * 1.1])
    step = value_step(peak)
    y = LinearScale(0.0, nice_ceiling(peak, step), BOTTOM, TOP)
    bands = svg.group("bands")
    low, high = chart.target
    target = rect(
        bands,
        X0,
        y(low),
        X1,
        y(high),
        {"class": "band band-target", "fill": svg.hatch("target", 8, 45)},
    )
    target.set("data-low", f"{low:g}")
    text(
        bands,
        X1 + 6,
        (y(low) + y(high)) / 2 + 4,
        f"Target {count_text(low)}–{count_text(high)}",
        "band-label",
    )
    line(bands, X0, y(chart.alert), X1, y(chart.alert), "threshold alert").set(
        "data-value", f"{chart.alert:g}"
    )
    text(bands, X1 + 6, y(chart.alert) + 4, f"Alert ≥ {count_text(chart.alert)}", "band-label")
    axes = svg.group("axes")
    line(axes, X0, BOTTOM, X1, BOTTOM, "axis")
    line(axes, X0, TOP, X0, BOTTOM, "axis")
    value = 0.0
    while value <= y.hi + 1e-9:
        text(axes, X0 - 7, y(value) + 4, count_text(value), "tick-label", **{"text-anchor": "end"})
        value += step
    text(axes, 14, TOP - 8, "ng/mL", "axis-label")
    for day, label in date_ticks(start, end):
        text(axes, x(day), LABEL_Y, label, "tick-label", **{"text-anchor": "middle"})
    series = svg.group("series")
    levels = [(x(r.day), y(r.clozapine)) for r in chart.rows if r.clozapine is not None]
    polyline(series, levels, "level-line")
    nors = [(x(r.day), y(r.norclozapine)) for r in chart.rows if r.norclozapine is not None]
    polyline(series, nors, "norclozapine-line")
    for row in chart.rows:
        ratio = f"; C/N {row.ratio:.2f} ({row.ratio_reading})" if row.ratio is not None else ""
        if row.clozapine is not None:
            title = (
                f"Clozapine {count_text(row.clozapine)} ng/mL on {row.day} ({row.reading}){ratio}"
            )
            marker(series, "circle", x(row.day), y(row.clozapine), "point clozapine", title)
            if len(chart.rows) <= MAX_LABELLED:
                label = count_text(row.clozapine) + (f" (C/N {row.ratio:.2f})" if row.ratio else "")
                text(series, x(row.day) + 7, y(row.clozapine) - 6, label, "value-label")
        if row.norclozapine is not None:
            title = f"Norclozapine {count_text(row.norclozapine)} ng/mL on {row.day}{ratio}"
            marker(series, "triangle", x(row.day), y(row.norclozapine), "point norclozapine", title)
    legend = svg.group("legend")
    marker(legend, "circle", X0 + 10, HEIGHT - 8, "point clozapine", "clozapine")
    text(legend, X0 + 20, HEIGHT - 4, "clozapine", "legend-label")
    marker(legend, "triangle", X0 + 110, HEIGHT - 8, "point norclozapine", "norclozapine")
    text(legend, X0 + 120, HEIGHT - 4, "norclozapine", "legend-label")
    return svg.serialise()
