"""ANC monitoring, US profile (rulebook §2): categories at their exact boundaries in both
tables, the 24-hour repeat, baseline eligibility, derived ANC, BEN status, missing ANC.

The small builders here are shared by the other ANC test modules."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from smartapp.domain import (
    ClinicianStatement,
    ConditionFact,
    LabResult,
    MedicationExposure,
    PatientRecord,
)
from smartapp.rules.anc import evaluate_anc
from smartapp.rules.anc_values import anc_series, category, is_ben
from smartapp.rules.findings import AncSummary, Finding
from smartapp.rules.ruleset import Profile, Ruleset, default_ruleset
from tests.rules.builders import apply, at, clozapine, lab_result, rule_context, well_formed

AS_OF = date(2026, 3, 1)
START = date(2025, 12, 1)  # week 12.9 on AS_OF: weekly phase


def lab(ref: str, day: date, value: float, concept: str = "anc", hour: int = 9) -> LabResult:
    return lab_result(ref, concept, value, day, hour=hour)


def cloz(
    ref: str = "MedicationRequest/c1",
    start: date | None = START,
    end: date | None = None,
    *,
    proposed: bool = False,
) -> MedicationExposure:
    return clozapine(ref, start, end, proposed=proposed)


BEN_CONDITION = ConditionFact(
    ref="Condition/ben", concept="ben", display="Benign ethnic neutropenia", active=True
)


def run(
    labs: tuple[LabResult, ...] = (),
    meds: tuple[MedicationExposure, ...] = (cloz(),),
    *,
    as_of: date = AS_OF,
    profile: Profile = "us-fda",
    ben: bool = False,
    rules: Ruleset | None = None,
) -> tuple[list[Finding], AncSummary]:
    record = PatientRecord(
        patient="Patient/p1",
        medications=meds,
        labs=labs,
        conditions=(BEN_CONDITION,) if ben else (),
    )
    ctx = rule_context(as_of, profile=profile, rules=rules)
    findings, summary = apply(evaluate_anc, record, ctx)
    well_formed(findings)
    return findings, summary


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def only(findings: list[Finding], code: str) -> Finding:
    found = [f for f in findings if f.code == code]
    assert len(found) == 1, codes(findings)
    return found[0]


def with_latest(value: float, *, ben: bool = False) -> tuple[list[Finding], AncSummary]:
    """A normal ANC, then ``value`` two days before AS_OF, inside the course."""
    first = 2000.0
    labs = (
        lab("Observation/a1", AS_OF - timedelta(days=9), first),
        lab("Observation/a2", AS_OF - timedelta(days=2), value),
    )
    return run(labs, ben=ben)


GENERAL = [
    (1500, "normal", "anc-normal", "info"),
    (1499, "mild", "anc-mild", "warning"),
    (1000, "mild", "anc-mild", "warning"),
    (999, "moderate", "anc-moderate", "critical"),
    (500, "moderate", "anc-moderate", "critical"),
    (499, "severe", "anc-severe", "critical"),
]
BEN = [
    (1000, "normal", "anc-normal", "info"),
    (999, "ben-neutropenia", "anc-ben-neutropenia", "warning"),
    (500, "ben-neutropenia", "anc-ben-neutropenia", "warning"),
    (499, "ben-severe", "anc-ben-severe", "critical"),
]


@pytest.mark.parametrize(("value", "cat", "code", "severity"), GENERAL)
def test_general_table_boundaries(value: float, cat: str, code: str, severity: str) -> None:
    assert category(value, False, default_ruleset()) == cat
    findings, summary = with_latest(value)
    f = only(findings, code)
    assert f.severity == severity
    assert summary.category == cat and summary.threshold_set == "general"
    assert summary.latest is not None and summary.latest.value == value
    assert f"{value:,}/µL" in f.summary and str(AS_OF - timedelta(days=2)) in f.summary
    assert f.evidence == ("Observation/a2",)
    assert (f.actions == ()) is (cat == "normal")


@pytest.mark.parametrize(("value", "cat", "code", "severity"), BEN)
def test_ben_table_boundaries(value: float, cat: str, code: str, severity: str) -> None:
    assert category(value, True, default_ruleset()) == cat
    findings, summary = with_latest(value, ben=True)
    f = only(findings, code)
    assert f.severity == severity
    assert summary.category == cat and summary.threshold_set == "ben"
    assert "Condition/ben" in f.evidence


def test_moderate_and_severe_say_interrupt_and_daily() -> None:
    findings, summary = with_latest(700)
    f = only(findings, "anc-moderate")
    assert "interrupt" in f.summary and summary.frequency == "daily"
    assert f.next_due == AS_OF - timedelta(days=1)  # repeat within 24 h comes first
    findings, summary = with_latest(400)
    assert "interrupt" in only(findings, "anc-severe").summary


# 24-hour repeat (L1 Tables 1-2)


def test_first_low_after_normal_needs_a_repeat_within_24_hours() -> None:
    day = AS_OF - timedelta(days=1)
    findings, summary = run(
        (lab("Observation/a1", day - timedelta(days=7), 1800), lab("Observation/a2", day, 1499))
    )
    f = only(findings, "anc-repeat-needed")
    assert f.severity == "warning" and f.next_due == AS_OF
    assert summary.next_due == AS_OF and not summary.overdue
    assert only(findings, "anc-mild").next_due == AS_OF
    assert "anc-overdue" not in codes(findings)


def test_repeat_overdue_the_day_after_its_due_date() -> None:
    day = AS_OF - timedelta(days=2)
    findings, summary = run(
        (lab("Observation/a1", day - timedelta(days=7), 1800), lab("Observation/a2", day, 1200))
    )
    assert "anc-repeat-needed" in codes(findings)
    assert summary.overdue and only(findings, "anc-overdue").next_due == day + timedelta(days=1)


def test_confirmed_low_needs_no_further_repeat() -> None:
    day = AS_OF - timedelta(days=1)
    findings, summary = run(
        (
            lab("Observation/a1", day - timedelta(days=8), 1800),
            lab("Observation/a2", day - timedelta(days=1), 1200),
            lab("Observation/a3", day, 1300),
        )
    )
    assert "anc-repeat-needed" not in codes(findings)
    assert summary.frequency == "three-times-weekly"
    assert summary.next_due == day + timedelta(days=2)


def test_normal_latest_needs_no_repeat_and_ben_threshold_is_1000() -> None:
    assert "anc-repeat-needed" not in codes(with_latest(1500)[0])
    assert "anc-repeat-needed" not in codes(with_latest(1000, ben=True)[0])
    assert "anc-repeat-needed" in codes(with_latest(999, ben=True)[0])


def test_first_low_in_a_course_with_no_earlier_count_needs_a_repeat() -> None:
    findings, _ = run((lab("Observation/a1", AS_OF, 1400),))
    assert only(findings, "anc-repeat-needed").next_due == AS_OF + timedelta(days=1)


# Baseline (rulebook §2.1)


def proposed(start: date | None = None) -> tuple[MedicationExposure, ...]:
    return (cloz("MedicationRequest/draft", start, proposed=True),)


def test_baseline_within_seven_days_allows_start() -> None:
    findings, summary = run((lab("Observation/b1", AS_OF - timedelta(days=7), 1500),), proposed())
    assert codes(findings) == ["anc-normal", "anc-due-soon"]
    assert summary.next_due == AS_OF  # baseline + 7 days: the first weekly ANC
    assert summary.frequency == "weekly" and not summary.overdue


def test_baseline_eight_days_old_is_missing_and_critical() -> None:
    findings, summary = run((lab("Observation/b1", AS_OF - timedelta(days=8), 2500),), proposed())
    f = only(findings, "anc-baseline-missing")
    assert f.severity == "critical" and "7 days" in f.summary
    assert "anc-missing" not in codes(findings) and "anc-normal" not in codes(findings)
    assert summary.category == "unknown" and summary.next_due == AS_OF
    assert not summary.overdue  # a proposed order: nothing taken yet


def test_no_baseline_at_all_for_a_proposed_order() -> None:
    findings, _ = run((), proposed())
    assert codes(findings) == ["anc-baseline-missing"]
    assert "MedicationRequest/draft" in findings[0].evidence


@pytest.mark.parametrize(("value", "low"), [(1499, True), (1500, False)])
def test_baseline_below_1500_is_low(value: float, low: bool) -> None:
    findings, _ = run((lab("Observation/b1", AS_OF - timedelta(days=3), value),), proposed())
    assert ("anc-baseline-low" in codes(findings)) is low
    if low:
        f = only(findings, "anc-baseline-low")
        assert f.severity == "critical" and "1,499/µL" in f.summary
        assert "anc-mild" not in codes(findings) and "anc-repeat-needed" not in codes(findings)


def test_baseline_is_judged_on_the_latest_count_in_the_window() -> None:
    labs = (
        lab("Observation/b1", AS_OF - timedelta(days=5), 1300),
        lab("Observation/b2", AS_OF - timedelta(days=4), 1700),
    )
    assert "anc-baseline-low" not in codes(run(labs, proposed())[0])


@pytest.mark.parametrize(("first_days_before", "ok"), [(7, True), (8, False)])
def test_ben_needs_two_baselines_within_the_window(first_days_before: int, ok: bool) -> None:
    labs = (
        lab("Observation/b1", AS_OF - timedelta(days=first_days_before), 1100),
        lab("Observation/b2", AS_OF - timedelta(days=1), 1050),
    )
    findings, _ = run(labs, proposed(), ben=True)
    if ok:
        assert codes(findings) == ["anc-normal"]
    else:
        f = only(findings, "anc-baseline-missing")
        assert "BEN needs 2" in f.summary and "found 1" in f.summary
        assert "Condition/ben" in f.evidence


@pytest.mark.parametrize(("value", "low"), [(999, True), (1000, False)])
def test_ben_baseline_below_1000_is_low(value: float, low: bool) -> None:
    labs = (
        lab("Observation/b1", AS_OF - timedelta(days=4), 1200),
        lab("Observation/b2", AS_OF - timedelta(days=1), value),
    )
    findings, _ = run(labs, proposed(), ben=True)
    assert ("anc-baseline-low" in codes(findings)) is low


def test_active_course_in_its_first_week_without_any_anc_gets_baseline_missing() -> None:
    findings, summary = run((), (cloz(start=AS_OF - timedelta(days=6)),))
    assert codes(findings) == ["anc-baseline-missing"]
    assert summary.overdue  # already taking clozapine


def test_active_course_past_its_first_week_without_anc_is_missing() -> None:
    findings, summary = run((), (cloz(start=AS_OF - timedelta(days=7)),))
    f = only(findings, "anc-missing")
    assert f.severity == "critical" and f.next_due == AS_OF
    assert summary.category == "unknown" and summary.overdue and summary.latest is None


def test_anc_from_an_earlier_course_does_not_count() -> None:
    meds = (
        cloz("MedicationRequest/old", date(2024, 1, 1), date(2025, 6, 1)),
        cloz("MedicationRequest/new", date(2026, 1, 1)),
    )
    findings, summary = run((lab("Observation/old", date(2025, 5, 20), 2500),), meds)
    assert "anc-missing" in codes(findings) and "anc-normal" not in codes(findings)
    assert "2025-05-20" in only(findings, "anc-missing").detail
    assert "anc-schedule-restart" in codes(findings)
    assert summary.frequency == "weekly"


# Derived ANC (rulebook §2.6, L6)


def cbc(day: date, wbc: float, neut: float, band: float | None = None) -> tuple[LabResult, ...]:
    parts = [
        lab("Observation/wbc", day, wbc, "wbc"),
        lab("Observation/neut", day, neut, "neutrophil-pct"),
    ]
    if band is not None:
        parts.append(lab("Observation/band", day, band, "band-pct"))
    return tuple(parts)


def test_anc_derived_from_wbc_and_differential() -> None:
    day = AS_OF - timedelta(days=1)
    record = PatientRecord(patient="Patient/p1", labs=cbc(day, 5000, 25, 5))
    (derived,) = anc_series(record, AS_OF)
    assert derived.value == pytest.approx(1500)
    assert derived.derived_from == ("Observation/wbc", "Observation/neut", "Observation/band")
    findings, summary = run(cbc(day, 5000, 25, 5))
    assert only(findings, "anc-normal").evidence == derived.derived_from
    findings, summary = run(cbc(day, 5000, 25))
    assert summary.category == "mild" and summary.latest is not None
    assert summary.latest.value == pytest.approx(1250)


def test_reported_anc_is_preferred_at_the_same_specimen_time() -> None:
    day = AS_OF - timedelta(days=1)
    labs = (*cbc(day, 8000, 50), lab("Observation/anc", day, 1400))
    series = anc_series(PatientRecord(patient="Patient/p1", labs=labs), AS_OF)
    assert [r.ref for r in series] == ["Observation/anc"] and series[0].value == 1400


def test_no_derivation_without_both_parts_or_at_another_time() -> None:
    day = AS_OF - timedelta(days=1)
    labs = (
        lab("Observation/wbc", day, 5000, "wbc"),
        lab("Observation/neut", day, 40, "neutrophil-pct", hour=15),
    )
    assert anc_series(PatientRecord(patient="Patient/p1", labs=labs), AS_OF) == []


def test_two_reports_at_one_time_keep_the_lower_and_future_results_are_ignored() -> None:
    day = AS_OF - timedelta(days=1)
    labs = (
        lab("Observation/x", day, 1600),
        lab("Observation/y", day, 1450),
        lab("Observation/z", AS_OF + timedelta(days=1), 300),
    )
    series = anc_series(PatientRecord(patient="Patient/p1", labs=labs), AS_OF)
    assert [(r.ref, r.value) for r in series] == [("Observation/y", 1450)]


# BEN status (rulebook §2.5) and patients not on clozapine


def statement(value: str, day: date, ref: str = "") -> ClinicianStatement:
    return ClinicianStatement("ben-confirmed", value, "Practitioner/dr", at(day), ref)


def test_is_ben_from_condition_or_statement() -> None:
    assert is_ben(PatientRecord(patient=None)) == (False, ())
    assert is_ben(PatientRecord(patient=None, conditions=(BEN_CONDITION,))) == (
        True,
        ("Condition/ben",),
    )
    resolved = ConditionFact("Condition/old", "ben", "Benign ethnic neutropenia", active=False)
    assert is_ben(PatientRecord(patient=None, conditions=(resolved,)))[0] is False
    said = PatientRecord(patient=None, statements=(statement("true", AS_OF, "Basic/s1"),))
    assert is_ben(said) == (True, ("Basic/s1",))


def test_latest_statement_wins_over_condition() -> None:
    record = PatientRecord(
        patient=None,
        conditions=(BEN_CONDITION,),
        statements=(statement("true", date(2025, 1, 1)), statement("false", date(2026, 1, 1))),
    )
    assert is_ben(record)[0] is False


def test_not_on_clozapine_gets_no_findings_but_a_summary() -> None:
    findings, summary = run((lab("Observation/a1", AS_OF, 1200),), ())
    assert findings == []
    assert summary.category == "mild" and summary.frequency is None
    assert summary.next_due is None and not summary.overdue
    stopped = (cloz(start=date(2025, 1, 1), end=date(2025, 6, 1)),)
    assert run((), stopped) == ([], AncSummary("general", "unknown"))


def test_missing_anc_says_when_lab_data_could_not_be_retrieved() -> None:
    record = PatientRecord(
        patient="Patient/p1",
        medications=(cloz(),),
        unavailable=("Observation?category=laboratory",),
    )
    findings, _ = apply(evaluate_anc, record, rule_context(AS_OF))
    f = only(findings, "anc-missing")
    assert "could not be retrieved (Observation?category=laboratory)" in f.detail
