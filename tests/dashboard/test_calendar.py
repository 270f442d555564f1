"""The monitoring calendar read off crafted evaluations: every date is one the rules set."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from smartapp.dashboard.calendar import CalendarRow, monitoring_calendar, status
from smartapp.rules.findings import (
    AncLatest,
    AncSummary,
    ClozapineSummary,
    Evaluation,
    Finding,
    LabAction,
    Severity,
    TrsSummary,
)
from smartapp.rules.ruleset import default_ruleset

AS_OF = date(2026, 3, 1)
ACTIVE = ClozapineSummary("active", date(2025, 6, 1), 39.0, 300)


def finding(
    code: str,
    next_due: date | None = None,
    actions: tuple[LabAction, ...] = (),
    severity: Severity = "info",
) -> Finding:
    return Finding(code, severity, f"summary of {code}", "detail", "L1", (), next_due, actions)


def evaluation(
    *findings: Finding,
    anc: AncSummary | None = None,
    clozapine: ClozapineSummary = ACTIVE,
    profile: str = "us-fda",
) -> Evaluation:
    return Evaluation(
        as_of=AS_OF,
        profile=profile,
        ruleset_version="t",
        patient="Patient/p1",
        findings=findings,
        clozapine=clozapine,
        anc=anc or AncSummary("general", "unknown"),
        trs=TrsSummary("not-applicable"),
    )


def rows(ev: Evaluation, group: str) -> list[CalendarRow]:
    return [r for r in monitoring_calendar(ev, default_ruleset()) if r.group == group]


def summary(next_due: date, overdue: bool = False, frequency: str = "weekly") -> AncSummary:
    latest = AncLatest(3200, "/uL", next_due - timedelta(days=7), "Observation/a")
    return AncSummary("general", "normal", latest, frequency, next_due, overdue)


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        (AS_OF - timedelta(days=1), "overdue"),
        (AS_OF, "due now"),
        (AS_OF + timedelta(days=2), "due soon"),  # anc.due.due_soon_days = 2 (policy)
        (AS_OF + timedelta(days=3), "scheduled"),
    ],
)
def test_status_boundaries(due: date, expected: str) -> None:
    assert status(due, AS_OF, 2) == expected


def test_anc_row_from_the_summary_links_its_finding() -> None:
    ev = evaluation(
        finding("anc-normal"),
        finding("anc-due-soon", AS_OF + timedelta(days=1)),
        anc=summary(AS_OF + timedelta(days=1)),
    )
    (row,) = rows(ev, "anc")
    assert (row.what, row.due, row.status, row.finding) == (
        "ANC",
        date(2026, 3, 2),
        "due soon",
        "anc-due-soon",
    )
    assert row.note == "weekly, general table; latest 3,200/µL on 2026-02-23"
    assert row.status_class == "status-due-soon"


def test_anc_overdue_comes_from_the_summary() -> None:
    ev = evaluation(
        finding("anc-overdue", AS_OF - timedelta(days=9)),
        anc=summary(AS_OF - timedelta(days=9), overdue=True, frequency="monthly"),
    )
    (row,) = rows(ev, "anc")
    assert (row.status, row.finding, row.due) == ("overdue", "anc-overdue", date(2026, 2, 20))


def test_uk_profile_names_the_full_blood_count() -> None:
    ev = evaluation(finding("fbc-amber"), anc=summary(AS_OF + timedelta(days=3)), profile="uk-mhra")
    (row,) = rows(ev, "anc")
    assert row.what == "Full blood count (WBC + neutrophils)"
    assert (row.status, row.finding) == ("scheduled", "fbc-amber")


def test_anc_missing_without_a_schedule_is_due_now() -> None:
    ev = evaluation(finding("anc-missing", AS_OF, ("anc",), "critical"))
    (row,) = rows(ev, "anc")
    assert (row.due, row.status, row.finding) == (AS_OF, "due now", "anc-missing")


def test_not_on_clozapine_nothing_is_scheduled() -> None:
    ev = evaluation(clozapine=ClozapineSummary("never"))
    table = monitoring_calendar(ev, default_ruleset())
    assert [(r.group, r.status) for r in table] == [
        ("anc", "not due"),
        ("troponin-crp", "not due"),
        ("clozapine-level", "not due"),
        ("metabolic", "not due"),
    ]
    assert table[0].note == "no current clozapine course"


def test_troponin_row_uses_its_own_due_soon_window() -> None:
    soon = default_ruleset().days("myocarditis.schedule.due_soon_days")
    due = AS_OF + timedelta(days=soon)
    ev = evaluation(
        finding("myocarditis-monitoring-due", due, ("troponin-crp",)),
        anc=summary(AS_OF + timedelta(days=5)),
    )
    (row,) = rows(ev, "troponin-crp")
    assert (row.due, row.status, row.finding) == (due, "due soon", "myocarditis-monitoring-due")


def test_idle_troponin_row_names_the_schedule_days() -> None:
    (row,) = rows(evaluation(anc=summary(AS_OF + timedelta(days=5))), "troponin-crp")
    assert row.status == "not due"
    assert (
        row.note
        == "nothing due: troponin and CRP are drawn on days 0, 7, 14, 21, 28 of a new course"
    )


def test_level_is_dated_only_after_a_smoking_change() -> None:
    ev = evaluation(
        finding("smoking-cessation", AS_OF + timedelta(days=6), ("clozapine-level",), "warning"),
        finding("interaction-cyp1a2-inhibitor", None, ("clozapine-level",), "warning"),
        anc=summary(AS_OF + timedelta(days=5)),
    )
    level_rows = rows(ev, "clozapine-level")
    assert [(r.due, r.status, r.finding) for r in level_rows] == [
        (date(2026, 3, 7), "scheduled", "smoking-cessation"),
        (None, "advised (no date set)", "interaction-cyp1a2-inhibitor"),
    ]


def test_no_level_schedule_is_invented() -> None:
    (row,) = rows(evaluation(anc=summary(AS_OF + timedelta(days=5))), "clozapine-level")
    assert (row.due, row.status) == (None, "not due")
    assert row.note.startswith("no routine level schedule in the rulebook")


def test_metabolic_row_and_other_findings_suggesting_an_anc() -> None:
    ev = evaluation(
        finding("metabolic-monitoring-due", AS_OF - timedelta(days=40), ("metabolic",)),
        finding("interaction-agranulocytosis", None, ("anc",), "warning"),
        anc=summary(AS_OF + timedelta(days=5)),
    )
    (metabolic,) = rows(ev, "metabolic")
    assert (metabolic.status, metabolic.finding) == ("overdue", "metabolic-monitoring-due")
    anc_rows = rows(ev, "anc")
    assert [(r.status, r.finding) for r in anc_rows] == [
        ("scheduled", None),
        ("advised (no date set)", "interaction-agranulocytosis"),
    ]
