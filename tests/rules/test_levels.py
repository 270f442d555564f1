"""Clozapine levels and C/N ratio (rulebook §5): bands at 350 / 600 / 1,000 ng/mL and ratio
boundaries 0.5 and 3.0 (no finding) against 0.49 and 3.01."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from smartapp.domain import LabResult, MedicationExposure, PatientRecord
from smartapp.rules.findings import Finding
from smartapp.rules.levels import evaluate_levels
from tests.rules.builders import apply, clozapine, lab_result, rule_context

START = date(2025, 6, 1)
AS_OF = date(2026, 3, 1)
LEVEL_CODES = {"level-low", "level-therapeutic", "level-high", "level-alert"}


def cloz(
    start: date = START,
    end: date | None = None,
    ref: str = "MedicationRequest/c1",
) -> MedicationExposure:
    return clozapine(ref, start, end)


def level(
    ref: str,
    value: float,
    day: date,
    *,
    concept: str = "clozapine",
    hour: int = 8,
    unit: str | None = None,
) -> LabResult:
    return lab_result(ref, concept, value, day, hour=hour, unit=unit)


def nor(ref: str, value: float, day: date, hour: int = 8) -> LabResult:
    return level(ref, value, day, concept="norclozapine", hour=hour)


def run(
    *labs: LabResult, meds: tuple[MedicationExposure, ...] = (cloz(),), as_of: date = AS_OF
) -> list[Finding]:
    record = PatientRecord(patient="Patient/p1", medications=meds, labs=labs)
    return apply(evaluate_levels, record, rule_context(as_of))


def band(findings: list[Finding]) -> Finding:
    found = [f for f in findings if f.code in LEVEL_CODES]
    assert len(found) == 1
    return found[0]


def ratio(findings: list[Finding]) -> Finding | None:
    found = [f for f in findings if f.code in {"ratio-low", "ratio-high"}]
    assert len(found) <= 1
    return found[0] if found else None


DAY = date(2026, 2, 20)


@pytest.mark.parametrize(
    ("value", "code", "severity"),
    [
        (349.9, "level-low", "info"),
        (350, "level-therapeutic", "info"),
        (600, "level-therapeutic", "info"),
        (600.1, "level-high", "warning"),
        (999.9, "level-high", "warning"),
        (1000, "level-alert", "critical"),
        (1500, "level-alert", "critical"),
    ],
)
def test_level_bands(value: float, code: str, severity: str) -> None:
    found = band(run(level("Observation/l1", value, DAY)))
    assert found.code == code
    assert found.severity == severity
    assert found.evidence == ("Observation/l1",)
    assert str(DAY) in found.summary and f"{value:g} ng/mL" in found.summary
    assert len(found.summary) < 140
    assert found.source.startswith("T1 ")
    assert found.actions == (() if code == "level-therapeutic" else ("clozapine-level",))


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (math.nextafter(350, 0), "level-therapeutic"),
        (math.nextafter(600, 1000), "level-therapeutic"),
        (math.nextafter(1000, 0), "level-alert"),
    ],
)
def test_float_noise_from_unit_conversion_does_not_cross_a_boundary(
    value: float, code: str
) -> None:
    assert band(run(level("Observation/l1", value, DAY))).code == code


def test_latest_level_of_the_current_course_is_used() -> None:
    findings = run(
        level("Observation/l1", 1200, DAY - timedelta(days=30)), level("Observation/l2", 450, DAY)
    )
    assert band(findings).code == "level-therapeutic"
    assert band(findings).evidence == ("Observation/l2",)


def test_levels_from_an_earlier_course_do_not_count() -> None:
    meds = (
        cloz(date(2024, 1, 1), date(2024, 12, 1), "MedicationRequest/old"),
        cloz(date(2026, 2, 1)),
    )
    assert run(level("Observation/l1", 1200, date(2024, 6, 1)), meds=meds) == []


def test_no_clozapine_no_level_findings() -> None:
    assert run(level("Observation/l1", 1200, DAY), meds=()) == []


def test_future_results_and_other_units_are_ignored() -> None:
    assert run(level("Observation/l1", 1200, AS_OF + timedelta(days=1))) == []
    assert run(level("Observation/l1", 1.2, DAY, unit="mg/L")) == []


@pytest.mark.parametrize(
    ("clozapine", "norclozapine", "code"),
    [
        (175, 350, None),  # exactly 0.5
        (600, 200, None),  # exactly 3.0
        (49, 100, "ratio-low"),  # 0.49
        (301, 100, "ratio-high"),  # 3.01
        (500, 300, None),  # 1.67, typical
    ],
)
def test_ratio_boundaries(clozapine: float, norclozapine: float, code: str | None) -> None:
    findings = run(
        level("Observation/l1", clozapine, DAY), nor("Observation/n1", norclozapine, DAY)
    )
    found = ratio(findings)
    assert (found.code if found else None) == code
    assert "C/N ratio" in band(findings).detail
    if found is not None:
        assert found.severity == "warning"
        assert found.evidence == ("Observation/l1", "Observation/n1")
        assert found.actions == ("clozapine-level",)
        assert len(found.summary) < 140


def test_ratio_findings_name_the_possible_causes() -> None:
    low = ratio(run(level("Observation/l1", 40, DAY), nor("Observation/n1", 100, DAY)))
    high = ratio(run(level("Observation/l1", 800, DAY), nor("Observation/n1", 200, DAY)))
    assert low is not None and high is not None
    assert "adherence" in low.detail and "trough" in low.detail
    assert "CYP1A2" in high.detail and "saturation" in high.detail and "infection" in high.detail
    assert "1.25-2" in high.detail


def test_norclozapine_must_share_the_specimen_day() -> None:
    other_day = run(
        level("Observation/l1", 800, DAY), nor("Observation/n1", 100, DAY - timedelta(1))
    )
    assert ratio(other_day) is None
    assert "No norclozapine on the same specimen" in band(other_day).detail
    same_day = run(level("Observation/l1", 800, DAY, hour=8), nor("Observation/n1", 100, DAY, 14))
    found = ratio(same_day)
    assert found is not None and found.code == "ratio-high"


def test_the_exact_same_specimen_is_preferred() -> None:
    findings = run(
        level("Observation/l1", 800, DAY, hour=8),
        nor("Observation/n2", 100, DAY, hour=20),
        nor("Observation/n1", 400, DAY, 8),
    )
    assert ratio(findings) is None  # paired with n1: 800 / 400 = 2.0
    assert "Observation/n1" in band(findings).evidence


def test_zero_norclozapine_gives_no_ratio() -> None:
    findings = run(level("Observation/l1", 800, DAY), nor("Observation/n1", 0, DAY))
    assert ratio(findings) is None
    assert "not computable" in band(findings).detail
