"""FHIR dates, Timing and coverage intervals for medication resources (rulebook §1).

Coverage intervals are half-open ``[start, end)`` (``smartapp.domain``), whereas a FHIR period's
``end`` is inclusive: a ``boundsPeriod.end`` of ``2026-01-31`` covers that whole day, so the
interval ends on ``2026-02-01``. Timestamps are read in UTC and reduced to their UTC date.

How often a dose is taken is read from ``Timing`` only; nothing here assumes "once daily" when
the Timing says nothing (the caller reports that as a data issue). Where a Timing can be read
two ways, the reading with more doses per day wins: the maximum-dose checks want the maximum.
The tables (timing codes, time units, meal events) live in ``data/medications.json``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from typing import Any

from fhir_mappings.codetables import load_table

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@dataclass(frozen=True)
class FhirDate:
    """A FHIR date/dateTime reduced to a UTC day and the precision it was given with."""

    day: date
    precision: str  # "year" | "month" | "day"

    def end_exclusive(self) -> date:
        """First day after the period this value names (inclusive FHIR end -> exclusive)."""
        if self.precision == "year":
            return date(self.day.year + 1, 1, 1)
        if self.precision == "month":
            year, month = divmod(self.day.month, 12)
            return date(self.day.year + year, month + 1, 1)
        return self.day + timedelta(days=1)


def parse_date(value: Any) -> FhirDate | None:
    """Read a FHIR ``date`` or ``dateTime``; ``None`` for anything else (never raises)."""
    return _parse_date(value) if isinstance(value, str) else None


@lru_cache(maxsize=8192)
def _parse_date(value: str) -> FhirDate | None:
    match = _DATE.match(value.strip())
    if match is None:
        return None
    try:
        year = int(match["y"])
        if match["m"] is None:
            return FhirDate(date(year, 1, 1), "year")
        if match["d"] is None:
            return FhirDate(date(year, int(match["m"]), 1), "month")
        day = date(year, int(match["m"]), int(match["d"]))
        if match["time"] is None:
            return FhirDate(day, "day")
        tz = match["tz"] or "Z"
        stamp = datetime.fromisoformat(
            f"{day.isoformat()}T{match['time']}{tz.replace('Z', '+00:00')}"
        )
        return FhirDate(stamp.astimezone(UTC).date(), "day")
    except ValueError:
        return None


@cache
def _tables() -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(timing code -> doses/day, time unit -> days, EventTiming code -> events/day)."""
    codes: dict[str, float] = {}
    units: dict[str, float] = {}
    events: dict[str, float] = {}
    for entry in load_table("medications").entries:
        kind = entry.get("kind")
        if kind == "timing-code":
            every = entry.get("every_days")
            rate = 1.0 / float(every) if every else float(entry["per_day"])
            codes[str(entry["code"]).upper()] = rate
        elif kind == "time-unit":
            for name in (entry["code"], *entry.get("aliases", ())):
                units[str(name)] = float(entry["days"])
        elif kind == "event":
            events[str(entry["code"]).upper()] = float(entry["per_day"])
    return codes, units, events


def unit_days(unit: Any) -> float | None:
    """Days in one UCUM time unit (``h``, ``d``, ``wk``, ``mo``, ``a``...)."""
    if not isinstance(unit, str):
        return None
    return _tables()[1].get(unit.strip()) or _tables()[1].get(unit.strip().lower())


def duration_days(duration: Any) -> float | None:
    """A FHIR Duration (or Quantity of time) in days; ``None`` when unreadable or negative."""
    if not isinstance(duration, dict):
        return None
    value = duration.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        return None
    days = unit_days(duration.get("code")) or unit_days(duration.get("unit"))
    return float(value) * days if days is not None else None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _repeat_per_day(repeat: dict[str, Any]) -> float | None:
    events = _tables()[2]
    candidates: list[float] = []
    frequency = _num(repeat.get("frequencyMax")) or _num(repeat.get("frequency"))
    period = _num(repeat.get("period"))
    if period is not None:
        days = unit_days(repeat.get("periodUnit"))
        if days is not None:
            candidates.append((frequency or 1.0) / (period * days))
    when = repeat.get("when")
    if isinstance(when, list) and when:
        per_event = [events.get(str(w).upper(), 1.0) for w in when if isinstance(w, str)]
        if per_event:
            candidates.append(sum(per_event))
    times = repeat.get("timeOfDay")
    if isinstance(times, list) and times:
        candidates.append(float(len(times)))
    return max(candidates) if candidates else None


