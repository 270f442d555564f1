"""The pharmacology panel: why clozapine works differently (rulebook §11) [P1-P4].

Explanatory data only, read by no rule: D2 occupancy (the 60-78 % window other antipsychotics
need, clozapine's ~47 % (20-67 %)), 5-HT2A occupancy (~89 %) and clozapine's receptor
affinities (Ki, nM). The values live in ``data/pharmacology.json`` with their source tags, which
must name sources of the rule data (``ruleset.json``); a value on which sources differ is a
range ``low``-``high``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from smartapp.dashboard.svg import LinearScale, Svg, line, marker, rect, text
from smartapp.rules.ruleset import default_ruleset

OCCUPANCY_KINDS = frozenset({"window", "threshold", "drug"})


class PharmacologyDataError(ValueError):
    """``pharmacology.json`` is malformed (a packaging error)."""


@dataclass(frozen=True)
class Occupancy:
    """A receptor occupancy figure (percent); ``typical`` is set for a drug's own value."""

    id: str
    label: str
    receptor: str
    low: float
    high: float
    kind: str
    sources: tuple[str, ...]
    ref: str
    typical: float | None = None
    approximate: bool = False

    @property
    def text(self) -> str:
        about = "about " if self.approximate else ""
        if self.typical is not None and (self.low, self.high) != (self.typical, self.typical):
            return f"{about}{number(self.typical)} % ({number(self.low)}-{number(self.high)} %)"
        return f"{about}{span(self.low, self.high)} %"


@dataclass(frozen=True)
class Affinity:
    """Clozapine's Ki at one receptor, in nM (lower binds tighter)."""

    receptor: str
    low: float
    high: float
    sources: tuple[str, ...]
    ref: str
    approximate: bool = False

    @property
    def text(self) -> str:
        return ("about " if self.approximate else "") + span(self.low, self.high)

    @property
    def differs(self) -> bool:
        return self.low != self.high


@dataclass(frozen=True)
class Pharmacology:
    version: str
    occupancy: tuple[Occupancy, ...]
    affinities: tuple[Affinity, ...]  # tightest binding first
    sources: dict[str, str]  # tag -> citation, for the tags used

    def occupancy_of(self, figure_id: str) -> Occupancy:
        for item in self.occupancy:
            if item.id == figure_id:
                return item
        raise KeyError(figure_id)


def number(value: float) -> str:
    return f"{value:g}"


def span(low: float, high: float) -> str:
    return number(low) if low == high else f"{number(low)}-{number(high)}"


