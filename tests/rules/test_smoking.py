"""Smoking changes (rulebook §6): cessation and starting inside and outside the 180-day look-back,
e-cigarettes count as stopping, unknown statuses are ignored, and the level a week later."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from smartapp.domain import (
    LabResult,
    MedicationExposure,
    PatientRecord,
    SmokingObservation,
    SmokingState,
)
from smartapp.rules.findings import Finding
from smartapp.rules.smoking import evaluate_smoking
from tests.rules.builders import apply, at, clozapine, lab_result, rule_context

AS_OF = date(2026, 3, 1)
CLOZ = clozapine("MedicationRequest/c1", date(2025, 1, 1))
ANSWERS = {
    "smoker": "Every day smoker",
    "non-smoker": "Former smoker",
    "unknown": "Unknown if ever smoked",
}


def status(
    ref: str,
    state: SmokingState,
    days_ago: int,
    *,
    vape: bool = False,
) -> SmokingObservation:
    return SmokingObservation(
        ref=f"Observation/{ref}",
        when=at(AS_OF - timedelta(days=days_ago)),
        state=state,
        answer=ANSWERS[state],
        e_cigarette_only=vape,
    )


def level(ref: str, value: float, days_ago: int) -> LabResult:
    return lab_result(f"Observation/{ref}", "clozapine", value, AS_OF - timedelta(days=days_ago))


def run(
    *smoking: SmokingObservation,
    labs: tuple[LabResult, ...] = (),
    meds: tuple[MedicationExposure, ...] = (CLOZ,),
) -> list[Finding]:
    record = PatientRecord(patient="Patient/p1", medications=meds, smoking=smoking, labs=labs)
    return apply(evaluate_smoking, record, rule_context(AS_OF))


def one(findings: list[Finding]) -> Finding:
    assert len(findings) == 1
    return findings[0]


def test_cessation_is_a_warning_with_the_pharmacology_and_advice() -> None:
    found = one(run(status("s1", "smoker", 30), status("s2", "non-smoker", 3)))
    assert found.code == "smoking-cessation"
    assert found.severity == "warning"
    assert found.evidence == ("Observation/s1", "Observation/s2")
    assert found.actions == ("clozapine-level",)
    assert found.next_due == AS_OF + timedelta(days=4)  # a week after the change was recorded
    for text in (
        "50 %",
        "2-4 days",
        "1-2 weeks",
        "39 hours",
        "25 %",
        "sedation",
        "hypersalivation",
        "tachycardia",
        "seizures",
        "No clozapine level since",
    ):
        assert text in found.detail
    assert str(AS_OF - timedelta(days=30)) in found.summary
    assert len(found.summary) < 140
    assert found.source.startswith("S2 ") and "S1 " in found.source and "S3 " in found.source


@pytest.mark.parametrize(("days_ago", "fires"), [(179, True), (180, True), (181, False)])
def test_earlier_smoker_status_must_be_within_180_days_of_as_of(
    days_ago: int,
    fires: bool,
) -> None:
    findings = run(status("s1", "smoker", days_ago), status("s2", "non-smoker", 2))
    assert [f.code for f in findings] == (["smoking-cessation"] if fires else [])


def test_e_cigarette_only_counts_as_cessation() -> None:
    vaping = status("s2", "smoker", 5, vape=True)  # even if a mapper called the vaper a smoker
    found = one(run(status("s1", "smoker", 40), vaping))
    assert found.code == "smoking-cessation"
    assert "e-cigarette only" in found.detail
    found = one(run(status("s1", "smoker", 40), status("s2", "non-smoker", 5, vape=True)))
    assert found.code == "smoking-cessation"


def test_unknown_status_is_never_a_non_smoker_and_never_hides_a_change() -> None:
    assert run(status("s1", "smoker", 40), status("s2", "unknown", 5)) == []
    found = one(
        run(status("s1", "smoker", 40), status("s2", "non-smoker", 20), status("s3", "unknown", 2))
    )
    assert found.code == "smoking-cessation"
    assert "Observation/s3" not in found.evidence
    found = one(
        run(status("s1", "smoker", 40), status("s2", "unknown", 20), status("s3", "non-smoker", 2))
    )
    assert found.evidence == ("Observation/s1", "Observation/s3")


def test_started_smoking_is_the_reverse() -> None:
    found = one(run(status("s1", "non-smoker", 90), status("s2", "smoker", 10)))
    assert found.code == "smoking-started"
    assert found.severity == "warning"
    assert "fall" in found.summary and "fall" in found.detail
    assert found.actions == ("clozapine-level",)
    assert run(status("s1", "non-smoker", 200), status("s2", "smoker", 10)) == []


def test_no_change_no_finding() -> None:
    assert run(status("s1", "smoker", 90), status("s2", "smoker", 10)) == []
    assert run(status("s1", "non-smoker", 90), status("s2", "non-smoker", 10)) == []
    assert run(status("s1", "non-smoker", 10)) == []
    assert run() == []


def test_the_latest_change_is_the_one_reported() -> None:
    found = one(
        run(
            status("s1", "non-smoker", 170),
            status("s2", "smoker", 100),
            status("s3", "non-smoker", 60),
            status("s4", "non-smoker", 1),
        )
    )
    assert found.code == "smoking-cessation"
    assert found.evidence == ("Observation/s2", "Observation/s3", "Observation/s4")
    assert found.next_due == AS_OF - timedelta(days=53)  # overdue: a week after s3


def test_future_statuses_are_ignored() -> None:
    later = SmokingObservation(
        ref="Observation/s9",
        when=at(AS_OF + timedelta(days=1)),
        state="non-smoker",
        answer="Former smoker",
    )
    assert run(status("s1", "smoker", 10), later) == []


def test_a_level_a_week_after_the_change_removes_the_suggestion_but_not_the_warning() -> None:
    statuses = (status("s1", "smoker", 40), status("s2", "non-smoker", 20))
    early = one(run(*statuses, labs=(level("l1", 500, 16),)))
    assert early.actions == ("clozapine-level",)  # 4 days after: not yet at steady state
    assert "500 ng/mL" in early.detail
    settled = one(run(*statuses, labs=(level("l1", 500, 16), level("l2", 700, 12))))
    assert settled.code == "smoking-cessation"
    assert settled.actions == () and settled.next_due is None
    assert "Observation/l2" in settled.evidence


def test_not_on_clozapine_no_finding() -> None:
    assert run(status("s1", "smoker", 30), status("s2", "non-smoker", 3), meds=()) == []
