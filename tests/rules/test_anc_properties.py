"""Schedule invariants (issue 2): next due never before the latest ANC; an abnormal result
never lengthens the interval; on clozapine without an ANC never ``anc-normal``; a gap of 30
days or more always restarts the schedule."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from smartapp.domain import LabResult
from smartapp.rules.anc_schedule import run_schedule
from smartapp.rules.anc_values import FbcPoint
from smartapp.rules.fbc_uk import run_uk_schedule, thresholds
from smartapp.rules.ruleset import PROFILES, Profile, default_ruleset
from tests.rules.test_anc import AS_OF, cloz, codes, lab, run

RULES = default_ruleset()
START = date(2024, 1, 1)
COUNTS = st.integers(min_value=0, max_value=6000)
fast = settings(max_examples=150, deadline=None)


@st.composite
def histories(draw: st.DrawFn, max_day: int = 800) -> list[tuple[int, int]]:
    """(day of course, ANC) pairs, days ascending (several on one day allowed)."""
    days = sorted(draw(st.lists(st.integers(-7, max_day), min_size=0, max_size=12)))
    return [(d, draw(COUNTS)) for d in days]


def series(rows: Sequence[tuple[int, float]]) -> list[LabResult]:
    return [lab(f"Observation/{i}", START + timedelta(days=d), v) for i, (d, v) in enumerate(rows)]


def interval(rows: Sequence[tuple[int, float]], ben: bool) -> int:
    s = run_schedule(series(rows), START, ben, None, RULES)
    assert s is not None
    return s.interval_days


@fast
@given(histories(), st.integers(0, 6000), st.booleans())
def test_next_due_never_before_the_latest_anc(
    rows: list[tuple[int, int]], last: int, ben: bool
) -> None:
    day = rows[-1][0] if rows else 0
    s = run_schedule(series([*rows, (day, last)]), START, ben, None, RULES)
    assert s is not None and s.next_due > s.last == START + timedelta(days=day)


@fast
@given(histories(max_day=120), st.integers(0, 6000), st.booleans(), st.sampled_from(PROFILES))
def test_evaluated_next_due_never_before_the_latest_count(
    rows: list[tuple[int, int]], last: int, ben: bool, profile: Profile
) -> None:
    start = AS_OF - timedelta(days=121)
    labs = [lab(f"Observation/{i}", start + timedelta(days=d), v) for i, (d, v) in enumerate(rows)]
    labs.append(lab("Observation/last", AS_OF, last))
    _, summary = run(tuple(labs), (cloz(start=start),), ben=ben, profile=profile)
    assert summary.latest is not None and summary.next_due is not None
    assert summary.next_due > summary.latest.date


@fast
@given(histories(), st.integers(0, 6000), st.integers(0, 6000), st.booleans())
def test_lower_count_never_gets_a_longer_interval(
    rows: list[tuple[int, int]], a: int, b: int, ben: bool
) -> None:
    day = rows[-1][0] + 1 if rows else 0
    low, high = sorted((a, b))
    assert interval([*rows, (day, low)], ben) <= interval([*rows, (day, high)], ben)


@fast
@given(histories(), st.integers(0, 1499), st.booleans())
def test_abnormal_result_never_lengthens_the_interval(
    rows: list[tuple[int, int]], value: int, ben: bool
) -> None:
    day = rows[-1][0] + 1 if rows else 0
    normal_min = 1000 if ben else 1500
    abnormal = min(value, normal_min - 1)
    after_abnormal = interval([*rows, (day, abnormal)], ben)
    assert after_abnormal <= interval([*rows, (day, 5000)], ben)
    assert after_abnormal <= RULES.days("anc.episode.three_times_weekly_days")


@fast
@given(
    st.lists(st.tuples(st.integers(1000, 6000), st.integers(500, 4000)), max_size=8),
    st.integers(1000, 6000),
    st.integers(500, 4000),
)
def test_uk_worse_colour_never_lengthens_the_interval(
    rows: list[tuple[int, int]], wbc: int, neut: int
) -> None:
    t = thresholds(False, RULES)

    def uk_interval(last: tuple[int, int]) -> int:
        points = []
        for i, (w, n) in enumerate([*rows, last]):
            day = START + timedelta(days=i * 3)
            points.append(
                FbcPoint(lab("x", day, w).when, lab(f"w{i}", day, w, "wbc"), lab(f"n{i}", day, n))
            )
        s = run_uk_schedule(points, START, t, RULES)
        assert s is not None and s.next_due > s.last
        return s.interval_days

    assert uk_interval((wbc, neut)) <= uk_interval((6000, 4000))


LAB_CONCEPTS = st.sampled_from(["wbc", "crp", "clozapine", "band-pct"])


@fast
@given(
    st.integers(0, 900),
    st.lists(st.tuples(LAB_CONCEPTS, st.integers(0, 400), st.integers(0, 9000)), max_size=6),
    st.lists(st.integers(9, 2000), max_size=4),
    st.booleans(),
    st.booleans(),
)
def test_on_clozapine_without_an_anc_never_gets_anc_normal(
    course_days: int,
    other_labs: list[tuple[str, int, int]],
    old_anc_days_before: list[int],
    ben: bool,
    proposed: bool,
) -> None:
    start = AS_OF - timedelta(days=course_days)
    meds = (cloz("MedicationRequest/d", None, proposed=True),) if proposed else (cloz(start=start),)
    course_start = AS_OF if proposed else start
    labs = [
        lab(f"Observation/o{i}", AS_OF - timedelta(days=d), v, concept)
        for i, (concept, d, v) in enumerate(other_labs)
    ]
    labs += [
        lab(f"Observation/a{i}", course_start - timedelta(days=d), 3000)
        for i, d in enumerate(old_anc_days_before)
    ]
    findings, summary = run(tuple(labs), meds, ben=ben)
    assert "anc-normal" not in codes(findings)
    assert {"anc-missing", "anc-baseline-missing"} & set(codes(findings))
    assert summary.category == "unknown"


@fast
@given(
    st.integers(30, 400),
    st.integers(60, 900),
    st.integers(0, 181),
    st.integers(0, 7),
    st.sampled_from(PROFILES),
)
def test_gap_of_thirty_days_or_more_restarts_the_schedule(
    gap: int, first_length: int, weeks_days: int, anc_age: int, profile: Profile
) -> None:
    weekly_days = 182 if profile == "us-fda" else 126
    new_start = AS_OF - timedelta(days=weeks_days % weekly_days)
    old_end = new_start - timedelta(days=gap)
    old_start = old_end - timedelta(days=first_length)
    meds = (
        cloz("MedicationRequest/old", old_start, old_end),
        cloz("MedicationRequest/new", new_start),
    )
    old_labs = [
        lab(f"Observation/old{i}", old_start + timedelta(days=d), 2500, "anc")
        for i, d in enumerate(range(0, first_length, 30))
    ]
    anc_day = max(AS_OF - timedelta(days=anc_age), new_start - timedelta(days=7))
    new = [lab("Observation/wbc", anc_day, 5000, "wbc"), lab("Observation/new", anc_day, 2500)]
    findings, summary = run(tuple(old_labs + new), meds, profile=profile)
    assert "anc-schedule-restart" in codes(findings)
    assert summary.frequency == "weekly"
    assert summary.next_due == anc_day + timedelta(days=7)
