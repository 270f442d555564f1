"""Metabolic monitoring on clozapine (rulebook §9; ADA/APA 2004 consensus [G3]).

Three checks run on schedules counted from the start of the current course:
weight or BMI at baseline, weeks 4, 8 and 12, then every 3 months; fasting glucose or HbA1c,
and lipids, at baseline and week 12, then yearly.

When is a check done? Each scheduled check opens ``metabolic.window_days`` (policy) before its
date (the baseline ``metabolic.baseline_lookback_days`` before the course start), and any result
from its opening on counts, including a late one. A late result therefore also covers the
missed checks before it. The earliest check that is open and not done is due; it is overdue
once its window (date + ``window_days``) has passed. One ``metabolic-monitoring-due`` finding
lists every check that is due, with the earliest due date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from smartapp.domain import LabResult, PatientRecord
from smartapp.rules.courses import ClozapineHistory, Course
from smartapp.rules.findings import Finding
from smartapp.rules.ruleset import RuleContext, RulesetError

CHECKS = ("weight", "glycaemia", "lipids")
LABELS = {"weight": "weight/BMI", "glycaemia": "glucose/HbA1c", "lipids": "lipids"}
M = "metabolic"
SUMMARY_LIMIT = 140


@dataclass(frozen=True)
class DueCheck:
    """A check that is due: its name, which scheduled point, when, and the last result."""

    check: str
    offset_days: int
    due: date
    overdue: bool
    last: LabResult | None


def _weeks(ctx: RuleContext, check: str) -> list[int]:
    value: Any = ctx.rules.value(f"{M}.{check}.initial_weeks")
    if not isinstance(value, list) or not value or not all(type(v) is int for v in value):
        raise RulesetError(f"{M}.{check}.initial_weeks must be a list of whole weeks")
    return sorted(value)


def schedule(ctx: RuleContext, check: str, until_day: int) -> list[int]:
    """Course days of the scheduled ``check`` points up to course day ``until_day``."""
    offsets = [w * 7 for w in _weeks(ctx, check)]
    every = ctx.rules.days(f"{M}.{check}.then_every_days")
    if every <= 0:
        raise RulesetError(f"{M}.{check}.then_every_days must be positive")
    while offsets[-1] + every <= until_day:
        offsets.append(offsets[-1] + every)
    return [o for o in offsets if o <= until_day]


def results(record: PatientRecord, check: str, ctx: RuleContext) -> list[LabResult]:
    """Results that count for ``check`` up to ``as_of``, oldest first (a glucose only when
    fasting, by policy)."""
    concepts = ctx.rules.strings(f"{M}.{check}.concepts")
    fasting_only = check == "glycaemia" and ctx.rules.value(
        f"{M}.glycaemia.glucose_requires_fasting"
    )
    return [
        lab
        for lab in record.labs_of(*concepts)
        if lab.day <= ctx.as_of
        and not (fasting_only and lab.concept == "glucose" and not lab.fasting)
    ]


def due_check(
    record: PatientRecord, course: Course, check: str, ctx: RuleContext
) -> DueCheck | None:
    """The earliest open, undone scheduled point of ``check`` in ``course``, if any."""
    window = ctx.rules.days(f"{M}.window_days")
    lookback = ctx.rules.days(f"{M}.baseline_lookback_days")
    first = course.start - timedelta(days=lookback)
    found = [lab for lab in results(record, check, ctx) if lab.day >= first]
    last = found[-1] if found else None
    today = (ctx.as_of - course.start).days
    for offset in schedule(ctx, check, max(today + window, 0)):
        opens = first if offset == 0 else course.start + timedelta(days=offset - window)
        if opens > ctx.as_of:
            break
        if last is not None and last.day >= opens:
            continue
        due = course.start + timedelta(days=offset)
        overdue = ctx.as_of > due + timedelta(days=window)
        return DueCheck(check, offset, due, overdue, last)
    return None


def _short(text: str) -> str:
    return text if len(text) < SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 2] + "…"


def _state(d: DueCheck) -> str:
    return "overdue since" if d.overdue else "due"


def _point(offset: int) -> str:
    if offset == 0:
        return "baseline"
    return f"week {offset // 7}" if offset % 7 == 0 else f"day {offset}"


def _last_text(last: LabResult | None) -> str:
    if last is None:
        return "no result in this course"
    return f"last {last.concept} {last.value:g} {last.unit} on {last.day} ({last.ref})"


def evaluate_metabolic(
    record: PatientRecord, history: ClozapineHistory, ctx: RuleContext
) -> list[Finding]:
    """Rulebook §9: ``metabolic-monitoring-due`` (info) listing the checks due or overdue."""
    course = history.current
    if course is None:
        return []
    due = [d for check in CHECKS if (d := due_check(record, course, check, ctx)) is not None]
    if not due:
        return []
    parts = [f"{LABELS[d.check]} {_state(d)} {d.due}" for d in due]
    lines = [
        f"- {LABELS[d.check]}: {_point(d.offset_days)} check {_state(d)} {d.due}; "
        f"{_last_text(d.last)}"
        for d in due
    ]
    detail = (
        "Clozapine causes weight gain, diabetes and dyslipidaemia. Schedule from the course start "
        f"({course.start}): weight/BMI at baseline, weeks 4, 8, 12, then every 3 months; fasting "
        "glucose or HbA1c and lipids at baseline and week 12, then yearly.\n" + "\n".join(lines)
    )
    paths = [f"{M}.{d.check}.initial_weeks" for d in due] + [f"{M}.window_days"]
    evidence = [*course.evidence, *(d.last.ref for d in due if d.last is not None)]
    return [
        Finding(
            code="metabolic-monitoring-due",
            severity="info",
            summary=_short("Metabolic monitoring: " + "; ".join(parts)),
            detail=detail,
            source=ctx.rules.cite(*paths),
            evidence=tuple(dict.fromkeys(evidence)),
            next_due=min(d.due for d in due),
            actions=("metabolic",),
        )
    ]
