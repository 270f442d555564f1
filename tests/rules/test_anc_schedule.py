"""ANC schedule, US profile (rulebook §2.2–§2.4): phase changes at days 182 and 364, the
neutropenia episode ladders, due-soon and overdue boundaries and the schedule restart."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import pytest

from smartapp.rules.anc_schedule import Schedule, due_state, run_schedule, us_phase
from smartapp.rules.ruleset import Ruleset, default_ruleset
from tests.rules.test_anc import AS_OF, cloz, codes, lab, only, run

RULES = default_ruleset()
S = date(2024, 1, 1)  # course start for the ladder tests


def sched(
    values: Sequence[tuple[int, float]],
    *,
    ben: bool = False,
    baseline: float | None = None,
    rules: Ruleset = RULES,
    start: date = S,
) -> Schedule:
    """Schedule after results given as (day of course, ANC)."""
    series = [
        lab(f"Observation/{i}", start + timedelta(days=d), v) for i, (d, v) in enumerate(values)
    ]
    result = run_schedule(series, start, ben, baseline, rules)
    assert result is not None
    return result


# Phase frequency (rulebook §2.2): counted at the date of the latest ANC.


@pytest.mark.parametrize(
    ("day", "frequency", "interval"),
    [
        (0, "weekly", 7),
        (181, "weekly", 7),
        (182, "every-2-weeks", 14),  # week 26.0
        (363, "every-2-weeks", 14),
        (364, "monthly", 30),  # week 52.0
        (2000, "monthly", 30),
    ],
)
def test_phase_changes_at_days_182_and_364(day: int, frequency: str, interval: int) -> None:
    s = sched([(day, 2000)])
    assert (s.frequency, s.interval_days, s.stage) == (frequency, interval, "phase")
    assert s.next_due == S + timedelta(days=day + interval)
    assert s.weeks_at_last == day / 7


def test_us_phase_at_exact_weeks() -> None:
    assert us_phase(25.99, RULES) == ("weekly", 7)
    assert us_phase(26.0, RULES) == ("every-2-weeks", 14)
    assert us_phase(51.99, RULES) == ("every-2-weeks", 14)
    assert us_phase(52.0, RULES) == ("monthly", 30)
    assert us_phase(-1.0, RULES) == ("weekly", 7)  # a baseline before the start


def test_evaluation_shows_phase_of_the_latest_anc() -> None:
    start = AS_OF - timedelta(days=400)
    meds = (cloz(start=start),)
    _, summary = run((lab("Observation/a", start + timedelta(days=363), 2000),), meds)
    assert summary.frequency == "every-2-weeks"
    assert summary.next_due == start + timedelta(days=377) and summary.overdue


# Episode ladders (L1 Tables 1-2). Day 400: monthly phase, so weekly steps are visible.

D = 400


def test_mild_three_times_weekly_until_1500_then_phase() -> None:
    assert sched([(D, 2000), (D + 30, 1200)]).frequency == "three-times-weekly"
    assert sched([(D, 2000), (D + 30, 1200)]).interval_days == 2
    s = sched([(D, 2000), (D + 30, 1200), (D + 32, 1499), (D + 34, 1500)])
    assert (s.frequency, s.stage) == ("monthly", "phase")


def test_moderate_daily_then_three_times_weekly_then_weekly_for_four_weeks() -> None:
    steps = [(D, 2000), (D + 30, 800)]
    assert sched(steps).frequency == "daily" and sched(steps).interval_days == 1
    steps.append((D + 31, 999))
    assert sched(steps).frequency == "daily"
    steps.append((D + 32, 1000))
    assert sched(steps).frequency == "three-times-weekly"
    steps.append((D + 34, 1500))
    s = sched(steps)
    assert (s.frequency, s.stage, s.interval_days) == ("weekly", "weekly-after-recovery", 7)
    for day in (D + 41, D + 48, D + 55):
        steps.append((day, 2000))
        assert sched(steps).frequency == "weekly"
    steps.append((D + 62, 2000))  # 28 days after recovery
    assert sched(steps).frequency == "monthly"


def test_severe_ladder_and_its_post_recovery_policy() -> None:
    steps = [(D, 400), (D + 1, 1100)]
    assert sched(steps).frequency == "three-times-weekly"
    steps.append((D + 3, 1600))
    assert sched(steps).stage == "weekly-after-recovery"
    plain = RULES.with_overrides({"anc.episode.severe_post_recovery_weekly": False})
    assert sched(steps, rules=plain).frequency == "monthly"


def test_worse_result_escalates_and_relapse_restarts_weekly_weeks() -> None:
    assert sched([(D, 1200), (D + 2, 900)]).frequency == "daily"
    relapse = [(D, 800), (D + 1, 1600), (D + 8, 1200), (D + 10, 1600)]
    assert sched(relapse).stage == "weekly-after-recovery"
    assert sched(relapse).next_due == S + timedelta(days=D + 17)


def test_ben_neutropenia_ladder() -> None:
    steps = [(D, 1500), (D + 5, 800)]
    assert sched(steps, ben=True).frequency == "three-times-weekly"
    steps.append((D + 7, 999))
    assert sched(steps, ben=True).frequency == "three-times-weekly"
    steps.append((D + 9, 1000))
    assert sched(steps, ben=True).stage == "weekly-after-recovery"


def test_ben_severe_daily_until_500_then_until_baseline() -> None:
    steps = [(D, 400), (D + 1, 499)]
    assert sched(steps, ben=True).frequency == "daily"
    steps.append((D + 2, 500))
    assert sched(steps, ben=True).frequency == "three-times-weekly"
    steps.append((D + 4, 1100))
    assert sched(steps, ben=True).stage == "weekly-after-recovery"  # baseline unknown: 1,000
    assert sched(steps, ben=True, baseline=1300).frequency == "three-times-weekly"
    assert sched(steps, ben=True, baseline=700).stage == "weekly-after-recovery"  # never < 1,000


def test_three_times_weekly_interval_is_a_policy() -> None:
    loose = RULES.with_overrides({"anc.episode.three_times_weekly_days": 3})
    assert sched([(D, 1200)], rules=loose).interval_days == 3


# Due soon / overdue (rulebook §2.2)


@pytest.mark.parametrize(
    ("days_left", "state"),
    [(3, "not-due"), (2, "due-soon"), (1, "due-soon"), (0, "due-soon"), (-1, "overdue")],
)
def test_due_state_boundaries(days_left: int, state: str) -> None:
    assert due_state(AS_OF + timedelta(days=days_left), AS_OF, RULES) == state


@pytest.mark.parametrize(
    ("days_since", "code"),
    [(4, None), (5, "anc-due-soon"), (7, "anc-due-soon"), (8, "anc-overdue")],
)
def test_due_findings_from_the_latest_anc(days_since: int, code: str | None) -> None:
    last = AS_OF - timedelta(days=days_since)
    findings, summary = run((lab("Observation/a", last, 2000),))
    due = [c for c in codes(findings) if c in ("anc-due-soon", "anc-overdue")]
    assert due == ([code] if code else [])
    assert summary.next_due == last + timedelta(days=7)
    assert summary.overdue is (code == "anc-overdue")
    if code:
        f = only(findings, code)
        assert f.severity == ("critical" if code == "anc-overdue" else "info")
        assert f.next_due == last + timedelta(days=7) and f.actions == ("anc",)


def test_due_soon_window_is_a_policy() -> None:
    wider = RULES.with_overrides({"anc.due.due_soon_days": 4})
    findings, _ = run((lab("Observation/a", AS_OF - timedelta(days=3), 2000),), rules=wider)
    assert "anc-due-soon" in codes(findings)


# Schedule restart (rulebook §1)


@pytest.mark.parametrize(("gap", "restart"), [(29, False), (30, True), (31, True)])
def test_restart_after_a_gap_of_thirty_days(gap: int, restart: bool) -> None:
    new_start = AS_OF - timedelta(days=14)
    old_end = new_start - timedelta(days=gap)
    meds = (
        cloz("MedicationRequest/old", date(2024, 1, 1), old_end),
        cloz("MedicationRequest/new", new_start),
    )
    labs = (
        lab("Observation/old", old_end - timedelta(days=10), 2200),
        lab("Observation/new", AS_OF - timedelta(days=3), 2100),
    )
    findings, summary = run(labs, meds)
    assert ("anc-schedule-restart" in codes(findings)) is restart
    assert summary.frequency == ("weekly" if restart else "monthly")
    if restart:
        f = only(findings, "anc-schedule-restart")
        assert f.severity == "info" and f"{gap} days off" in f.summary


def test_restart_shown_only_during_the_weekly_phase() -> None:
    def restart_at(weeks_in: int) -> bool:
        new_start = AS_OF - timedelta(days=weeks_in * 7)
        meds = (
            cloz("MedicationRequest/old", date(2023, 1, 1), new_start - timedelta(days=60)),
            cloz("MedicationRequest/new", new_start),
        )
        findings, _ = run((lab("Observation/a", AS_OF, 2000),), meds)
        return "anc-schedule-restart" in codes(findings)

    assert restart_at(25) and not restart_at(26)


def test_proposed_restart_after_a_long_gap() -> None:
    meds = (
        cloz("MedicationRequest/old", date(2024, 1, 1), AS_OF - timedelta(days=90)),
        cloz("MedicationRequest/draft", None, proposed=True),
    )
    findings, summary = run((lab("Observation/b", AS_OF - timedelta(days=2), 2000),), meds)
    assert set(codes(findings)) == {"anc-schedule-restart", "anc-normal"}
    assert summary.frequency == "weekly" and summary.next_due == AS_OF + timedelta(days=5)
