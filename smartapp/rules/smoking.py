"""Changes in smoking status and CYP1A2 induction (rulebook §6) [S1, S2, S3].

Tobacco smoke (not nicotine) induces CYP1A2, which clears clozapine. Stopping smoking, including
a switch to e-cigarettes or nicotine replacement, lets levels rise; starting lets them fall.

How the change is found:
- statuses dated after ``as_of`` and ``unknown`` statuses are ignored: an unknown status is
  never read as a non-smoker, nor does it hide the change around it;
- the latest known status is compared with the most recent earlier status of the opposite
  state; a change is reported when that earlier status is dated within
  ``smoking.lookback_days`` (180, policy) before ``as_of``. The look-back runs from ``as_of``
  because the warning is about what is happening now: the newer status is then inside it too;
- the change is dated by the first status that shows the new state (the earliest date the
  record shows it), and a clozapine level is suggested about a week after it, unless one was
  drawn since then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from smartapp.domain import LabResult, PatientRecord, SmokingObservation, SmokingState
from smartapp.rules.courses import ClozapineHistory, Course
from smartapp.rules.findings import Finding, LabAction
from smartapp.rules.levels import course_levels
from smartapp.rules.ruleset import RuleContext

LEVEL: tuple[LabAction, ...] = ("clozapine-level",)
SHOWN = 3


@dataclass(frozen=True)
class Change:
    """The last switch between smoker and non-smoker: ``before`` is the last status in the old
    state, ``after`` the first in the new one, ``latest`` the newest known status."""

    before: SmokingObservation
    after: SmokingObservation
    latest: SmokingObservation

    @property
    def stopped(self) -> bool:
        return state(self.latest) == "non-smoker"


def state(obs: SmokingObservation) -> SmokingState:
    """Smoke, not nicotine, keeps CYP1A2 induced: e-cigarette only counts as non-smoker."""
    return "non-smoker" if obs.e_cigarette_only else obs.state


def last_change(observations: tuple[SmokingObservation, ...], as_of: date) -> Change | None:
    known = sorted(
        (o for o in observations if o.day <= as_of and state(o) != "unknown"),
        key=lambda o: (o.when, o.ref),
    )
    if not known:
        return None
    now = state(known[-1])
    for i in range(len(known) - 1, 0, -1):
        if state(known[i - 1]) != now:
            return Change(before=known[i - 1], after=known[i], latest=known[-1])
    return None


def evaluate_smoking(
    record: PatientRecord, history: ClozapineHistory, ctx: RuleContext
) -> list[Finding]:
    """Rulebook §6: ``smoking-cessation`` and ``smoking-started`` for a patient on clozapine."""
    course = history.current
    if course is None:
        return []
    change = last_change(record.smoking, ctx.as_of)
    if change is None:
        return []
    lookback = ctx.rules.days("smoking.lookback_days")
    if change.before.day < ctx.as_of - timedelta(days=lookback):
        return []
    return [_finding(change, course, record, ctx)]


def _describe(obs: SmokingObservation) -> str:
    vaping = ", e-cigarette only" if obs.e_cigarette_only else ""
    answer = f"'{obs.answer}'" if obs.answer else state(obs)
    return f"{answer}{vaping} on {obs.day} ({obs.ref})"


def _level_plan(
    change: Change, course: Course, record: PatientRecord, ctx: RuleContext
) -> tuple[date | None, str, list[LabResult]]:
    """When to check a level, and the levels already drawn since the change."""
    due = change.after.day + timedelta(days=ctx.rules.days("smoking.level_after_days"))
    since = course_levels(record, max(course.start, change.after.day), ctx.as_of, "clozapine")
    settled = [lab for lab in since if lab.day >= due]
    shown = "; ".join(f"{lab.value:g} ng/mL on {lab.day} ({lab.ref})" for lab in since[-SHOWN:])
    text = (
        f"Latest clozapine levels since the change: {shown}."
        if since
        else ("No clozapine level since the change.")
    )
    return (None if settled else due), text, since


def _finding(change: Change, course: Course, record: PatientRecord, ctx: RuleContext) -> Finding:
    r = ctx.rules
    due, levels_text, since = _level_plan(change, course, record, ctx)
    check = f"check a level around {due}" if due else "a level has been checked since"
    moved = f"{_describe(change.before)} to {_describe(change.after)}"
    if change.stopped:
        code = "smoking-cessation"
        summary = (
            f"Stopped smoking (smoker {change.before.day}, non-smoker {change.after.day}): "
            f"clozapine level may rise ~{r.num('smoking.level_rise_pct'):g} %"
        )
        detail = (
            f"Smoking status changed from {moved}. Tobacco smoke, not nicotine, induces CYP1A2: "
            "nicotine replacement and e-cigarettes do not keep the induction up. Expect clozapine "
            f"levels to rise by about {r.num('smoking.level_rise_pct'):g} %, often within "
            f"{r.days('smoking.rise_onset_days_min')}-{r.days('smoking.rise_onset_days_max')} "
            f"days, with a new steady state in {r.days('smoking.steady_state_weeks_min')}-"
            f"{r.days('smoking.steady_state_weeks_max')} weeks (CYP1A2 activity falls with a "
            f"half-life of about {round(r.num('smoking.cyp1a2_half_life_hours')):d} hours). "
            f"Consider reducing the dose by about {r.num('smoking.dose_reduction_pct'):g} %, "
            f"{check}, and watch for {', '.join(r.strings('smoking.watch_for'))}. {levels_text}"
        )
        paths = [
            "smoking.level_rise_pct",
            "smoking.cyp1a2_half_life_hours",
            "smoking.dose_reduction_pct",
            "smoking.level_after_days",
            "smoking.lookback_days",
        ]
    else:
        code = "smoking-started"
        summary = (
            f"Started smoking (non-smoker {change.before.day}, smoker {change.after.day}): "
            "clozapine level may fall, symptoms may return"
        )
        detail = (
            f"Smoking status changed from {moved}. Tobacco smoke induces CYP1A2, so clozapine "
            f"levels fall and symptoms may return: {check} and consider whether the dose needs "
            "to rise. If the patient stops smoking again, levels will rise: reduce the dose "
            f"again. {levels_text}"
        )
        paths = ["smoking.level_after_days", "smoking.lookback_days"]
    evidence = [
        change.before.ref,
        change.after.ref,
        change.latest.ref,
        *(lab.ref for lab in since[-SHOWN:]),
    ]
    return Finding(
        code=code,
        severity="warning",
        summary=summary,
        detail=detail,
        source=r.cite(*paths),
        evidence=tuple(dict.fromkeys(evidence)),
        next_due=due,
        actions=LEVEL if due else (),
    )
