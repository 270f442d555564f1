"""Clozapine courses and interruptions (rulebook §1).

A course is a continuous period of clozapine exposure built from the coverage intervals of
orders, dispenses and administrations. A gap of ``courses.new_course_gap_days`` (30) or more
starts a new course, on which ANC monitoring restarts as for a new patient [L2 §1.5]; a gap of
``courses.retitration_gap_days`` (2) or more before a restart needs re-titration [L1, L3].

Intervals are half-open ``[start, end)``: the gap between two is ``later.start - earlier.end``
days with no coverage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

from smartapp.domain import MedicationExposure, PatientRecord
from smartapp.rules.ruleset import RuleContext

CLOZAPINE = "clozapine"


@dataclass(frozen=True)
class Course:
    start: date
    end: date | None  # first day not covered; None while ongoing
    exposures: tuple[MedicationExposure, ...]
    gap_before_days: int | None  # uncovered days since the previous course; None for the first
    interruptions: tuple[tuple[date, int], ...] = ()  # (restart date, days off) inside the course

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)

    def weeks_on(self, day: date) -> float:
        return (day - self.start).days / 7

    @property
    def evidence(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.ref for e in self.exposures))


@dataclass(frozen=True)
class ClozapineHistory:
    """All courses up to ``as_of`` and the clozapine orders proposed (draft) today.

    ``current`` is the course covering ``as_of``, or the course a proposed order starts or
    continues. ``restart_gap_days`` is the gap before the current course (or before the
    proposed order) when it follows earlier exposure.
    """

    courses: tuple[Course, ...]
    current: Course | None
    proposed: tuple[MedicationExposure, ...]
    restart_gap_days: int | None
    new_course: bool  # current course follows an earlier one after a gap >= 30 days

    @property
    def status(self) -> str:
        if self.current is not None:
            return "active"
        return "stopped" if self.courses else "never"

    @property
    def last(self) -> Course | None:
        return self.courses[-1] if self.courses else None


def clozapine_exposures(record: PatientRecord) -> list[MedicationExposure]:
    return [m for m in record.medications if m.has(CLOZAPINE)]


def _interval(m: MedicationExposure, as_of: date) -> tuple[date, date] | None:
    """Coverage of one exposure up to ``as_of``. An order with no start is dated by when it
    was written; only an order (not a dispense or an administration) can run on without an
    end, otherwise one old dispense would hide every later interruption."""
    start = m.start if m.start is not None else m.authored
    if start is None or start > as_of:
        return None
    end = m.end
    if end is None and m.source != "request":
        supply = m.days_supply if m.days_supply is not None and m.days_supply > 0 else 1
        end = start + timedelta(days=math.ceil(supply))
    if end is None:
        end = as_of + timedelta(days=1)
    return (start, max(end, start + timedelta(days=1)))


def build_courses(exposures: list[MedicationExposure], ctx: RuleContext) -> list[Course]:
    """Merge coverage intervals into courses (rulebook §1)."""
    new_gap = ctx.rules.days("courses.new_course_gap_days")
    retitrate_gap = ctx.rules.days("courses.retitration_gap_days")
    spans = sorted(
        ((iv, m) for m in exposures if not m.proposed and (iv := _interval(m, ctx.as_of))),
        key=lambda span: (span[0], span[1].ref),
    )
    courses: list[Course] = []
    start: date | None = None
    end: date | None = None
    members: list[MedicationExposure] = []
    gap_before: int | None = None
    breaks: list[tuple[date, int]] = []
    for (s, e), m in spans:
        if start is None or end is None:
            start, end, members = s, e, [m]
            continue
        gap = (s - end).days
        if gap >= new_gap:
            courses.append(Course(start, end, tuple(members), gap_before, tuple(breaks)))
            start, end, members, gap_before, breaks = s, e, [m], gap, []
            continue
        if gap >= retitrate_gap:
            breaks.append((s, gap))
        members.append(m)
        end = max(end, e)
    if start is not None and end is not None:
        courses.append(Course(start, end, tuple(members), gap_before, tuple(breaks)))
    return [_open_ended(c, ctx.as_of) for c in courses]


def _open_ended(course: Course, as_of: date) -> Course:
    """A course still covering ``as_of`` through an order with no end is ongoing."""
    ongoing = any(m.end is None and m.source == "request" for m in course.exposures)
    if ongoing and course.end is not None and course.end > as_of:
        return Course(
            course.start, None, course.exposures, course.gap_before_days, course.interruptions
        )
    return course


def clozapine_history(record: PatientRecord, ctx: RuleContext) -> ClozapineHistory:
    exposures = clozapine_exposures(record)
    courses = build_courses(exposures, ctx)
    proposed = tuple(m for m in exposures if m.proposed)
    current = courses[-1] if courses and courses[-1].covers(ctx.as_of) else None
    restart_gap: int | None = None
    new_course = False
    new_gap = ctx.rules.days("courses.new_course_gap_days")
    if current is not None:
        if current.gap_before_days is not None:
            restart_gap = current.gap_before_days
            new_course = True
    elif proposed:
        start = min((m.start or ctx.as_of) for m in proposed)
        previous = courses[-1] if courses else None
        if previous is not None and previous.end is not None:
            restart_gap = max(0, (start - previous.end).days)
        new_course = restart_gap is not None and restart_gap >= new_gap
        current = Course(start, None, proposed, restart_gap)
        if previous is not None and not new_course:
            current = Course(
                previous.start,
                None,
                previous.exposures + proposed,
                previous.gap_before_days,
                previous.interruptions,
            )
    return ClozapineHistory(tuple(courses), current, proposed, restart_gap, new_course)


def current_daily_dose(
    history: ClozapineHistory, as_of: date
) -> tuple[float | None, tuple[str, ...]]:
    """The clozapine dose in force, in mg/day, and the orders it comes from.

    Proposed (draft) orders take precedence; otherwise the orders covering ``as_of``. Orders
    of different products in force together are a split dose and are added up (25 mg + 100 mg
    tablets); orders of the same product are one prescription renewed, and only the
    latest-starting counts. Adding up is the safer reading for the maximum-dose check (§8).
    """
    candidates = [m for m in history.proposed if m.daily_dose_mg is not None]
    if not candidates and history.current is not None:
        candidates = [
            m
            for m in history.current.exposures
            if m.daily_dose_mg is not None
            and m.source == "request"
            and (m.start is None or m.start <= as_of)
            and (m.end is None or m.end > as_of)
        ]
    latest: dict[str, MedicationExposure] = {}
    for m in sorted(candidates, key=lambda m: (m.start or date.min, m.ref)):
        latest[m.recognised_by or m.display] = m
    if not latest:
        return None, ()
    chosen = sorted(latest.values(), key=lambda m: m.ref)
    return sum(m.daily_dose_mg or 0.0 for m in chosen), tuple(m.ref for m in chosen)
