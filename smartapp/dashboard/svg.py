"""Small building blocks for the dashboard's server-side SVG charts.

Charts are built as ElementTree elements and serialised once, so every piece of text (a
medication name, a label from the data) is escaped by the serialiser rather than by hand.
Meaning never rests on colour alone: bands carry hatch patterns of different density and a
text label, series differ by marker shape, and every mark has a ``<title>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from xml.etree.ElementTree import Element, SubElement, tostring

SVG_NS = "http://www.w3.org/2000/svg"
Attrs = dict[str, str]


def fmt(value: float) -> str:
    """A coordinate with at most 2 decimals (stable output for tests and diffs)."""
    return f"{round(value, 2):g}"


def count_text(value: float) -> str:
    """1500.0 -> '1,500'; 2.5 -> '2.5'."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0")


@dataclass(frozen=True)
class LinearScale:
    """Maps ``lo``..``hi`` onto ``out_lo``..``out_hi`` (for y, out_lo is the bottom pixel)."""

    lo: float
    hi: float
    out_lo: float
    out_hi: float

    def __call__(self, value: float) -> float:
        if self.hi == self.lo:
            return self.out_lo
        share = (value - self.lo) / (self.hi - self.lo)
        return self.out_lo + share * (self.out_hi - self.out_lo)


@dataclass(frozen=True)
class DateScale:
    start: date
    end: date
    x0: float
    x1: float

    def __call__(self, day: date) -> float:
        days = max((self.end - self.start).days, 1)
        return self.x0 + (day - self.start).days / days * (self.x1 - self.x0)


def nice_ceiling(value: float, step: float) -> float:
    return max(step, math.ceil(value / step) * step)


def value_step(top: float, max_ticks: int = 8) -> float:
    """A round tick step (1, 2, 2.5 or 5 x 10^n) giving at most ``max_ticks`` ticks to ``top``."""
    raw = max(top, 1e-9) / max_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0):
        if factor * magnitude >= raw:
            return float(factor * magnitude)
    return float(10 * magnitude)


def date_ticks(start: date, end: date, max_ticks: int = 8) -> list[tuple[date, str]]:
    """Tick dates and labels: weeks for a short span, months, then years."""
    span = (end - start).days
    if span <= 120:
        step = max(1, math.ceil(span / max_ticks))
        step = math.ceil(step / 7) * 7 if step > 4 else step
        days = range(0, span + 1, step)
        return [(start + timedelta(days=d), (start + timedelta(days=d)).isoformat()) for d in days]
    if span <= 3 * 365:
        months = max(1, math.ceil(span / 30.4 / max_ticks))
        ticks: list[tuple[date, str]] = []
        year, month = start.year, start.month + 1
        while True:
            year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
            day = date(year, month, 1)
            if day > end:
                return ticks
            ticks.append((day, day.strftime("%b %Y")))
            month += months
    years = max(1, math.ceil(span / 365.25 / max_ticks))
    return [
        (date(y, 1, 1), str(y))
        for y in range(start.year + 1, end.year + 1, years)
        if date(y, 1, 1) <= end
    ]


class Svg:
    """An ``<svg role="img">`` with ``<title>``/``<desc>`` wired up by ``aria-labelledby``."""

    def __init__(self, chart_id: str, width: int, height: int, title: str, desc: str) -> None:
        self.chart_id = chart_id
        self.root = Element(
            "svg",
            {
                "xmlns": SVG_NS,
                "id": chart_id,
                "class": "chart",
                "role": "img",
                "viewBox": f"0 0 {width} {height}",
                "width": str(width),
                "height": str(height),
                "aria-labelledby": f"{chart_id}-title {chart_id}-desc",
            },
        )
        SubElement(self.root, "title", {"id": f"{chart_id}-title"}).text = title
        SubElement(self.root, "desc", {"id": f"{chart_id}-desc"}).text = desc
        self.defs = SubElement(self.root, "defs")

    def ref(self, name: str) -> str:
        return f"{self.chart_id}-{name}"

    def hatch(self, name: str, spacing: int, angle: int, cross: bool = False) -> str:
        """A hatch pattern (denser = smaller ``spacing``); returns its ``url(#...)``."""
        pattern = SubElement(
            self.defs,
            "pattern",
            {
                "id": self.ref(name),
                "class": f"hatch hatch-{name}",
                "patternUnits": "userSpaceOnUse",
                "width": str(spacing),
                "height": str(spacing),
                "patternTransform": f"rotate({angle})",
            },
        )
        SubElement(pattern, "line", {"x1": "0", "y1": "0", "x2": "0", "y2": str(spacing)})
        if cross:
            SubElement(pattern, "line", {"x1": "0", "y1": "0", "x2": str(spacing), "y2": "0"})
        return f"url(#{self.ref(name)})"

    def group(self, cls: str, parent: Element | None = None) -> Element:
        return SubElement(self.root if parent is None else parent, "g", {"class": cls})

    def serialise(self) -> str:
        return tostring(self.root, encoding="unicode", short_empty_elements=True)


def add(parent: Element, tag: str, attrs: Attrs, title: str | None = None) -> Element:
    element = SubElement(parent, tag, attrs)
    if title:
        SubElement(element, "title").text = title
    return element


def text(parent: Element, x: float, y: float, content: str, cls: str, **extra: str) -> Element:
    element = SubElement(parent, "text", {"x": fmt(x), "y": fmt(y), "class": cls, **extra})
    element.text = content
    return element


def rect(parent: Element, x0: float, y0: float, x1: float, y1: float, attrs: Attrs) -> Element:
    """A rectangle between two corners in any order."""
    return SubElement(
        parent,
        "rect",
        {
            "x": fmt(min(x0, x1)),
            "y": fmt(min(y0, y1)),
            "width": fmt(abs(x1 - x0)),
            "height": fmt(abs(y1 - y0)),
            **attrs,
        },
    )


def line(parent: Element, x1: float, y1: float, x2: float, y2: float, cls: str) -> Element:
    return SubElement(
        parent,
        "line",
        {"x1": fmt(x1), "y1": fmt(y1), "x2": fmt(x2), "y2": fmt(y2), "class": cls},
    )


def marker(parent: Element, shape: str, x: float, y: float, cls: str, title: str) -> Element:
    """A data point: ``circle``, ``square``, ``triangle`` or ``diamond`` (shape carries the
    series, not colour)."""
    r = 4.5
    if shape == "circle":
        attrs = {"cx": fmt(x), "cy": fmt(y), "r": fmt(r), "class": cls}
        return add(parent, "circle", attrs, title)
    if shape == "square":
        attrs = {"x": fmt(x - r), "y": fmt(y - r), "width": fmt(2 * r), "height": fmt(2 * r)}
        return add(parent, "rect", {**attrs, "class": cls}, title)
    corners = {
        "triangle": [(x, y - r - 1), (x + r + 1, y + r), (x - r - 1, y + r)],
        "diamond": [(x, y - r - 1), (x + r + 1, y), (x, y + r + 1), (x - r - 1, y)],
    }[shape]
    points = " ".join(f"{fmt(px)},{fmt(py)}" for px, py in corners)
    return add(parent, "polygon", {"points": points, "class": cls}, title)


def polyline(parent: Element, points: list[tuple[float, float]], cls: str) -> Element | None:
    if len(points) < 2:
        return None
    coords = " ".join(f"{fmt(x)},{fmt(y)}" for x, y in points)
    return SubElement(parent, "polyline", {"points": coords, "class": cls, "fill": "none"})
