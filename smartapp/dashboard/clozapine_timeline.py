"""The clozapine timeline the ANC chart draws under the counts: the dose in force over time and
the days without clozapine (rulebook §1), both read off the rules' own courses.

The dose on a day is the dose the rules would take as in force (``courses.current_daily_dose``:
the latest-starting order covering the day that states a dose), so the chart never shows a
dose the evaluation did not use. Breaks are the gaps between courses (30 days or more: a new
course, monitoring restarts) and the interruptions inside a course (2 days or more:
re-titrate), plus the gap before a drafted restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise

from smartapp.domain import MedicationExposure
from smartapp.rules.courses import ClozapineHistory


@dataclass(frozen=True)
class DoseStep:
    start: date
    end: date
    mg: float
    ref: str
    proposed: bool = False


@dataclass(frozen=True)
class Gap:
    """Days without clozapine: ``start`` (first day off) to ``end`` (restart day)."""

    start: date
    end: date
    new_course: bool

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def _requests(history: ClozapineHistory) -> list[MedicationExposure]:
    exposures = [m for c in history.courses for m in c.exposures] + list(history.proposed)
    return [
        m
        for m in exposures
        if m.source == "request" and m.daily_dose_mg is not None and m.start is not None
    ]


def _dose_on(requests: list[MedicationExposure], day: date) -> MedicationExposure | None:
    covering = [
        m
        for m in requests
        if m.start is not None and m.start <= day and (m.end is None or m.end > day)
    ]
    return max(covering, key=lambda m: (m.start or date.min, m.ref), default=None)


def dose_steps(history: ClozapineHistory, until: date) -> list[DoseStep]:
    """The clozapine dose in force over time, one step per change (gaps left out)."""
    requests = _requests(history)
    drafted = [m.start for m in history.proposed if m.start is not None]
    until = max([until, *drafted]) + timedelta(days=1)  # a draft starting today shows
    edges = sorted(
        {m.start for m in requests if m.start is not None}
        | {m.end for m in requests if m.end is not None and m.end <= until}
        | {until}
    )
    steps: list[DoseStep] = []
    for start, end in pairwise(edges):
        found = _dose_on(requests, start)
        if found is None or found.daily_dose_mg is None:
            continue
        previous = steps[-1] if steps else None
        if previous and previous.end == start and previous.mg == found.daily_dose_mg:
            steps[-1] = DoseStep(previous.start, end, previous.mg, previous.ref, previous.proposed)
        else:
            steps.append(DoseStep(start, end, found.daily_dose_mg, found.ref, found.proposed))
    return steps


def gaps_of(history: ClozapineHistory) -> list[Gap]:
    """Breaks between courses (>= 30 days: a new course) and interruptions inside a course
    (>= 2 days: re-titration), as the rules' courses record them (rulebook §1)."""
    gaps: list[Gap] = []
    previous_end: date | None = None
    for course in history.courses:
        if previous_end is not None and course.gap_before_days:
            gaps.append(Gap(previous_end, course.start, True))
        for back, days in course.interruptions:
            gaps.append(Gap(back - timedelta(days=days), back, False))
        previous_end = course.end
    restart = min((m.start for m in history.proposed if m.start is not None), default=None)
    if history.restart_gap_days and previous_end and restart and restart > previous_end:
        gaps.append(Gap(previous_end, restart, history.new_course))  # a drafted restart
    return gaps
