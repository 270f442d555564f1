"""Unit normalisation to canonical units (fhir_mappings/units.py, data/units.json)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_mappings.codetables import load_table
from fhir_mappings.units import (
    UnitError,
    canonical_unit,
    concept_units,
    to_canonical,
    ucum_code,
    unit_kind,
)


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (1.5, "10*9/L", 1500.0),
        (1.0, "10*9/L", 1000.0),
        (0.5, "10*9/L", 500.0),
        (1.499, "10*9/L", 1499.0),
        (1.5, "10*3/uL", 1500.0),
        (1.5, "x10E3/uL", 1500.0),
        (1.5, "K/uL", 1500.0),
        (1.5, "10^9/L", 1500.0),
        (1.5, "x10*9/L", 1500.0),
        (1.5, "G/L", 1500.0),
        (1500, "/uL", 1500.0),
        (1500, "cells/mm3", 1500.0),
        (1500, "/mm3", 1500.0),
        (1500, "{cells}/uL", 1500.0),
        (1500, "cells/uL", 1500.0),
        (1.5, "/nL", 1500.0),
    ],
)
def test_anc_units_to_per_microlitre(value: float, unit: str, expected: float) -> None:
    assert to_canonical("anc", value, unit) == expected


def test_anc_boundaries_are_exact_after_conversion() -> None:
    # 1.005 * 1000 is 1004.9999999999999 in binary floating point: no drift below a boundary
    assert 1.005 * 1000 != 1005.0
    assert to_canonical("anc", 1.005, "10*9/L") == 1005.0
    assert 1.3 * 1e-3 / 1e-6 != 1300.0
    assert to_canonical("clozapine", 1.3, "mg/L") == 1300.0
    assert to_canonical("wbc", 3.5, "10*9/L") == 3500.0
    assert to_canonical("anc", 0.7, "10*3/uL") == 700.0


def test_g_per_litre_is_not_giga_per_litre() -> None:
    with pytest.raises(UnitError, match="not a unit for ANC"):
        to_canonical("anc", 1.5, "g/L")


@pytest.mark.parametrize(
    ("concept", "value", "unit", "expected"),
    [
        ("clozapine", 350, "ng/mL", 350.0),
        ("clozapine", 350, "ug/L", 350.0),
        ("clozapine", 350, "µg/L", 350.0),
        ("clozapine", 0.35, "mg/L", 350.0),
        ("clozapine", 0.6, "mg/L", 600.0),
        ("clozapine", 1.0, "umol/L", 326.83),
        ("clozapine", 1071, "nmol/L", 350.03493),
        ("clozapine", 1.0, "µmol/L", 326.83),
        ("norclozapine", 1.0, "umol/L", 312.8),
        ("norclozapine", 500, "nmol/L", 156.4),
        ("clozapine-total", 0.5, "mg/L", 500.0),
        ("troponin-i", 0.04, "ng/mL", 40.0),
        ("troponin-t", 0.014, "ug/L", 14.0),
        ("troponin-i", 26, "pg/mL", 26.0),
        ("troponin-i", 26, "ng/L", 26.0),
        ("crp", 1.2, "mg/dL", 12.0),
        ("crp", 12, "mg/L", 12.0),
        ("crp", 10, "mg/dL", 100.0),
        ("weight", 185, "[lb_av]", 83.91458845),
        ("weight", 185, "lbs", 83.91458845),
        ("weight", 70500, "g", 70.5),
        ("weight", 70.5, "kg", 70.5),
        ("bmi", 31.2, "kg/m2", 31.2),
        ("bmi", 31.2, "kg/m^2", 31.2),
        ("hba1c", 6.5, "%", 6.5),
        ("hba1c", 48, "mmol/mol", 6.54304),
        ("glucose", 5.0, "mmol/L", 90.08),
        ("glucose", 100, "mg/dL", 100.0),
        ("glucose", 100, "mg/dl", 100.0),
        ("ldl", 3.0, "mmol/L", 115.995),
        ("hdl", 1.3, "mmol/l", 50.2645),
        ("cholesterol", 6.3, "mmol/L", 243.5895),
        ("triglycerides", 1.3, "mmol/L", 115.141),
        ("neutrophil-pct", 55, "%", 55.0),
    ],
)
def test_conversions(concept: str, value: float, unit: str, expected: float) -> None:
    assert to_canonical(concept, value, unit) == pytest.approx(expected, rel=1e-9)


def test_clozapine_nanomolar_matches_rulebook_factor() -> None:
    # rulebook §5: 1 ng/mL clozapine = 3.060 nmol/L
    assert to_canonical("clozapine", 3.060, "nmol/L") == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize(
    ("concept", "unit", "message"),
    [
        ("anc", "x", "unknown unit 'x' for ANC"),
        ("anc", "", "unknown unit '' for ANC"),
        ("anc", "mg/dL", "not a unit for ANC"),
        ("clozapine", "10*9/L", "not a unit for clozapine level"),
        ("clozapine-total", "umol/L", "not a unit for clozapine + norclozapine level"),
        ("troponin-i", "umol/L", "not a unit for troponin I"),
        ("crp", "%", "not a unit for CRP"),
        ("wbc", "%", "not a unit for WBC"),
        ("weight", "kg/m2", "not a unit for weight"),
        ("no-such-concept", "kg", "no unit rules"),
    ],
)
def test_unknown_or_wrong_units_raise(concept: str, unit: str, message: str) -> None:
    with pytest.raises(UnitError, match=message.replace("+", r"\+")):
        to_canonical(concept, 1.0, unit)


def test_non_finite_values_raise() -> None:
    with pytest.raises(UnitError):
        to_canonical("anc", float("nan"), "/uL")
    with pytest.raises(UnitError):
        to_canonical("anc", float("inf"), "/uL")


def test_ucum_is_case_sensitive_before_aliases() -> None:
    assert ucum_code("10*9/L") == "10*9/L"
    assert ucum_code("G/L") == "10*9/L"
    assert ucum_code("g/L") == "g/L"
    assert ucum_code("NG/ML") == "ng/mL"
    assert ucum_code(" x10E3/uL ") == "10*3/uL"
    assert ucum_code("furlongs") is None
    assert unit_kind("%") == "fraction"
    assert unit_kind("percent") == "fraction"
    assert unit_kind("nope") is None


def test_canonical_units_are_the_domain_contract() -> None:
    expected = {
        "anc": "/uL", "wbc": "/uL", "neutrophil-pct": "%", "band-pct": "%",
        "clozapine": "ng/mL", "norclozapine": "ng/mL", "clozapine-total": "ng/mL",
        "troponin-i": "ng/L", "troponin-t": "ng/L", "crp": "mg/L", "weight": "kg",
        "bmi": "kg/m2", "hba1c": "%", "glucose": "mg/dL", "ldl": "mg/dL", "hdl": "mg/dL",
        "cholesterol": "mg/dL", "triglycerides": "mg/dL",
    }  # fmt: skip
    assert {c: canonical_unit(c) for c in expected} == expected
    assert concept_units("clozapine").molar_mass == 326.83
    assert concept_units("norclozapine").molar_mass == 312.80


def test_every_units_entry_has_a_source() -> None:
    table = load_table("units")
    assert all(entry["source"] for entry in table.entries)


@given(st.integers(min_value=0, max_value=100_000))
def test_anc_in_thousands_round_trips_exactly(count: int) -> None:
    # a count reported in 10*9/L with three decimals is the same count per uL, exactly
    assert to_canonical("anc", count / 1000, "10*9/L") == float(count)


def test_a_value_already_in_the_canonical_unit_is_not_rounded_across_a_boundary() -> None:
    """1,499.99999999999/uL is below 1,500 as reported; rounding it would make it normal."""
    from fhir_mappings.units import to_canonical

    assert to_canonical("anc", 1499.99999999999, "/uL") == 1499.99999999999
    assert to_canonical("anc", 1.5, "10*9/L") == 1500