def _code_per_day(code: Any) -> float | None:
    if not isinstance(code, dict):
        return None
    codes = _tables()[0]
    codings = code.get("coding")
    for coding in codings if isinstance(codings, list) else []:
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            per_day = codes.get(coding["code"].upper())
            if per_day is not None:
                return per_day
    text = code.get("text")
    return codes.get(text.strip().upper()) if isinstance(text, str) else None


def per_day(timing: Any) -> float | None:
    """Administrations per day from ``repeat`` (frequency/period, ``when``, ``timeOfDay``) or
    ``timing.code`` (HL7 v3 GTSAbbreviation: BID, TID, QD...). ``None`` when not stated."""
    if not isinstance(timing, dict):
        return None
    repeat = timing.get("repeat")
    from_repeat = _repeat_per_day(repeat) if isinstance(repeat, dict) else None
    from_code = _code_per_day(timing.get("code"))
    found = [v for v in (from_repeat, from_code) if v is not None]
    return max(found) if found else None


def interval_days(timing: Any) -> float | None:
    """Days between administrations (a long-acting injection's interval), from the Timing."""
    rate = per_day(timing)
    return round(1.0 / rate, 6) if rate else None


def bounds(timing: Any) -> tuple[FhirDate | None, FhirDate | None, float | None]:
    """(boundsPeriod.start, boundsPeriod.end, boundsDuration in days) of a Timing."""
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    if not isinstance(repeat, dict):
        return None, None, None
    period = repeat.get("boundsPeriod")
    start = parse_date(period.get("start")) if isinstance(period, dict) else None
    end = parse_date(period.get("end")) if isinstance(period, dict) else None
    return start, end, duration_days(repeat.get("boundsDuration"))


def add_days(start: date, days: float) -> date:
    """``start`` plus a possibly fractional number of covered days, rounded up."""
    return start + timedelta(days=max(1, math.ceil(days - 1e-9)))


def span(group: list[dict[str, Any]], fallback: date | None) -> tuple[date | None, date | None]:
    """Coverage of concurrent dosage instructions from their Timing bounds: the earliest
    ``boundsPeriod.start`` (else ``fallback``) and, when every instruction is bounded, the
    latest end (exclusive) or the start plus the longest ``boundsDuration``."""
    starts: list[date] = []
    ends: list[date] = []
    durations: list[float] = []
    for dosage in group:
        start, end, duration = bounds(dosage.get("timing"))
        if start is not None:
            starts.append(start.day)
        if end is not None:
            ends.append(end.end_exclusive())
        if duration is not None:
            durations.append(duration)
    first = min(starts) if starts else fallback
    if ends and len(ends) == len(group):
        return first, max(ends)
    if durations and len(durations) == len(group) and first is not None:
        return first, add_days(first, max(durations))
    return first, None


def bounded(group: list[dict[str, Any]]) -> bool:
    """Whether any instruction of the group states where it starts or how long it lasts."""
    for dosage in group:
        start, _, duration = bounds(dosage.get("timing"))
        if start is not None or duration is not None:
            return True
    return False


def phases(instructions: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Instructions with different ``sequence`` numbers are sequential only when each group
    says when it applies; otherwise they are read as concurrent (summed: the higher dose)."""
    sequences = [d.get("sequence") for d in instructions]
    numbers = sorted({s for s in sequences if isinstance(s, int)})
    if len(numbers) < 2 or len(numbers) != len(set(sequences)):
        return [instructions]
    groups = [[d for d in instructions if d.get("sequence") == n] for n in numbers]
    return groups if all(bounded(g) for g in groups) else [instructions]


def days_supply(value: Any) -> float | None:
    """``MedicationDispense.daysSupply`` in days; a bare number is taken as days."""
    if isinstance(value, dict) and value.get("code") is None and value.get("unit") is None:
        amount = value.get("value")
        return _num(amount)
    return duration_days(value) or None
