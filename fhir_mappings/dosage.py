"""Daily dose in mg from FHIR ``Dosage`` (rulebook §8 maximum dose, §10 TRS dose adequacy).

A dose is read from ``doseAndRate[].doseQuantity`` or ``doseRange`` in mg (g, mcg converted),
in tablets/capsules times the product strength, or in mL times mg/mL; the number of doses a day
from the Timing (``fhir_mappings.timing``). Readings that could go two ways take the one with
the larger daily dose, because the maximum-dose and seizure-risk checks (§8) want the maximum:

- a ``doseRange`` counts at its ``high`` end;
- an as-needed dose counts at its maximum: ``maxDosePerPeriod`` when given, else every
  scheduled administration;
- concurrent instructions (100 mg morning + 200 mg night) are summed.

Nothing is assumed when the data are silent: a dose without a readable unit, tablets of an
unknown strength, or a scheduled dose with no Timing give a ``problem`` instead of a number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fhir_mappings import timing

_MASS_MG = {"mg": 1.0, "milligram": 1.0, "milligrams": 1.0, "g": 1000.0, "gram": 1000.0,
            "grams": 1000.0, "mcg": 0.001, "ug": 0.001, "µg": 0.001, "microgram": 0.001,
            "micrograms": 0.001}  # fmt: skip
_VOLUME_ML = {"ml": 1.0, "milliliter": 1.0, "milliliters": 1.0, "millilitre": 1.0,
              "millilitres": 1.0, "l": 1000.0}  # fmt: skip
_COUNT = frozenset({"1", "tab", "tabs", "tablet", "tablets", "tbl", "cap", "caps", "capsule",
                    "capsules", "each", "ea", "odt"})  # fmt: skip
_PER_OTHER = frozenset({"hr", "h", "actuat", "g", "kg", "mg", "l", "d", "day", "dose", "spray"})
_COUNT_WORD = re.compile(r"\b(tablets?|capsules?)\b", re.IGNORECASE)
_STRENGTH = re.compile(
    r"(?<![\d.])(\d+(?:\.\d+)?)\s*(mg|mcg|µg|ug|g)\b(?:\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+))?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Strength:
    """Product strength: mg per tablet/capsule, or mg per mL for liquids."""

    mg_per_unit: float | None = None
    mg_per_ml: float | None = None

    @property
    def known(self) -> bool:
        return self.mg_per_unit is not None or self.mg_per_ml is not None


@dataclass(frozen=True)
class Amount:
    """An amount of drug in one of three kinds: ``mg``, ``unit`` (tablets...) or ``ml``."""

    value: float
    kind: str


@dataclass(frozen=True)
class InstructionDose:
    """One ``Dosage`` read: mg/day (or mg per interval for a long-acting injection)."""

    daily_mg: float | None
    per_day: Amount | None  # in the order's own unit, for supply arithmetic
    interval_mg: float | None = None
    interval_days: float | None = None
    problem: str | None = None


def _positive(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _unit_kind(raw: Any) -> tuple[str, float] | None:
    if not isinstance(raw, str):
        return None
    key = raw.strip().strip("{}").strip().lower()
    if key in _MASS_MG:
        return "mg", _MASS_MG[key]
    if key in _VOLUME_ML:
        return "ml", _VOLUME_ML[key]
    if key in _COUNT or _COUNT_WORD.search(raw):
        return "unit", 1.0
    return None


def quantity(q: Any) -> tuple[Amount | None, str | None]:
    """A FHIR Quantity as an ``Amount``, or the reason it cannot be read."""
    if not isinstance(q, dict):
        return None, "dose is not a Quantity"
    value = _positive(q.get("value"))
    if value is None:
        return None, "dose has no positive numeric value"
    kind = _unit_kind(q.get("code")) or _unit_kind(q.get("unit"))
    if kind is None:
        unit = q.get("unit") or q.get("code") or "(none)"
        return None, f"dose unit {unit!r} is not mg, g, mcg, mL or tablets"
    return Amount(value * kind[1], kind[0]), None


def strength_from_ratio(ratio: Any) -> Strength | None:
    """``Medication.ingredient.strength`` (Ratio): mg per tablet or per mL."""
    if not isinstance(ratio, dict):
        return None
    num, _ = quantity(ratio.get("numerator"))
    den_q = ratio.get("denominator")
    den, _ = quantity(den_q) if den_q is not None else (Amount(1.0, "unit"), None)
    if num is None or den is None or num.kind != "mg":
        return None
    if den.kind == "unit":
        return Strength(mg_per_unit=num.value / den.value)
    if den.kind == "ml":
        return Strength(mg_per_ml=num.value / den.value)
    return None


def strength_from_text(texts: Iterable[str]) -> Strength | None:
    """Strength written in a product name ("clozapine 25 MG Oral Tablet", "50 MG/ML");
    ``None`` when absent or when several different strengths are named."""
    per_unit: set[float] = set()
    per_ml: set[float] = set()
    for text in texts:
        for value, unit, den_value, den_unit in _STRENGTH.findall(text):
            mg = float(value) * _MASS_MG[unit.lower()]
            denominator = den_unit.lower()
            if denominator == "ml":
                per_ml.add(mg / float(den_value or 1))
            elif denominator not in _PER_OTHER:  # "800 MG / trimethoprim": a second strength
                per_unit.add(mg)
    if len(per_unit) + len(per_ml) != 1:
        return None
    return Strength(mg_per_unit=next(iter(per_unit), None), mg_per_ml=next(iter(per_ml), None))


def to_mg(amount: Amount, strength: Strength | None) -> tuple[float | None, str | None]:
    if amount.kind == "mg":
        return amount.value, None
    if amount.kind == "unit":
        if strength is not None and strength.mg_per_unit is not None:
            return amount.value * strength.mg_per_unit, None
        return None, "dose in tablets/capsules but the product strength is unknown"
    if strength is not None and strength.mg_per_ml is not None:
        return amount.value * strength.mg_per_ml, None
    return None, "dose in mL but the product concentration (mg/mL) is unknown"


def dose_amount(dosage: dict[str, Any]) -> tuple[Amount | None, str | None]:
    """The amount given each time: ``doseQuantity``, or the high end of ``doseRange``."""
    entries = dosage.get("doseAndRate")
    if entries is not None and not isinstance(entries, list):
        return None, "doseAndRate is not a list"
    for entry in entries or []:
        if not isinstance(entry, dict):
            continue
        if "doseQuantity" in entry:
            return quantity(entry["doseQuantity"])
        if "doseRange" in entry:
            dose_range = entry["doseRange"]
            high = dose_range.get("high") if isinstance(dose_range, dict) else None
            if high is None:
                return None, "dose range has no upper bound"
            return quantity(high)
    if "dose" in dosage:  # MedicationAdministration.dosage
        return quantity(dosage["dose"])
    return None, "no dose quantity"


def _as_needed(dosage: dict[str, Any]) -> bool:
    return dosage.get("asNeededBoolean") is True or "asNeededCodeableConcept" in dosage


def _max_per_day(dosage: dict[str, Any]) -> Amount | None:
    ratio = dosage.get("maxDosePerPeriod")
    if not isinstance(ratio, dict):
        return None
    num, _ = quantity(ratio.get("numerator"))
    days = timing.duration_days(ratio.get("denominator"))
    if num is None or not days:
        return None
    return Amount(num.value / days, num.kind)


def read_instruction(
    dosage: Any, strength: Strength | None, long_acting: bool, default_interval: float | None
) -> InstructionDose:
    """Read one ``Dosage``. A long-acting injection gives mg per interval, the interval coming
    from the Timing, else from the product's default (code table)."""
    if not isinstance(dosage, dict):
        return InstructionDose(None, None, problem="dosage instruction is not an object")
    amount, problem = dose_amount(dosage)
    if long_acting:
        return _long_acting(dosage, amount, problem, strength, default_interval)
    per_day_amount: Amount
    if _as_needed(dosage) and (cap := _max_per_day(dosage)) is not None:
        per_day_amount = cap
    else:
        rate = timing.per_day(dosage.get("timing"))
        if rate is None:
            return InstructionDose(None, None, problem=problem or "no timing (how often) given")
        if amount is None:
            return InstructionDose(None, None, problem=problem)
        per_day_amount = Amount(amount.value * rate, amount.kind)
    mg, mg_problem = to_mg(per_day_amount, strength)
    return InstructionDose(mg, per_day_amount, problem=mg_problem)


