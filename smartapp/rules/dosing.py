"""Clozapine dose, titration, re-titration and seizure risk (rulebook §1 and §8) [L1, L3, Z1, Z2].

- ``titration-start-dose``: a new course whose first order is above the label start on day 1.
- ``retitration-needed``: a restart after ``courses.retitration_gap_days`` or more days off
  (a new course after a long gap, an interruption inside a course, or a drafted order after
  the last course ended) at more than the label start.
- ``dose-above-max``: above the label maximum.
- ``seizure-risk``: a dose at the seizure threshold, or a clozapine level at the alert level.

A dose that cannot be read is never taken as safe: it is named in every finding's detail, and a
start or restart with an unreadable dose is flagged when ``dosing.titration.alert_unknown_dose``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from smartapp.domain import LabResult, MedicationExposure, PatientRecord
from smartapp.rules.courses import CLOZAPINE, ClozapineHistory, Course, current_daily_dose
from smartapp.rules.findings import Finding
from smartapp.rules.interactions import (
    dose_text,
    fit_summary,
    format_mg,
    lab_actions,
    name_list,
)
from smartapp.rules.medications import active_on
from smartapp.rules.ruleset import RuleContext

T = "dosing.titration"
SZ = "dosing.seizure"


@dataclass(frozen=True)
class Start:
    """A start or restart of clozapine: the day, the orders that begin it, the days off
    before it (None for a first-ever course)."""

    day: date
    orders: tuple[MedicationExposure, ...]
    days_off: int | None


def evaluate_dosing(
    record: PatientRecord, history: ClozapineHistory, ctx: RuleContext
) -> list[Finding]:
    """``titration-start-dose``, ``retitration-needed``, ``dose-above-max``, ``seizure-risk``."""
    if history.current is None:
        return []
    note = _unknown_dose_note(record, ctx)
    start = new_course_start(history, ctx)
    restart = restart_of(history, ctx)
    dose, dose_refs = current_daily_dose(history, ctx.as_of)
    findings = [
        _start_finding(start, note, ctx) if start else None,
        _restart_finding(restart, note, ctx) if restart else None,
        _max_finding(dose, dose_refs, note, ctx),
        _seizure_finding(record, history, dose, dose_refs, note, ctx),
    ]
    return [f for f in findings if f is not None]


def active_course(history: ClozapineHistory, as_of: date) -> Course | None:
    """The recorded course covering ``as_of``; None when ``current`` only exists as a draft."""
    last = history.last
    return last if last is not None and last.covers(as_of) else None


def new_course_start(history: ClozapineHistory, ctx: RuleContext) -> Start | None:
    """A first-ever or new (after a gap of ``courses.new_course_gap_days``) course: drafted
    today, or recorded and younger than ``dosing.titration.alert_days`` (§8)."""
    course = history.current
    if course is None:
        return None
    active = active_course(history, ctx.as_of)
    first_ever = len(history.courses) == (0 if active is None else 1)
    if not (history.new_course or first_ever):
        return None
    if active is None:
        day = min(m.start or ctx.as_of for m in history.proposed)
        return Start(day, _orders_on(history.proposed, day, ctx), history.restart_gap_days)
    if not _recent(active.start, ctx):
        return None
    return Start(
        active.start, _orders_on(active.exposures, active.start, ctx), history.restart_gap_days
    )


def restart_of(history: ClozapineHistory, ctx: RuleContext) -> Start | None:
    """The latest restart after ``courses.retitration_gap_days`` or more days off (§1) still
    worth checking: a drafted order, or a recorded restart younger than ``alert_days``."""
    gap_min = ctx.rules.days("courses.retitration_gap_days")
    active = active_course(history, ctx.as_of)
    if active is None:
        gap = history.restart_gap_days
        if history.current is None or gap is None or gap < gap_min:
            return None
        day = min(m.start or ctx.as_of for m in history.proposed)
        return Start(day, _orders_on(history.proposed, day, ctx), gap)
    restarts = list(active.interruptions)
    if active.gap_before_days is not None:
        restarts.append((active.start, active.gap_before_days))
    recent = [(day, gap) for day, gap in restarts if gap >= gap_min and _recent(day, ctx)]
    if not recent:
        return None
    day, gap = max(recent)
    return Start(day, _orders_on(active.exposures, day, ctx), gap)


def _recent(day: date, ctx: RuleContext) -> bool:
    return (ctx.as_of - day).days < ctx.rules.days(f"{T}.alert_days")


def _orders_on(
    exposures: tuple[MedicationExposure, ...], day: date, ctx: RuleContext
) -> tuple[MedicationExposure, ...]:
    """The exposures starting on ``day``; orders in preference to dispenses/administrations."""
    starting = [m for m in exposures if (m.start or ctx.as_of) == day]
    orders = [m for m in starting if m.source == "request"]
    return tuple(orders or starting)


def _over_start(start: Start, ctx: RuleContext) -> tuple[MedicationExposure | None, bool]:
    """(the highest-dosed order above the label start, whether an order's dose is unknown)."""
    limit = ctx.rules.num(f"{T}.start_max_daily_mg")
    over = [m for m in start.orders if m.daily_dose_mg is not None and m.daily_dose_mg > limit]
    unknown = any(m.daily_dose_mg is None for m in start.orders) or not start.orders
    worst = max(over, key=lambda m: m.daily_dose_mg or 0.0) if over else None
    return worst, unknown


def _start_finding(start: Start, note: str, ctx: RuleContext) -> Finding | None:
    worst, unknown = _over_start(start, ctx)
    if worst is None and not (unknown and ctx.rules.value(f"{T}.alert_unknown_dose")):
        return None
    label = f"{format_mg(ctx.rules.num(f'{T}.start_dose_mg'))} mg once or twice daily"
    when = start.day.isoformat()
    if worst is not None and worst.daily_dose_mg is not None:
        summary = (
            f"Clozapine start {format_mg(worst.daily_dose_mg)} mg/day on day 1 ({when}): "
            f"label start is {label}"
        )
    else:
        summary = f"Clozapine start dose unknown ({when}): label start is {label}"
    lines = [_orders_line(start), _titration_text(ctx)]
    if start.days_off is not None:
        lines.append(f"New course after {start.days_off} days without clozapine.")
    return Finding(
        code="titration-start-dose",
        severity=ctx.rules.value(f"{T}.start_severity"),
        summary=fit_summary(summary),
        detail="\n".join(line for line in [*lines, note] if line),
        source=ctx.rules.cite(f"{T}.start_dose_mg", f"{T}.start_max_daily_mg"),
        evidence=tuple(m.ref for m in start.orders),
    )


def _restart_finding(start: Start, note: str, ctx: RuleContext) -> Finding | None:
    worst, unknown = _over_start(start, ctx)
    if worst is None and not (unknown and ctx.rules.value(f"{T}.alert_unknown_dose")):
        return None
    first = format_mg(ctx.rules.num(f"{T}.start_dose_mg"))
    head = f"Clozapine restart after {start.days_off} days off"
    if worst is not None and worst.daily_dose_mg is not None:
        summary = f"{head} at {format_mg(worst.daily_dose_mg)} mg/day: re-titrate from {first} mg"
    else:
        summary = f"{head}, dose unknown: re-titrate from {first} mg"
    gap_min = ctx.rules.days("courses.retitration_gap_days")
    lines = [
        f"Restart on {start.day.isoformat()} after {start.days_off} days off. After "
        f"{gap_min} or more days without clozapine, re-titrate from {first} mg once or twice "
        "daily: restarting at the previous dose risks hypotension, bradycardia and syncope.",
        _orders_line(start),
        _titration_text(ctx),
    ]
    return Finding(
        code="retitration-needed",
        severity=ctx.rules.value(f"{T}.restart_severity"),
        summary=fit_summary(summary),
        detail="\n".join(line for line in [*lines, note] if line),
        source=ctx.rules.cite("courses.retitration_gap_days", f"{T}.restart_severity"),
        evidence=tuple(m.ref for m in start.orders),
    )


def _max_finding(
    dose: float | None, refs: tuple[str, ...], note: str, ctx: RuleContext
) -> Finding | None:
    limit = ctx.rules.num("dosing.maximum.max_daily_mg")
    if dose is None or dose <= limit:
        return None
    return Finding(
        code="dose-above-max",
        severity=ctx.rules.value("dosing.maximum.severity"),
        summary=fit_summary(
            f"Clozapine {format_mg(dose)} mg/day is above the {format_mg(limit)} mg/day maximum"
        ),
        detail="\n".join(
            line
            for line in [
                f"Ordered {format_mg(dose)} mg/day ({', '.join(refs)}); the label maximum is "
                f"{format_mg(limit)} mg/day. Check the dose, its units and frequency, and "
                "duplicate orders; check a clozapine level.",
                note,
            ]
            if line
        ),
        source=ctx.rules.cite("dosing.maximum.max_daily_mg"),
        evidence=refs,
        actions=lab_actions(ctx, "dosing.seizure.actions"),
    )


def _seizure_finding(
    record: PatientRecord,
    history: ClozapineHistory,
    dose: float | None,
    dose_refs: tuple[str, ...],
    note: str,
    ctx: RuleContext,
) -> Finding | None:
    dose_min = ctx.rules.num(f"{SZ}.dose_min_mg")
    level_min = ctx.rules.num(f"{SZ}.level_min_ng_ml")
    by_dose = dose is not None and dose >= dose_min
    level = latest_level(record, history, ctx)
    by_level = level is not None and level.value >= level_min
    if not (by_dose or by_level):
        return None
    parts: list[str] = []
    lines: list[str] = []
    evidence: list[str] = []
    cited: list[str] = []
    if by_dose and dose is not None:
        parts.append(f"clozapine {format_mg(dose)} mg/day")
        lines.append(
            f"Dose {format_mg(dose)} mg/day ({', '.join(dose_refs)}) is at or above "
            f"{format_mg(dose_min)} mg/day: {ctx.rules.value(f'{SZ}.rate_text')}."
        )
        evidence.extend(dose_refs)
        cited.append(f"{SZ}.dose_min_mg")
    if by_level and level is not None:
        parts.append(f"level {format_mg(level.value)} ng/mL ({level.day.isoformat()})")
        lines.append(
            f"Clozapine level {format_mg(level.value)} ng/mL on {level.day.isoformat()} "
            f"({level.ref}) is at or above the alert level of {format_mg(level_min)} ng/mL: "
            "look for toxicity and consider a dose reduction."
        )
        evidence.append(level.ref)
        cited.append(f"{SZ}.level_min_ng_ml")
    lines.append(_prophylaxis_text(record, ctx))
    cited.append(f"{SZ}.prophylaxis")
    return Finding(
        code="seizure-risk",
        severity=ctx.rules.value(f"{SZ}.severity"),
        summary=fit_summary(f"Seizure risk: {' and '.join(parts)} - consider prophylaxis"),
        detail="\n".join(line for line in [*lines, note] if line),
        source=ctx.rules.cite(*cited),
        evidence=tuple(dict.fromkeys(e for e in evidence if e)),
        actions=lab_actions(ctx, f"{SZ}.actions"),
    )


def latest_level(
    record: PatientRecord, history: ClozapineHistory, ctx: RuleContext
) -> LabResult | None:
    """The latest clozapine level of the current course (an earlier course's level says
    nothing about today's dose), up to ``as_of``."""
    course = history.current
    levels = [
        r
        for r in record.labs_of(CLOZAPINE)
        if course is not None and course.start <= r.day <= ctx.as_of
    ]
    return levels[-1] if levels else None


def _prophylaxis_text(record: PatientRecord, ctx: RuleContext) -> str:
    options = ctx.rules.strings("dosing.seizure.prophylaxis")
    avoid = ctx.rules.strings("dosing.seizure.avoid")
    taking = sorted(
        {i for m in active_on(record, ctx.as_of, options) for i in m.ingredients} & set(options)
    )
    text = (
        f"Consider seizure prophylaxis with {name_list(list(options)).replace(' and ', ' or ')}; "
        f"not {name_list(list(avoid))} (agranulocytosis risk, lowers clozapine levels)."
    )
    return text + (f" Already on {name_list(taking)}." if taking else "")


def _orders_line(start: Start) -> str:
    if not start.orders:
        return "No order with a readable start was found for this start."
    described = [
        f"{m.ref} ({dose_text(m)}{', new draft order' if m.proposed else ''})" for m in start.orders
    ]
    return "Orders: " + "; ".join(described) + "."


def _titration_text(ctx: RuleContext) -> str:
    return (
        f"Label titration: start {format_mg(ctx.rules.num(f'{T}.start_dose_mg'))} mg once or "
        f"twice daily (at most {format_mg(ctx.rules.num(f'{T}.start_max_daily_mg'))} mg/day on "
        f"day 1); reach {format_mg(ctx.rules.num(f'{T}.target_min_mg'))}-"
        f"{format_mg(ctx.rules.num(f'{T}.target_max_mg'))} mg/day by the end of week "
        f"{ctx.rules.days(f'{T}.target_by_week')}, then increase in steps of at most "
        f"{format_mg(ctx.rules.num(f'{T}.step_max_mg'))} mg once or twice weekly."
    )


def _unknown_dose_note(record: PatientRecord, ctx: RuleContext) -> str:
    """Clozapine orders in force whose dose could not be read (never taken as a safe dose)."""
    unknown = [
        m.ref
        for m in active_on(record, ctx.as_of, (CLOZAPINE,))
        if m.daily_dose_mg is None and m.source == "request"
    ]
    if not unknown:
        return ""
    return (
        f"Clozapine order(s) in force with a dose that could not be read: {', '.join(unknown)}. "
        "The total dose may be higher than any dose stated here; it was not assumed safe."
    )
