"""Reading plain FHIR R4 values shared by the mappers: code systems, dates, text, references,
numbers and the problem text for a missing value.

Rulebook §12 (code systems). Safety principle: missing or unreadable data is never normal, so
the readers return ``None`` or a problem text, never a default. A FHIR date is midnight UTC with
``date_only``; a dateTime without offset is read as UTC; a year or year-month only is unreadable.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
SYSTEM_ALIASES = {
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
}
VALUE_KEYS = (
    "valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean", "valueInteger",
    "valueRange", "valueRatio", "valueSampledData", "valueTime", "valueDateTime", "valuePeriod",
)  # fmt: skip
NUMBER_WITH_UNIT = re.compile(
    r"\s*(<=|>=|<|>)?\s*([0-9]+(?:\.[0-9]+)?)(?:(?:\s+|(?=[^0-9.\s]))(\S.*?))?\s*"
)
_NOT_WORD = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Target:
    """What a recognised Observation code means: a lab concept, smoking status or a scale."""

    kind: Literal["lab", "smoking", "rating"]
    name: str
    label: str
    code: str = ""
    fasting: bool = False
    low: float = 0.0
    high: float = 0.0


def system_of(coding: dict[str, Any]) -> str:
    system = coding.get("system")
    return SYSTEM_ALIASES.get(system, system) if isinstance(system, str) else ""


def normalise_text(text: str) -> str:
    """Lower case, ``(finding)`` dropped, punctuation as single spaces, padded with spaces
    so that ``" phrase " in text`` is a whole-word match."""
    return " " + _NOT_WORD.sub(" ", text.lower().replace("(finding)", " ")).strip() + " "


def parse_datetime(value: Any) -> tuple[datetime, bool] | None:
    """A FHIR date, dateTime or instant as (UTC datetime, date_only); ``None`` when the value
    is unreadable or only a year or year-month."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC), True
        if value[10] != "T":
            return None
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)), False


def reference(kind: str, resource: dict[str, Any]) -> str:
    rid = resource.get("id")
    return f"{kind}/{rid}" if isinstance(rid, str) and rid else f"{kind}/(no id)"


def finite_number(value: Any) -> float | None:
    """A finite JSON number; ``None`` for anything else, including booleans."""
    if type(value) is not float and type(value) is not int:  # bool is not a number here
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def absent(holder: dict[str, Any], label: str) -> str:
    """The problem text for an Observation (or component) without a usable value."""
    for key in VALUE_KEYS:
        if key in holder:
            return f"{label}: {key} is not a usable value"
    dar = holder.get("dataAbsentReason")
    if isinstance(dar, dict):
        codings = dar.get("coding")
        first = codings[0] if isinstance(codings, list) and codings else {}
        why = first.get("code") if isinstance(first, dict) else None
        why = why or dar.get("text")
        return f"{label}: no value (dataAbsentReason: {why or 'unstated'})"
    return f"{label}: no value"