def _number(entry: dict[str, Any], key: str, where: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PharmacologyDataError(f"{where}: {key} must be a non-negative number")
    return float(value)


def _sources(entry: dict[str, Any], where: str, known: dict[str, str]) -> tuple[str, ...]:
    tags = entry.get("source")
    if not isinstance(tags, list) or not tags or not all(isinstance(t, str) for t in tags):
        raise PharmacologyDataError(f"{where}: source must be a non-empty list of tags")
    unknown = [t for t in tags if t not in known]
    if unknown:
        raise PharmacologyDataError(f"{where}: unknown source tag(s) {', '.join(unknown)}")
    return tuple(tags)


def _range(entry: dict[str, Any], where: str) -> tuple[float, float]:
    low, high = _number(entry, "low", where), _number(entry, "high", where)
    if low > high:
        raise PharmacologyDataError(f"{where}: low is above high")
    return low, high


def _occupancy(entry: dict[str, Any], i: int, known: dict[str, str]) -> Occupancy:
    where = f"occupancy[{i}]"
    low, high = _range(entry, where)
    typical = _number(entry, "typical", where) if "typical" in entry else None
    if typical is not None and not low <= typical <= high:
        raise PharmacologyDataError(f"{where}: typical lies outside low-high")
    if high > 100 or entry.get("unit") != "%":
        raise PharmacologyDataError(f"{where}: occupancy is a percentage (unit '%', <= 100)")
    if entry.get("kind") not in OCCUPANCY_KINDS:
        raise PharmacologyDataError(f"{where}: kind must be one of {sorted(OCCUPANCY_KINDS)}")
    return Occupancy(
        id=str(entry.get("id") or where),
        label=str(entry.get("label") or ""),
        receptor=str(entry.get("receptor") or ""),
        low=low,
        high=high,
        kind=str(entry["kind"]),
        sources=_sources(entry, where, known),
        ref=str(entry.get("ref") or ""),
        typical=typical,
        approximate=bool(entry.get("approximate", False)),
    )


def _affinity(entry: dict[str, Any], i: int, known: dict[str, str]) -> Affinity:
    where = f"affinities[{i}]"
    low, high = _range(entry, where)
    if not isinstance(entry.get("receptor"), str) or not entry["receptor"]:
        raise PharmacologyDataError(f"{where}: receptor must be named")
    return Affinity(
        receptor=entry["receptor"],
        low=low,
        high=high,
        sources=_sources(entry, where, known),
        ref=str(entry.get("ref") or ""),
        approximate=bool(entry.get("approximate", False)),
    )


def parse_pharmacology(data: Any, known_sources: dict[str, str]) -> Pharmacology:
    """Validate the panel data: every figure has a range and source tags that ``known_sources``
    (the rule data's source list) names."""
    if not isinstance(data, dict) or not isinstance(data.get("version"), str):
        raise PharmacologyDataError("pharmacology.json needs a version")
    occupancy_raw, affinity_raw = data.get("occupancy"), data.get("affinities")
    if not isinstance(occupancy_raw, list) or not isinstance(affinity_raw, list):
        raise PharmacologyDataError("pharmacology.json needs occupancy and affinities lists")
    if not occupancy_raw or not affinity_raw:
        raise PharmacologyDataError("pharmacology.json: occupancy and affinities are empty")
    occupancy = tuple(_occupancy(e, i, known_sources) for i, e in enumerate(occupancy_raw))
    affinities = tuple(
        sorted(
            (_affinity(e, i, known_sources) for i, e in enumerate(affinity_raw)),
            key=lambda a: (a.low, a.high, a.receptor),
        )
    )
    used = {t for item in occupancy for t in item.sources}
    used |= {t for item in affinities for t in item.sources}
    return Pharmacology(
        version=data["version"],
        occupancy=occupancy,
        affinities=affinities,
        sources={t: known_sources[t] for t in sorted(used)},
    )


@cache
def pharmacology() -> Pharmacology:
    """The packaged panel data, validated against the rule data's sources (loaded once)."""
    path = resources.files("smartapp.dashboard") / "data" / "pharmacology.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PharmacologyDataError(f"pharmacology.json: {exc}") from exc
    return parse_pharmacology(data, default_ruleset().sources)


def occupancy_svg(data: Pharmacology) -> str:
    """Receptor occupancy on one 0-100 % scale: the D2 window other antipsychotics need, where
    extrapyramidal effects start, and clozapine's D2 (with its range) and 5-HT2A occupancy."""
    window, eps = data.occupancy_of("d2-window"), data.occupancy_of("eps-threshold")
    d2, ht2a = data.occupancy_of("clozapine-d2"), data.occupancy_of("clozapine-5ht2a")
    desc = (
        f"{window.label}: {window.text}. {eps.label} {eps.text}. {d2.label}: {d2.text}. "
        f"{ht2a.label}: {ht2a.text}."
    )
    svg = Svg(
        "occupancy-chart", 860, 150, "Receptor occupancy: clozapine against the D2 window", desc
    )
    x = LinearScale(0.0, 100.0, 40.0, 820.0)
    axis = svg.group("axes")
    line(axis, x(0), 118, x(100), 118, "axis")
    for tick in range(0, 101, 10):
        line(axis, x(tick), 118, x(tick), 122, "tick")
        text(axis, x(tick), 136, f"{tick} %", "tick-label", **{"text-anchor": "middle"})
    marks = svg.group("occupancy")
    fill = svg.hatch("window", 7, 45)
    box = {"class": "band occupancy-window", "fill": fill}
    rect(marks, x(window.low), 8, x(window.high), 80, box)
    text(marks, x(window.low) + 3, 22, f"D2 window {span(window.low, window.high)} %", "band-label")
    line(marks, x(eps.low), 8, x(eps.low), 80, "threshold")
    text(marks, x(eps.low) + 3, 38, f"EPS above ~{span(eps.low, eps.high)} %", "band-label")
    typical = d2.typical if d2.typical is not None else d2.low
    line(marks, x(d2.low), 56, x(d2.high), 56, "range-line")
    marker(marks, "circle", x(typical), 56, "point", f"{d2.label}: {d2.text}")
    text(marks, x(d2.low), 48, f"clozapine D2 {d2.text}", "value-label")
    typical = ht2a.typical if ht2a.typical is not None else ht2a.low
    marker(marks, "diamond", x(typical), 100, "point", f"{ht2a.label}: {ht2a.text}")
    label = f"clozapine 5-HT2A {ht2a.text}"
    text(marks, x(typical) - 8, 104, label, "value-label", **{"text-anchor": "end"})
    return svg.serialise()


@cache
def occupancy_figure() -> str:
    """The packaged data's occupancy SVG (drawn once per process)."""
    return occupancy_svg(pharmacology())
