"""ANC monitoring schedule: the US phase frequency, the neutropenia episode state machine and
the next due date (rulebook §2.2–§2.4, L1 Tables 1–2), and the schedule facts both profiles
share (due soon, overdue, missing, baseline missing, restart; rulebook §1, §2.1, §2.2).

The phase interval is counted at the date of the latest ANC (weeks since the current course
started): the interval that applies after that result. Near a phase change this gives the
shorter of the two intervals, the safer reading.

An episode is a ladder of steps, each with the count that ends it:
- general mild: three times weekly until ≥ 1,500, then the phase interval;
- general moderate (and severe, by policy): daily until ≥ 1,000, three times weekly until
  ≥ 1,500, then weekly for 4 weeks, then the phase interval;
- BEN neutropenia: three times weekly until ≥ 1,000, then weekly for 4 weeks;
- BEN severe: daily until ≥ 500, three times weekly until ≥ the patient's baseline (never
  below 1,000: the safer reading of "≥ 1,000 or ≥ baseline"), then weekly for 4 weeks (policy).
A new result climbs down the ladder it recovers through, and can only put the patient on a
ladder at least as intensive as the one it leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from smartapp.domain import LabResult
from smartapp.rules.anc_values import AncCategory, category
from smartapp.rules.courses import ClozapineHistory, Course
from smartapp.rules.findings import AncSummary, Finding, LabAction
from smartapp.rules.ruleset import Ruleset

Stage = Literal["daily", "three-times-weekly", "weekly-after-recovery", "phase"]
STAGE_INTERVAL_PATH = {
    "daily": "anc.episode.daily_days",
    "three-times-weekly": "anc.episode.three_times_weekly_days",
}
STAGE_FREQUENCY = {
    "daily": "daily",
    "three-times-weekly": "three-times-weekly",
    "weekly-after-recovery": "weekly",
}
STAGE_RANK: dict[Stage, int] = {
    "daily": 0,
    "three-times-weekly": 1,
    "weekly-after-recovery": 2,
    "phase": 3,
}


@dataclass(frozen=True)
class Step:
    stage: Stage
    exit_min: float  # the count that ends this step


@dataclass(frozen=True)
class EpisodeState:
    steps: tuple[Step, ...] = ()
    weekly_after: bool = False  # weekly for 4 weeks once the steps are done
    weekly_until: date | None = None

    @property
    def stage(self) -> Stage:
        if self.steps:
            return self.steps[0].stage
        return "weekly-after-recovery" if self.weekly_until is not None else "phase"


@dataclass(frozen=True)
class Schedule:
    """What the series asks for after its latest result."""

    frequency: str
    interval_days: int
    last: date
    next_due: date
    stage: str
    weeks_at_last: float
    citations: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Phases:
    """A profile's normal-range monitoring phases, read from rule data under ``section``:
    weekly from the start of the course (``weekly_days``), then each of the ``later``
    frequencies in course order, from week ``<frequency>_from_weeks`` every
    ``<frequency>_days`` days (``every-2-weeks`` is read as ``every_2_weeks_...``)."""

    section: str
    later: tuple[str, ...]

    def _path(self, frequency: str, key: str) -> str:
        return f"{self.section}.{frequency.replace('-', '_')}_{key}"

    def interval(self, weeks: float, rules: Ruleset) -> tuple[str, int]:
        """Frequency and interval at ``weeks`` into the course; the week a phase starts
        already belongs to it (the longer interval)."""
        for frequency in reversed(self.later):
            if weeks >= rules.num(self._path(frequency, "from_weeks")):
                return frequency, rules.days(self._path(frequency, "days"))
        return "weekly", rules.days(self._path("weekly", "days"))

    @property
    def citations(self) -> tuple[str, ...]:
        """The weekly interval and the week each later phase starts."""
        later = (self._path(frequency, "from_weeks") for frequency in self.later)
        return (self._path("weekly", "days"), *later)


US_PHASES = Phases("anc.phase", ("every-2-weeks", "monthly"))


def us_phase(weeks: float, rules: Ruleset) -> tuple[str, int]:
    """Normal-range frequency by weeks in the current course (rulebook §2.2, L1 Table 1):
    weeks 26.0 and 52.0 already belong to the longer interval."""
    return US_PHASES.interval(weeks, rules)


def weeks_since(start: date, day: date) -> float:
    return (day - start).days / 7


def _plan(
    cat: AncCategory, baseline: float | None, rules: Ruleset
) -> tuple[tuple[Step, ...], bool]:
    """The ladder a result of this category starts, and whether weekly-for-4-weeks follows."""
    tiw: Stage = "three-times-weekly"
    severe_weekly = bool(rules.value("anc.episode.severe_post_recovery_weekly"))
    general_normal = rules.num("anc.general.normal_min")
    general_mild = rules.num("anc.general.mild_min")
    ben_normal = rules.num("anc.ben.normal_min")
    if cat == "mild":
        return (Step(tiw, general_normal),), False
    if cat in ("moderate", "severe"):
        steps = (Step("daily", general_mild), Step(tiw, general_normal))
        return steps, cat == "moderate" or severe_weekly
    if cat == "ben-neutropenia":
        return (Step(tiw, ben_normal),), True
    if cat == "ben-severe":
        target = max(ben_normal, baseline or 0.0)
        return (Step("daily", rules.num("anc.ben.neutropenia_min")), Step(tiw, target)), (
            severe_weekly
        )
    return (), False


def _more_intensive(a: tuple[Step, ...], b: tuple[Step, ...]) -> tuple[Step, ...]:
    """The ladder whose current step is more intensive; on a tie, the higher exit count."""
    if not a or not b:
        return a or b
    ra, rb = STAGE_RANK[a[0].stage], STAGE_RANK[b[0].stage]
    if ra != rb:
        return a if ra < rb else b
    return a if a[0].exit_min >= b[0].exit_min else b


def step(
    state: EpisodeState, result: LabResult, ben: bool, baseline: float | None, rules: Ruleset
) -> EpisodeState:
    """One result through the episode state machine (L1 Tables 1–2)."""
    value, day = result.value, result.day
    steps, weekly_until = state.steps, state.weekly_until
    recovering = bool(steps)
    while steps and value >= steps[0].exit_min:
        steps = steps[1:]
    if recovering and not steps and state.weekly_after:
        weekly_until = day + timedelta(days=rules.days("anc.episode.post_recovery_weekly_days"))
    if weekly_until is not None and day >= weekly_until:
        weekly_until = None
    plan, plan_weekly = _plan(category(value, ben, rules), baseline, rules)
    merged = _more_intensive(steps, plan)
    if not merged:
        return EpisodeState((), False, weekly_until)
    # A relapse during the weekly weeks earns them again after the new recovery.
    weekly_after = (
        (bool(steps) and state.weekly_after)
        or (bool(plan) and plan_weekly)
        or weekly_until is not None
    )
    return EpisodeState(merged, weekly_after, None)


def interval_after(state: EpisodeState, weeks: float, rules: Ruleset) -> tuple[str, int]:
    """Frequency label and interval in days once ``state`` is reached."""
    phase_label, phase_days = us_phase(weeks, rules)
    stage = state.stage
    if stage in STAGE_INTERVAL_PATH:
        return STAGE_FREQUENCY[stage], rules.days(STAGE_INTERVAL_PATH[stage])
    if stage == "weekly-after-recovery":
        weekly = rules.days("anc.phase.weekly_days")
        return ("weekly", weekly) if weekly <= phase_days else (phase_label, phase_days)
    return phase_label, phase_days


def run_schedule(
    series: list[LabResult],
    course_start: date,
    ben: bool,
    baseline: float | None,
    rules: Ruleset,
) -> Schedule | None:
    """The schedule after the last result of ``series`` (results of the current course,
    oldest first, including its baseline); ``None`` when there is no result."""
    if not series:
        return None
    state = EpisodeState()
    for result in series:
        state = step(state, result, ben, baseline, rules)
    last = series[-1].day
    weeks = weeks_since(course_start, last)
    frequency, days = interval_after(state, weeks, rules)
    citations = US_PHASES.citations
    if state.stage in STAGE_INTERVAL_PATH:
        citations = (STAGE_INTERVAL_PATH[state.stage], *citations)
    elif state.stage == "weekly-after-recovery":
        citations = ("anc.episode.post_recovery_weekly_days", *citations)
    return Schedule(
        frequency=frequency,
        interval_days=days,
        last=last,
        next_due=last + timedelta(days=days),
        stage=state.stage,
        weeks_at_last=weeks,
        citations=citations,
    )


DueState = Literal["overdue", "due-soon", "not-due"]


def due_state(next_due: date, as_of: date, rules: Ruleset) -> DueState:
    """Overdue when the evaluation date is after the due date; due soon when due within
    ``anc.due.due_soon_days`` (policy) days, the due day itself included (rulebook §2.2)."""
    if as_of > next_due:
        return "overdue"
    if (next_due - as_of).days <= rules.days("anc.due.due_soon_days"):
        return "due-soon"
    return "not-due"


# Schedule facts shared by both profiles: due soon, overdue, missing, baseline missing, restart.


def count_text(value: float) -> str:
    return f"{value:,.0f}/µL"


def due_finding(
    test: str,
    last_text: str,
    frequency: str,
    next_due: date,
    evidence: tuple[str, ...],
    citations: tuple[str, ...],
    rules: Ruleset,
    as_of: date,
    actions: tuple[LabAction, ...],
) -> Finding | None:
    """``anc-overdue`` (critical) after the due date, ``anc-due-soon`` (info) within the
    due-soon window (rulebook §2.2)."""
    state = due_state(next_due, as_of, rules)
    if state == "not-due":
        return None
    if state == "overdue":
        late = (as_of - next_due).days
        return Finding(
            code="anc-overdue",
            severity="critical",
            summary=f"{test} overdue: was due {next_due} ({frequency}; last {last_text}): "
            "order one now",
            detail=f"The last {test} was {last_text}. At the {frequency} interval the next was "
            f"due on {next_due}; it is {late} day(s) late on {as_of}. Order a {test} now and "
            "review it before the next clozapine supply.",
            source=rules.cite(*citations),
            evidence=evidence,
            next_due=next_due,
            actions=actions,
        )
    return Finding(
        code="anc-due-soon",
        severity="info",
        summary=f"{test} due {next_due} ({frequency}; last {last_text})",
        detail=f"The last {test} was {last_text}. At the {frequency} interval the next is due on "
        f"{next_due}, within {rules.days('anc.due.due_soon_days')} day(s) of {as_of}.",
        source=rules.cite("anc.due.due_soon_days", *citations),
        evidence=evidence,
        next_due=next_due,
        actions=actions,
    )


def missing_finding(
    test: str,
    course: Course,
    context: str,
    rules: Ruleset,
    as_of: date,
    actions: tuple[LabAction, ...],
) -> Finding:
    """``anc-missing`` (critical): on clozapine with no count in the current course. A count
    from before the course (other than its baseline) says nothing about this course.
    ``context`` adds sentences on earlier counts or data that could not be retrieved."""
    return Finding(
        code="anc-missing",
        severity="critical",
        summary=f"On clozapine since {course.start} with no {test} in this course: order one now",
        detail=f"The current clozapine course started on {course.start} and no {test} has been "
        f"recorded since, nor in the baseline window before it.{context} Missing monitoring is "
        f"never read as normal: order an {test} now.",
        source=rules.cite("anc.missing.no_anc_is_critical", "anc.baseline.recency_days"),
        evidence=course.evidence,
        next_due=as_of,
        actions=actions,
    )


def baseline_missing_finding(
    test: str,
    course: Course,
    reason: str,
    evidence: tuple[str, ...],
    citations: tuple[str, ...],
    rules: Ruleset,
    actions: tuple[LabAction, ...],
) -> Finding:
    """``anc-baseline-missing`` (critical): a starting course without a usable baseline
    (rulebook §2.1 and §3). Critical whether the order is proposed or already taken: a
    patient already on clozapine without any count is at least as exposed."""
    window = rules.days("anc.baseline.recency_days")
    return Finding(
        code="anc-baseline-missing",
        severity="critical",
        summary=f"No usable baseline {test} for clozapine start {course.start}: {reason}"[:139],
        detail=f"Clozapine needs a baseline {test} within {window} days before the start "
        f"({course.start}); {reason}. Order an {test} and review it before the first dose.",
        source=rules.cite("anc.baseline.recency_days", *citations),
        evidence=tuple(dict.fromkeys(course.evidence + evidence)),
        next_due=course.start,
        actions=actions,
    )


def restart_finding(
    history: ClozapineHistory,
    weekly_phase_weeks: float,
    test: str,
    rules: Ruleset,
    as_of: date,
    actions: tuple[LabAction, ...],
) -> Finding | None:
    """``anc-schedule-restart`` (info): the current course follows an earlier one after a gap
    of 30 days or more (rulebook §1, L2 §1.5); shown during the new weekly phase."""
    course = history.current
    if course is None or not history.new_course:
        return None
    weeks = weeks_since(course.start, as_of)
    if weeks >= weekly_phase_weeks:
        return None
    gap = history.restart_gap_days
    return Finding(
        code="anc-schedule-restart",
        severity="info",
        summary=f"Clozapine restarted {course.start} after {gap} days off: {test} monitoring "
        "restarts weekly, as for a new patient",
        detail=f"The current course started on {course.start} after {gap} days without "
        f"clozapine, so {test} monitoring restarts weekly from week 0 (now week "
        f"{max(weeks, 0.0):.1f}); the interval of the earlier course no longer applies.",
        source=rules.cite(
            "courses.new_course_gap_days", "anc.restart.new_course_restarts_schedule"
        ),
        evidence=course.evidence,
        actions=actions,
    )


def unmonitored(
    findings: list[Finding],
    test: str,
    context: str,
    course: Course,
    frequency: str,
    ben_table: bool,
    rules: Ruleset,
    as_of: date,
    actions: tuple[LabAction, ...],
) -> tuple[list[Finding], AncSummary]:
    """On clozapine with no count in this course or its baseline window: ``anc-missing``
    unless a baseline finding already says so; never a category, never "not due"."""
    proposed_only = all(m.proposed for m in course.exposures)
    if not any(f.code == "anc-baseline-missing" for f in findings):
        findings.append(missing_finding(test, course, context, rules, as_of, actions))
    return findings, AncSummary(
        threshold_set="ben" if ben_table else "general",
        category="unknown",
        frequency=frequency,
        next_due=max(as_of, course.start) if proposed_only else as_of,
        overdue=not proposed_only,
    )
