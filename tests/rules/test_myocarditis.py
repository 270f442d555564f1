"""Myocarditis (rulebook §4): troponin exactly 2 x ULN vs just above, ULN from the reference range
vs the assay default, CRP 49.9 / 50 / 100 / 100.1, and the day 0/7/14/21/28 schedule windows."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartapp.domain import LabResult, MedicationExposure, PatientRecord
from smartapp.rules.findings import Finding
from smartapp.rules.myocarditis import evaluate_myocarditis
from tests.rules.builders import apply, clozapine, lab_result, rule_context

START = date(2026, 2, 1)
HS_TNI = "89579-7"


def cloz(
    start: date,
    ref: str = "MedicationRequest/c1",
    *,
    proposed: bool = False,
    end: date | None = None,
) -> MedicationExposure:
    return clozapine(ref, start, end, dose=25, tablet_mg=25, proposed=proposed)


def lab(
    ref: str, concept: str, value: float, day: date, *, uln: float | None = None, code: str = ""
) -> LabResult:
    return lab_result(ref, concept, value, day, hour=8, uln=uln, code=code)


def trop(
    ref: str, value: float, day: date, *, uln: float | None = None, code: str = HS_TNI
) -> LabResult:
    return lab(ref, "troponin-i", value, day, uln=uln, code=code)


def crp(ref: str, value: float, day: date) -> LabResult:
    return lab(ref, "crp", value, day, code="1988-5")


def pair(n: int, day: date) -> tuple[LabResult, LabResult]:
    return trop(f"Observation/t{n}", 3, day, uln=20), crp(f"Observation/c{n}", 2, day)


def run(
    as_of: date,
    *labs: LabResult,
    meds: tuple[MedicationExposure, ...] | None = None,
) -> list[Finding]:
    record = PatientRecord(patient="Patient/p1", medications=meds or (cloz(START),), labs=labs)
    return apply(evaluate_myocarditis, record, rule_context(as_of))


def by_code(findings: list[Finding], code: str) -> Finding | None:
    found = [f for f in findings if f.code == code]
    assert len(found) <= 1
    return found[0] if found else None


def day(n: int) -> date:
    return START + timedelta(days=n)


BASELINE = pair(0, day(-1))


def threshold(findings: list[Finding]) -> Finding | None:
    stop = by_code(findings, "myocarditis-stop")
    watch = by_code(findings, "myocarditis-watch")
    assert not (stop and watch)
    return stop or watch


# --- thresholds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (20, None),
        (20.01, "myocarditis-watch"),
        (40, "myocarditis-watch"),
        (40.01, "myocarditis-stop"),
    ],
)
def test_troponin_against_reported_uln(value: float, code: str | None) -> None:
    findings = run(
        day(12),
        *BASELINE,
        trop("Observation/t9", value, day(12), uln=20),
        crp("Observation/c9", 5, day(12)),
    )
    found = threshold(findings)
    assert (found.code if found else None) == code
    if found is not None:
        assert found.severity == ("critical" if code == "myocarditis-stop" else "warning")
        assert "Observation/t9" in found.evidence
        assert "reported reference range" in found.detail


def test_reported_uln_wins_over_the_assay_default() -> None:
    # 40 ng/L is > 2 x the hs-TnI default (15.6) but only 1.33 x the lab's own ULN of 30.
    with_range = threshold(run(day(12), trop("Observation/t9", 40, day(12), uln=30)))
    without = threshold(run(day(12), trop("Observation/t9", 40, day(12))))
    assert with_range is not None and with_range.code == "myocarditis-watch"
    assert without is not None and without.code == "myocarditis-stop"
    assert "default for the assay, policy" in without.detail
    assert "15.6" in without.summary


@pytest.mark.parametrize(
    ("value", "code"), [(15.6, None), (31.2, "myocarditis-watch"), (31.3, "myocarditis-stop")]
)
def test_hs_troponin_i_default_uln_boundaries(value: float, code: str | None) -> None:
    found = threshold(run(day(12), trop("Observation/t9", value, day(12))))
    assert (found.code if found else None) == code


def test_hs_troponin_t_default_uln() -> None:
    t = lab("Observation/t9", "troponin-t", 28.5, day(12), code="67151-1")
    found = threshold(run(day(12), t))
    assert found is not None and found.code == "myocarditis-stop"  # 28.5 > 2 x 14
    t = lab("Observation/t9", "troponin-t", 28, day(12), code="67151-1")
    found = threshold(run(day(12), t))
    assert found is not None and found.code == "myocarditis-watch"


@pytest.mark.parametrize("code", ["10839-9", "", "99999-9"])
def test_troponin_with_no_uln_and_no_default_is_never_read_as_normal(code: str) -> None:
    found = threshold(run(day(12), trop("Observation/t9", 3, day(12), code=code)))
    assert found is not None
    assert found.code == "myocarditis-watch"
    assert "ULN unknown" in found.summary
    assert "cannot be graded" in found.detail


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (49.9, None),
        (50, "myocarditis-watch"),
        (100, "myocarditis-watch"),
        (100.1, "myocarditis-stop"),
    ],
)
def test_crp_boundaries(value: float, code: str | None) -> None:
    found = threshold(
        run(
            day(12),
            trop("Observation/t9", 5, day(12), uln=20),
            crp("Observation/c9", value, day(12)),
        )
    )
    assert (found.code if found else None) == code
    if found is not None:
        assert f"CRP {value:g} mg/L" in found.summary


def test_watch_asks_for_daily_repeat_from_the_result_date() -> None:
    found = threshold(run(day(16), crp("Observation/c9", 60, day(14))))
    assert found is not None and found.code == "myocarditis-watch"
    assert found.next_due == day(15)
    assert found.actions == ("troponin-crp",)
    assert "daily" in found.detail and "pausing" in found.detail
    assert "days 10-33" in found.detail and "14-21" in found.detail


def test_the_worse_of_troponin_and_crp_decides() -> None:
    found = threshold(
        run(
            day(14),
            trop("Observation/t9", 25, day(14), uln=20),
            crp("Observation/c9", 150, day(13)),
        )
    )
    assert found is not None and found.code == "myocarditis-stop"
    assert found.evidence == ("Observation/t9", "Observation/c9")
    assert found.next_due == day(15)
    assert len(found.summary) < 140


def test_only_the_latest_result_counts() -> None:
    findings = run(day(16), crp("Observation/c1", 150, day(13)), crp("Observation/c2", 20, day(15)))
    assert threshold(findings) is None


def test_results_before_the_course_lookback_do_not_count() -> None:
    assert threshold(run(day(3), crp("Observation/c1", 150, day(-8)))) is None
    assert threshold(run(day(3), crp("Observation/c1", 150, day(-7)))) is not None


@pytest.mark.parametrize(("taken", "graded"), [(171, False), (172, True)])
def test_after_the_monitoring_period_only_recent_results_are_graded(
    taken: int, graded: bool
) -> None:
    found = threshold(run(day(200), crp("Observation/c1", 120, day(taken))))
    assert (found is not None) is graded
    if found is not None:
        assert found.code == "myocarditis-stop"
        assert "outside the usual risk window" in found.detail


def test_during_the_monitoring_period_the_latest_result_always_counts() -> None:
    found = threshold(run(day(33), crp("Observation/c1", 120, day(1))))
    assert found is not None and found.code == "myocarditis-stop"
    assert "outside the usual risk window" not in found.detail
    assert threshold(run(day(34), crp("Observation/c1", 120, day(1)))) is None


def test_no_clozapine_no_findings() -> None:
    record = PatientRecord(patient="Patient/p1", labs=(crp("Observation/c1", 150, day(1)),))
    assert apply(evaluate_myocarditis, record, rule_context(day(2))) == []


# --- schedule -----------------------------------------------------------------------------


def monitoring(findings: list[Finding]) -> Finding | None:
    return by_code(findings, "myocarditis-monitoring-due")


def test_proposed_new_course_needs_a_baseline() -> None:
    meds = (cloz(day(0), proposed=True),)
    found = monitoring(run(day(0), meds=meds))
    assert found is not None
    assert found.severity == "warning"
    assert found.next_due == day(0)
    assert "baseline" in found.summary and "before the first dose" in found.summary
    assert found.actions == ("troponin-crp",)
    assert monitoring(run(day(0), *pair(1, day(-3)), meds=meds)) is None


def test_baseline_needs_both_troponin_and_crp() -> None:
    meds = (cloz(day(0), proposed=True),)
    found = monitoring(run(day(0), trop("Observation/t1", 3, day(-1), uln=20), meds=meds))
    assert found is not None and found.severity == "warning"


def test_draw_inside_its_window_is_announced_as_info() -> None:
    found = monitoring(run(day(9), *BASELINE))
    assert found is not None
    assert found.severity == "info"
    assert "day-7" in found.summary
    assert found.next_due == day(9)
    # announced a few days ahead of the target day
    ahead = monitoring(run(day(4), *BASELINE))
    assert ahead is not None and ahead.severity == "info" and ahead.next_due == day(7)
    assert monitoring(run(day(3), *BASELINE)) is None


def test_window_closed_without_a_draw_is_a_warning() -> None:
    found = monitoring(run(day(10), *BASELINE))
    assert found is not None
    assert found.severity == "warning"
    assert "day-7" in found.summary
    assert found.next_due == day(10)
    assert "day-7" in found.detail and "missed" in found.detail


@pytest.mark.parametrize(
    ("drawn", "severity", "named"),
    [
        (4, "warning", "day-7"),  # before the window: day 7 is missed
        (5, "info", "day-14"),  # first day of the window: done, day 14 is next
        (9, "info", "day-14"),  # last day of the window: done
        (10, "info", "day-14"),  # after the window: missed, but a late pair catches it up
    ],
)
def test_day_seven_window_is_plus_minus_two_days(drawn: int, severity: str, named: str) -> None:
    found = monitoring(run(day(11), *BASELINE, *pair(7, day(drawn))))
    assert found is not None
    assert found.severity == severity
    assert named in found.summary
    assert found.next_due == (day(11) if severity == "warning" else day(14))


@pytest.mark.parametrize("n", [14, 21, 28])
def test_each_weekly_draw_is_checked(n: int) -> None:
    done = [p for k in range(0, n, 7) for p in pair(k, day(k if k else -1))]
    assert monitoring(run(day(n + 2), *done)) is not None  # in window, not done: info
    late = monitoring(run(day(n + 3), *done))
    assert late is not None and late.severity == "warning" and f"day-{n}" in late.summary
    complete = monitoring(run(day(n + 3), *done, *pair(n, day(n))))
    assert complete is None or f"day-{n}" not in complete.summary


def test_schedule_is_shown_until_the_end_of_the_risk_window() -> None:
    # the day-28 window closes on day 30; a missed draw stays visible to day 33 (risk window)
    assert monitoring(run(day(33))) is not None
    assert monitoring(run(day(34))) is None


def test_a_restart_after_a_thirty_day_gap_restarts_the_schedule() -> None:
    meds = (cloz(date(2025, 1, 1), "MedicationRequest/old", end=day(-40)), cloz(day(0)))
    found = monitoring(run(day(1), meds=meds))
    assert found is not None and found.severity == "warning" and "baseline" in found.summary


def test_summaries_are_short() -> None:
    findings = run(
        day(24),
        trop("Observation/t9", 500, day(24), code="10839-9"),
        crp("Observation/c9", 180, day(24)),
    )
    assert findings
    assert all(len(f.summary) < 140 for f in findings)
    assert all(f.source for f in findings)


@given(
    as_of=st.integers(min_value=-3, max_value=40),
    drawn=st.lists(st.integers(min_value=-10, max_value=40), max_size=8),
)
def test_schedule_invariants(as_of: int, drawn: list[int]) -> None:
    """next_due is never before as_of; a course with every draw done on its day never warns."""
    labs = [x for k in drawn if k <= as_of for x in pair(k + 100, day(k))]
    found = monitoring(run(day(as_of), *labs))
    if found is not None:
        assert found.next_due is not None and found.next_due >= day(as_of)
    on_time = [x for k in (0, 7, 14, 21, 28) if k <= as_of for x in pair(k, day(k))]
    clean = monitoring(run(day(as_of), *on_time))
    assert clean is None or clean.severity == "info"
