"""Metabolic monitoring (rulebook §9, G3): weight at baseline, weeks 4/8/12 then 3-monthly;
glucose or HbA1c and lipids at baseline, week 12, then yearly; a 7-day window (policy)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartapp.domain import LabResult, MedicationExposure, PatientRecord
from smartapp.rules.findings import Finding
from smartapp.rules.metabolic import evaluate_metabolic
from tests.rules.builders import apply, clozapine, lab_result, rule_context

START = date(2026, 1, 1)


def day(n: int) -> date:
    return START + timedelta(days=n)


def cloz(*, proposed: bool = False, start: date = START) -> MedicationExposure:
    return clozapine("MedicationRequest/c1", start, dose=100, proposed=proposed)


def lab(concept: str, n: int, *, fasting: bool = False, value: float = 80) -> LabResult:
    ref = f"Observation/{concept}-{n}"
    return lab_result(ref, concept, value, day(n), hour=8, fasting=fasting)


def baseline(n: int = -2) -> tuple[LabResult, ...]:
    return lab("weight", n), lab("hba1c", n, value=5.4), lab("ldl", n, value=110)


def run(
    as_of: int,
    *labs: LabResult,
    meds: tuple[MedicationExposure, ...] | None = None,
) -> Finding | None:
    record = PatientRecord(patient="Patient/p1", medications=meds or (cloz(),), labs=labs)
    findings = apply(evaluate_metabolic, record, rule_context(day(as_of)))
    assert len(findings) <= 1
    if findings:
        f = findings[0]
        assert f.code == "metabolic-monitoring-due" and f.severity == "info"
        assert f.actions == ("metabolic",)
        assert len(f.summary) < 140
    return findings[0] if findings else None


def test_new_course_needs_every_baseline() -> None:
    found = run(0, meds=(cloz(proposed=True, start=day(0)),))
    assert found is not None
    assert found.next_due == day(0)
    for label in ("weight/BMI due", "glucose/HbA1c due", "lipids due"):
        assert label in found.summary
    assert "overdue" not in found.summary
    assert found.source.startswith("G3 ")


def test_baseline_counts_from_thirty_days_before_the_start() -> None:
    assert run(1, *baseline(-30)) is None
    found = run(1, *baseline(-31))
    assert found is not None and "baseline check due" in found.detail


@pytest.mark.parametrize(
    ("as_of", "expected"), [(20, None), (21, "due"), (35, "due"), (36, "overdue since")]
)
def test_week_four_weight_window(as_of: int, expected: str | None) -> None:
    found = run(as_of, *baseline())
    if expected is None:
        assert found is None
        return
    assert found is not None
    assert f"weight/BMI {expected} {day(28)}" in found.summary
    assert "glucose" not in found.summary and "lipids" not in found.summary
    assert found.next_due == day(28)
    assert "week 4 check" in found.detail


@pytest.mark.parametrize(("measured", "done"), [(20, False), (21, True), (40, True)])
def test_a_weight_from_the_window_opening_on_counts(measured: int, done: bool) -> None:
    found = run(41, *baseline(), lab("bmi", measured))
    assert (found is None) is done


def test_a_late_weight_also_covers_the_checks_it_missed() -> None:
    # no week-4 weight; a weight on day 50 covers week 4 and leaves week 8 (day 56) next
    assert run(48, *baseline(), lab("weight", 50)) is not None  # day 50 is after as_of
    assert run(50, *baseline(), lab("weight", 50)) is None
    found = run(49 + 14, *baseline(), lab("weight", 50))
    assert found is None  # week 8 opened on day 49 and the day-50 weight counts


def test_week_twelve_glucose_and_lipids() -> None:
    weights = [lab("weight", n) for n in (28, 56, 84)]
    found = run(78, *baseline(), *weights[:2])
    assert found is not None
    assert "glucose/HbA1c due" in found.summary and "lipids due" in found.summary
    assert "weight/BMI due" in found.summary
    assert found.next_due == day(84)
    assert (
        run(
            85,
            *baseline(),
            *weights,
            lab("hba1c", 80, value=5.6),
            lab("triglycerides", 80, value=150),
        )
        is None
    )


def test_random_glucose_does_not_count_but_fasting_glucose_does() -> None:
    labs = (lab("weight", -2), lab("ldl", -2))
    random = run(1, *labs, lab("glucose", -1))
    assert random is not None and "glucose/HbA1c due" in random.summary
    assert run(1, *labs, lab("glucose", -1, fasting=True)) is None


def test_quarterly_weight_and_yearly_labs_in_a_long_course() -> None:
    # course day 730: weight points ... 630, 721; lab points 0, 84, 449 and 814 (not yet)
    done = [lab("weight", 700), lab("hba1c", 460), lab("cholesterol", 460)]
    found = run(730, *done)
    assert found is not None
    assert found.summary == f"Metabolic monitoring: weight/BMI overdue since {day(721)}"
    assert run(730, lab("weight", 714), *done[1:]) is None
    late = run(830, lab("weight", 820), *done[1:])
    assert late is not None
    assert "glucose/HbA1c overdue since" in late.summary and "lipids overdue since" in late.summary
    assert late.next_due == day(814)


def test_every_check_overdue_still_fits_the_summary() -> None:
    found = run(400)
    assert found is not None
    assert found.next_due == day(0)
    assert found.summary.count("overdue since") == 3


def test_not_on_clozapine_nothing_is_due() -> None:
    record = PatientRecord(patient="Patient/p1")
    assert apply(evaluate_metabolic, record, rule_context(day(10))) == []


@given(as_of=st.integers(min_value=0, max_value=3000))
def test_everything_measured_today_means_nothing_is_due(as_of: int) -> None:
    labs = (lab("weight", as_of), lab("hba1c", as_of), lab("hdl", as_of))
    assert run(as_of, *labs) is None


@given(
    as_of=st.integers(min_value=0, max_value=3000),
    measured=st.lists(st.integers(min_value=-60, max_value=3000), max_size=6),
)
def test_due_date_is_never_before_the_course_start(as_of: int, measured: list[int]) -> None:
    found = run(as_of, *(lab("weight", n) for n in measured))
    if found is not None:
        assert found.next_due is not None and found.next_due >= START
