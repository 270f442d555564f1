"""Dose and timing arithmetic (fhir_mappings.dosage, fhir_mappings.timing)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from fhir_mappings import timing
from fhir_mappings.dosage import (
    Amount,
    Strength,
    quantity,
    read_group,
    read_instruction,
    strength_from_ratio,
    strength_from_text,
    supply_days,
)

TAB25 = Strength(mg_per_unit=25)


def dose(value: float, unit: str = "mg", code: str | None = None) -> dict[str, Any]:
    q: dict[str, Any] = {"value": value, "unit": unit}
    if code is not None:
        q["code"] = code
    return {"doseAndRate": [{"doseQuantity": q}]}


def every(frequency: int, period: float, unit: str) -> dict[str, Any]:
    return {"repeat": {"frequency": frequency, "period": period, "periodUnit": unit}}


@pytest.mark.parametrize(
    ("unit", "mg"),
    [("mg", 100.0), ("g", 100_000.0), ("mcg", 0.1), ("ug", 0.1), ("µg", 0.1), ("milligram", 100.0)],
)
def test_mass_units_convert_to_mg(unit: str, mg: float) -> None:
    reading = read_instruction({**dose(100, unit), "timing": every(1, 1, "d")}, None, False, None)
    assert reading.daily_mg == pytest.approx(mg)
    assert reading.problem is None


@pytest.mark.parametrize("unit", ["TAB", "{tbl}", "tablet", "Tablets", "1", "capsule", "{cap}"])
def test_tablets_times_strength(unit: str) -> None:
    reading = read_instruction({**dose(2, unit), "timing": every(2, 1, "d")}, TAB25, False, None)
    assert reading.daily_mg == 100
    assert reading.per_day == Amount(4, "unit")


def test_tablets_of_unknown_strength_is_a_problem_not_a_guess() -> None:
    reading = read_instruction({**dose(2, "TAB"), "timing": every(2, 1, "d")}, None, False, None)
    assert reading.daily_mg is None
    assert reading.problem is not None and "strength is unknown" in reading.problem


def test_ml_of_suspension_times_concentration() -> None:
    strength = Strength(mg_per_ml=50)
    reading = read_instruction({**dose(2, "mL"), "timing": every(2, 1, "d")}, strength, False, None)
    assert reading.daily_mg == 200


def test_unknown_unit_is_named_in_the_problem() -> None:
    reading = read_instruction({**dose(2, "puff"), "timing": every(1, 1, "d")}, TAB25, False, None)
    assert reading.daily_mg is None
    assert reading.problem == "dose unit 'puff' is not mg, g, mcg, mL or tablets"


@pytest.mark.parametrize(
    ("code", "per_day"),
    [
        ("BID", 2),
        ("TID", 3),
        ("QID", 4),
        ("QD", 1),
        ("QOD", 0.5),
        ("AM", 1),
        ("PM", 1),
        ("Q4H", 6),
        ("Q6H", 4),
        ("Q8H", 3),
    ],
)
def test_timing_codes(code: str, per_day: float) -> None:
    coding = {"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", "code": code}
    assert timing.per_day({"code": {"coding": [coding]}}) == pytest.approx(per_day)


def test_repeat_frequency_period_units() -> None:
    assert timing.per_day(every(1, 8, "h")) == 3
    assert timing.per_day(every(3, 1, "wk")) == pytest.approx(3 / 7)
    assert timing.interval_days(every(1, 4, "wk")) == 28
    assert timing.interval_days(every(1, 2, "wk")) == 14


def test_repeat_when_counts_events_and_meals_count_three() -> None:
    assert timing.per_day({"repeat": {"when": ["MORN", "HS"]}}) == 2
    assert timing.per_day({"repeat": {"when": ["C"]}}) == 3
    assert timing.per_day({"repeat": {"timeOfDay": ["08:00:00", "20:00:00"]}}) == 2


def test_when_and_frequency_disagreeing_take_the_larger() -> None:
    repeat = {"frequency": 1, "period": 1, "periodUnit": "d", "when": ["MORN", "EVE"]}
    assert timing.per_day({"repeat": repeat}) == 2


def test_frequency_max_counts() -> None:
    repeat = {"frequency": 1, "frequencyMax": 3, "period": 1, "periodUnit": "d"}
    assert timing.per_day({"repeat": repeat}) == 3


@pytest.mark.parametrize("value", [None, {}, {"repeat": {}}, {"repeat": "BID"}, "BID", []])
def test_no_timing_gives_no_frequency(value: Any) -> None:
    assert timing.per_day(value) is None


def test_missing_timing_on_an_oral_dose_is_a_problem() -> None:
    reading = read_instruction(dose(100), TAB25, False, None)
    assert reading.daily_mg is None
    assert reading.problem == "no timing (how often) given"


def test_dose_range_counts_at_its_high_end() -> None:
    rng = {"low": {"value": 1, "unit": "TAB"}, "high": {"value": 2, "unit": "TAB"}}
    dosage = {"doseAndRate": [{"doseRange": rng}], "timing": every(3, 1, "d")}
    assert read_instruction(dosage, TAB25, False, None).daily_mg == 150


def test_dose_range_without_high_is_a_problem() -> None:
    dosage = {"doseAndRate": [{"doseRange": {"low": {"value": 1, "unit": "mg"}}}]}
    reading = read_instruction({**dosage, "timing": every(1, 1, "d")}, None, False, None)
    assert reading.daily_mg is None and reading.problem == "dose range has no upper bound"


def test_as_needed_counts_at_max_dose_per_period() -> None:
    cap = {"numerator": {"value": 4, "unit": "TAB"}, "denominator": {"value": 1, "code": "d"}}
    dosage = {
        **dose(1, "TAB"),
        "asNeededBoolean": True,
        "maxDosePerPeriod": cap,
        "timing": every(1, 1, "d"),
    }
    assert read_instruction(dosage, TAB25, False, None).daily_mg == 100


def test_as_needed_without_cap_counts_every_scheduled_dose() -> None:
    dosage = {**dose(50), "asNeededBoolean": True, "timing": every(1, 6, "h")}
    assert read_instruction(dosage, None, False, None).daily_mg == 200


def test_concurrent_instructions_are_summed() -> None:
    morning = {**dose(100), "timing": {"repeat": {"when": ["MORN"]}}}
    night = {**dose(200), "timing": {"repeat": {"when": ["HS"]}}}
    assert read_group([morning, night], None, False, None).daily_mg == 300


def test_one_unreadable_part_makes_the_sum_unknown() -> None:
    morning = {**dose(100), "timing": {"repeat": {"when": ["MORN"]}}}
    combined = read_group([morning, dose(200)], None, False, None)
    assert combined.daily_mg is None
    assert combined.problem == "no timing (how often) given"


def test_long_acting_interval_from_timing_beats_default() -> None:
    dosage = {**dose(100), "timing": every(1, 2, "wk")}
    reading = read_instruction(dosage, None, True, 28)
    assert (reading.interval_mg, reading.interval_days) == (100, 14)
    assert reading.daily_mg == pytest.approx(100 / 14)


def test_long_acting_without_timing_uses_the_product_default() -> None:
    reading = read_instruction(dose(150), None, True, 28)
    assert reading.daily_mg == pytest.approx(150 / 28)
    assert reading.interval_days == 28


def test_long_acting_without_any_interval_is_a_problem() -> None:
    reading = read_instruction(dose(150), None, True, None)
    assert reading.daily_mg is None
    assert reading.interval_mg == 150
    assert reading.problem == "long-acting injection without an interval in its timing"


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["clozapine 25 MG Oral Tablet"], Strength(mg_per_unit=25)),
        (["Clozaril 100mg"], Strength(mg_per_unit=100)),
        (["clozapine 12.5 MG Disintegrating Oral Tablet"], Strength(mg_per_unit=12.5)),
        (["clozapine 50 MG/ML Oral Suspension"], Strength(mg_per_ml=50)),
        (["Dilantin 125mg/5ml Oral Suspension"], Strength(mg_per_ml=25)),
        (["Levothyroxine 75mcg tablet"], Strength(mg_per_unit=0.075)),
        (["fentanyl 25 MCG/HR Transdermal System"], None),
        (["sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet"], None),
        (["Clozaril"], None),
    ],
)
def test_strength_from_text(texts: list[str], expected: Strength | None) -> None:
    assert strength_from_text(texts) == expected


def test_strength_from_ratio() -> None:
    per_tab = {
        "numerator": {"value": 100, "code": "mg"},
        "denominator": {"value": 1, "code": "TAB"},
    }
    per_ml = {"numerator": {"value": 250, "code": "mg"}, "denominator": {"value": 5, "code": "mL"}}
    assert strength_from_ratio(per_tab) == Strength(mg_per_unit=100)
    assert strength_from_ratio(per_ml) == Strength(mg_per_ml=50)
    assert strength_from_ratio({"numerator": {"value": 1, "code": "[iU]"}}) is None
    assert strength_from_ratio("100 mg") is None


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "100 mg",
        {"value": "100", "unit": "mg"},
        {"value": -5},
        {"value": 0, "unit": "mg"},
        {"value": True, "unit": "mg"},
    ],
)
def test_bad_quantities_are_problems(bad: Any) -> None:
    amount, problem = quantity(bad)
    assert amount is None and problem


def test_supply_days_with_repeats() -> None:
    request = {"expectedSupplyDuration": {"value": 30, "code": "d"}, "numberOfRepeatsAllowed": 2}
    assert supply_days(request, None) == 90
    by_quantity = {"quantity": {"value": 60, "unit": "TAB"}}
    assert supply_days(by_quantity, Amount(4, "unit")) == 15
    assert supply_days(by_quantity, Amount(100, "mg")) is None  # units differ: not guessed


@pytest.mark.parametrize(
    ("value", "day", "end"),
    [
        ("2026-01-31", date(2026, 1, 31), date(2026, 2, 1)),
        ("2026-01", date(2026, 1, 1), date(2026, 2, 1)),
        ("2026-12", date(2026, 12, 1), date(2027, 1, 1)),
        ("2026", date(2026, 1, 1), date(2027, 1, 1)),
        ("2026-01-31T23:30:00-05:00", date(2026, 2, 1), date(2026, 2, 2)),
        ("2026-01-31T10:00:00Z", date(2026, 1, 31), date(2026, 2, 1)),
    ],
)
def test_fhir_dates_in_utc_and_exclusive_ends(value: str, day: date, end: date) -> None:
    parsed = timing.parse_date(value)
    assert parsed is not None
    assert (parsed.day, parsed.end_exclusive()) == (day, end)


@pytest.mark.parametrize("value", [None, 20260131, "31/01/2026", "2026-02-30", "", "2026-1-5"])
def test_unreadable_dates(value: Any) -> None:
    assert timing.parse_date(value) is None


def test_phases_need_bounds_on_every_group() -> None:
    first = {"sequence": 1, "timing": {"repeat": {"boundsDuration": {"value": 2, "code": "d"}}}}
    second = {"sequence": 2, "timing": {"repeat": {"boundsDuration": {"value": 5, "code": "d"}}}}
    assert timing.phases([first, second]) == [[first], [second]]
    unbounded = {"sequence": 2}
    assert timing.phases([first, unbounded]) == [[first, unbounded]]
    assert timing.phases([{"sequence": 1}, {"sequence": 1}]) == [[{"sequence": 1}, {"sequence": 1}]]