def read_group(
    group: list[dict[str, Any]],
    strength: Strength | None,
    long_acting: bool,
    default_interval: float | None,
) -> InstructionDose:
    """Concurrent instructions read and combined."""
    return combine([read_instruction(d, strength, long_acting, default_interval) for d in group])


def _long_acting(
    dosage: dict[str, Any],
    amount: Amount | None,
    problem: str | None,
    strength: Strength | None,
    default_interval: float | None,
) -> InstructionDose:
    interval = timing.interval_days(dosage.get("timing")) or default_interval
    mg, mg_problem = to_mg(amount, strength) if amount is not None else (None, problem)
    if interval is None:
        return InstructionDose(
            None, None, mg, None, "long-acting injection without an interval in its timing"
        )
    if mg is None or amount is None:
        return InstructionDose(None, None, None, interval, mg_problem)
    return InstructionDose(
        mg / interval, Amount(amount.value / interval, amount.kind), mg, interval
    )


def combine(readings: list[InstructionDose]) -> InstructionDose:
    """Concurrent instructions: daily doses summed; one unreadable part makes the sum unknown."""
    if not readings:
        return InstructionDose(None, None, problem="no dosage instruction")
    if len(readings) == 1:
        return readings[0]
    problems = [r.problem for r in readings if r.problem]
    if problems or any(r.daily_mg is None for r in readings):
        return InstructionDose(None, None, problem="; ".join(dict.fromkeys(problems)) or None)
    daily = sum(r.daily_mg for r in readings if r.daily_mg is not None)
    kinds = {r.per_day.kind for r in readings if r.per_day is not None}
    per_day = None
    if len(kinds) == 1 and all(r.per_day is not None for r in readings):
        per_day = Amount(sum(r.per_day.value for r in readings if r.per_day), kinds.pop())
    intervals = [r for r in readings if r.interval_days is not None]
    first = intervals[0] if len(intervals) == 1 else None
    return InstructionDose(
        daily,
        per_day,
        first.interval_mg if first else None,
        first.interval_days if first else None,
    )


def quantity_days(value: Any, per_day: Amount | None) -> float | None:
    """Days a quantity lasts at ``per_day`` (same kind of unit only)."""
    amount, _ = quantity(value)
    if amount is None or per_day is None or amount.kind != per_day.kind or not per_day.value:
        return None
    return amount.value / per_day.value


def supply_days(dispense_request: Any, per_day: Amount | None) -> float | None:
    """Days an ended order covered: ``expectedSupplyDuration``, else quantity / daily use,
    each times (1 + ``numberOfRepeatsAllowed``)."""
    if not isinstance(dispense_request, dict):
        return None
    repeats = dispense_request.get("numberOfRepeatsAllowed")
    fills = 1 + (repeats if isinstance(repeats, int) and repeats > 0 else 0)
    supply = timing.duration_days(dispense_request.get("expectedSupplyDuration"))
    if supply:
        return supply * fills
    days = quantity_days(dispense_request.get("quantity"), per_day)
    return days * fills if days else None
