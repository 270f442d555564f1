"""UCUM-aware unit normalisation of lab results to each concept's canonical unit.

Data: ``fhir_mappings/data/units.json`` (UCUM units with their quantity kind and factor, a small
table of common non-UCUM spellings, and per concept the canonical unit, accepted kinds and molar
mass). Canonical units are those of ``smartapp.domain.LabResult`` (rulebook units note, §4, §5,
§9). A unit is looked up as a case-sensitive UCUM code first (``G/L`` is not ``g/L``), then as an
exact alias, then as an alias after lower-casing and removing spaces (``µ``/``μ`` read as ``u``).
Anything else is unknown and raises ``UnitError``: a unit is never guessed (rulebook, safety
principle).

Converted values are rounded to ``SIGNIFICANT_DIGITS`` significant digits so that binary float
error cannot move a result across a boundary (1.5 ``10*9/L`` is exactly 1500 /uL, 0.35 mg/L
exactly 350 ng/mL), while keeping far more precision than any laboratory reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from fhir_mappings.codetables import CodeTableError, load_table

SIGNIFICANT_DIGITS = 10
_MOLAR = "molar"
_MASS = "mass"


class UnitError(ValueError):
    """A value cannot be expressed in its concept's canonical unit."""


@dataclass(frozen=True)
class UnitDef:
    code: str
    kind: str
    factor: float


@dataclass(frozen=True)
class ConceptUnits:
    concept: str
    label: str
    canonical: str
    kinds: frozenset[str]
    molar_mass: float | None
    affine: tuple[str, float, float] | None


@dataclass(frozen=True)
class _Tables:
    units: dict[str, UnitDef]
    exact_aliases: dict[str, str]
    loose_aliases: dict[str, str]
    concepts: dict[str, ConceptUnits]


def _loose(unit: str) -> str:
    text = unit.replace("µ", "u").replace("μ", "u").replace("²", "2").replace("³", "3")
    return "".join(text.split()).lower()


def _number(entry: Any, key: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise CodeTableError(f"units: entry {entry!r} needs a positive number '{key}'")
    return float(value)


def _concept(entry: dict[str, Any]) -> ConceptUnits:
    affine = entry.get("affine")
    linear = (affine["unit"], float(affine["scale"]), float(affine["offset"])) if affine else None
    return ConceptUnits(
        concept=entry["concept"],
        label=entry["label"],
        canonical=entry["canonical"],
        kinds=frozenset(entry["kinds"]),
        molar_mass=_number(entry, "molar_mass") if "molar_mass" in entry else None,
        affine=linear,
    )


@cache
def _tables() -> _Tables:
    table = load_table("units", ("type",))
    tables = _Tables({}, {}, {}, {})
    for entry in table.entries:
        kind = entry["type"]
        if kind == "unit":
            tables.units[entry["unit"]] = UnitDef(
                entry["unit"], entry["kind"], _number(entry, "factor")
            )
        elif kind == "alias":
            target = tables.exact_aliases if entry.get("exact") else tables.loose_aliases
            key = entry["alias"] if entry.get("exact") else _loose(entry["alias"])
            target[key] = entry["unit"]
        elif kind == "concept":
            tables.concepts[entry["concept"]] = _concept(dict(entry))
        else:
            raise CodeTableError(f"units: unknown entry type {kind!r}")
    _validate(tables)
    return tables


def _validate(tables: _Tables) -> None:
    for alias, code in (tables.exact_aliases | tables.loose_aliases).items():
        if code not in tables.units:
            raise CodeTableError(f"units: alias {alias!r} points to unknown unit {code!r}")
    for c in tables.concepts.values():
        canonical = tables.units.get(c.canonical)
        if canonical is None or canonical.kind not in c.kinds:
            raise CodeTableError(f"units: concept {c.concept!r} has a bad canonical unit")
        if _MOLAR in c.kinds and (c.molar_mass is None or _MASS not in c.kinds):
            raise CodeTableError(f"units: concept {c.concept!r} needs a molar mass and mass kind")


def ucum_code(unit: str) -> str | None:
    """The UCUM code a unit string means, or ``None`` when it is not known."""
    tables = _tables()
    if unit in tables.units:
        return unit
    alias = tables.exact_aliases.get(unit)
    if alias is not None:
        return alias
    return tables.loose_aliases.get(_loose(unit))


def unit_kind(unit: str) -> str | None:
    """The quantity kind of a unit (``number``, ``mass``, ``fraction`` ...) or ``None``."""
    code = ucum_code(unit)
    return None if code is None else _tables().units[code].kind


def concept_units(concept: str) -> ConceptUnits:
    """Canonical unit, label and accepted kinds of a lab concept (``UnitError`` if unknown)."""
    found = _tables().concepts.get(concept)
    if found is None:
        raise UnitError(f"no unit rules for concept {concept!r}")
    return found


def canonical_unit(concept: str) -> str:
    return concept_units(concept).canonical


@lru_cache(maxsize=2048)
def _conversion(concept: str, unit: str) -> tuple[float, float] | str:
    """(scale, offset) from ``unit`` to the concept's canonical unit, or why there is none."""
    tables = _tables()
    spec = tables.concepts.get(concept)
    if spec is None:
        return f"no unit rules for concept {concept!r}"
    code = ucum_code(unit)
    if code is None:
        return f"unknown unit '{unit}' for {spec.label}"
    if spec.affine is not None and code == spec.affine[0]:
        return spec.affine[1], spec.affine[2]
    source = tables.units[code]
    target = tables.units[spec.canonical]
    factor = source.factor
    if source.kind == _MOLAR and spec.molar_mass is not None and source.kind in spec.kinds:
        factor *= spec.molar_mass
        if target.kind != _MASS:
            return f"unit '{unit}' cannot be converted for {spec.label}"
    elif source.kind not in spec.kinds or source.kind != target.kind:
        return f"unit '{unit}' is not a unit for {spec.label}"
    return _tidy(factor / target.factor), 0.0


def _tidy(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def to_canonical(concept: str, value: float, unit: str) -> float:
    """``value`` in ``unit`` expressed in the canonical unit of ``concept``.

    Raises ``UnitError`` for an unknown unit, a unit of the wrong kind (``mg/dL`` for ANC), a
    molar unit for a concept without a molar mass, or a non-finite value. A percentage is only
    valid for percentage concepts: reading an ANC-coded result in % as a neutrophil percentage
    is the caller's decision (``fhir_mappings.observations``).
    """
    if not math.isfinite(value):
        raise UnitError(f"value {value!r} is not a finite number")
    conversion = _conversion(concept, unit)
    if isinstance(conversion, str):
        raise UnitError(conversion)
    scale, offset = conversion
    if scale == 1.0 and offset == 0.0:
        return float(value)  # already canonical: the reported number, unrounded
    return _tidy(value * scale + offset)
