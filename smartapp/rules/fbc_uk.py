"""Full blood count traffic lights, UK profile (rulebook §3; U1 CPMS/ZTAS/DMS, U2 NHS GGC).

Colour of one specimen time from WBC and neutrophils (thresholds in /µL in the rule data):
green WBC ≥ 3,500 and neutrophils ≥ 2,000; red WBC < 3,000 or neutrophils < 1,500; amber
otherwise. When only one of the two was measured, the colour rests on that one and the
finding says which is missing.

Schedule: weekly to week 18, every 2 weeks to week 52, then every 4 weeks (by weeks at the
latest count, as in the US profile); amber twice weekly (every 3 days, policy) until green;
red daily until two consecutive greens.

UK BEN thresholds are set locally with haematology: policy parameters that ship unset
(``null``). With BEN recorded and no local thresholds the general table applies, and the
finding says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from smartapp.domain import PatientRecord
from smartapp.rules.anc_schedule import (
    Phases,
    Schedule,
    baseline_missing_finding,
    due_finding,
    restart_finding,
    unmonitored,
    weeks_since,
)
from smartapp.rules.anc_values import FbcPoint, fbc_series, is_ben, missing_context
from smartapp.rules.courses import ClozapineHistory, Course
from smartapp.rules.findings import AncLatest, AncSummary, Finding, LabAction, Severity
from smartapp.rules.ruleset import RuleContext, Ruleset

Colour = Literal["green", "amber", "red"]
ACTIONS: tuple[LabAction, ...] = ("cbc-diff",)
KEYS = ("wbc_green_min", "wbc_amber_min", "neut_green_min", "neut_amber_min")
RANK: dict[Colour, int] = {"green": 0, "amber": 1, "red": 2}
COLOUR_TEXT: dict[Colour, tuple[str, Severity, str]] = {
    "green": ("fbc-green", "info", "continue clozapine"),
    "amber": ("fbc-amber", "warning", "continue clozapine, FBC twice weekly until green"),
    "red": ("fbc-red", "critical", "stop clozapine, FBC daily until two consecutive greens"),
}


@dataclass(frozen=True)
class UkThresholds:
    wbc_green_min: float
    wbc_amber_min: float
    neut_green_min: float
    neut_amber_min: float
    ben: bool  # local BEN thresholds in use
    paths: tuple[str, ...]
    note: str = ""


def thresholds(ben: bool, rules: Ruleset) -> UkThresholds:
    """General thresholds, or the local BEN ones when BEN is recorded and all are set."""
    if ben:
        paths = tuple(f"anc_uk.ben.{k}" for k in KEYS)
        values = [rules.value(p) for p in paths]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return _build([float(v) for v in values], True, paths, "")
    paths = tuple(f"anc_uk.general.{k}" for k in KEYS)
    note = (
        " BEN is recorded, but no local UK BEN thresholds are configured: the general "
        "thresholds were used; agree local thresholds with haematology."
        if ben
        else ""
    )
    return _build([rules.num(p) for p in paths], False, paths, note)


def _build(values: list[float], ben: bool, paths: tuple[str, ...], note: str) -> UkThresholds:
    wbc_green, wbc_amber, neut_green, neut_amber = values
    return UkThresholds(wbc_green, wbc_amber, neut_green, neut_amber, ben, paths, note)


def _grade(value: float, green_min: float, amber_min: float) -> Colour:
    if value >= green_min:
        return "green"
    return "amber" if value >= amber_min else "red"


def colour(point: FbcPoint, t: UkThresholds) -> Colour:
    """The worse colour of the WBC and the neutrophils that were measured."""
    grades: list[Colour] = []
    if point.wbc is not None:
        grades.append(_grade(point.wbc.value, t.wbc_green_min, t.wbc_amber_min))
    if point.neutrophils is not None:
        grades.append(_grade(point.neutrophils.value, t.neut_green_min, t.neut_amber_min))
    return max(grades, key=RANK.__getitem__)


UK_PHASES = Phases("anc_uk.phase", ("every-2-weeks", "every-4-weeks"))


def uk_phase(weeks: float, rules: Ruleset) -> tuple[str, int]:
    """Weekly to week 18, every 2 weeks to week 52, then every 4 weeks (U1)."""
    return UK_PHASES.interval(weeks, rules)


def run_uk_schedule(
    points: list[FbcPoint], course_start: date, t: UkThresholds, rules: Ruleset
) -> Schedule | None:
    """Amber: twice weekly until green. Red: daily until two consecutive greens (U2)."""
    if not points:
        return None
    stage, greens = "phase", 0
    needed = rules.days("anc_uk.episode.red_exit_greens")
    for point in points:
        c = colour(point, t)
        if c == "red":
            stage, greens = "daily", 0
        elif stage == "daily":
            greens = greens + 1 if c == "green" else 0
            stage = "phase" if greens >= needed else "daily"
        else:
            stage = "twice-weekly" if c == "amber" else "phase"
    last = points[-1].day
    weeks = weeks_since(course_start, last)
    cited = UK_PHASES.citations
    if stage == "daily":
        frequency, days = "daily", rules.days("anc_uk.episode.daily_days")
        cited = ("anc_uk.episode.daily_days", "anc_uk.episode.red_exit_greens")
    elif stage == "twice-weekly":
        frequency, days = "twice-weekly", rules.days("anc_uk.episode.twice_weekly_days")
        cited = ("anc_uk.episode.twice_weekly_days",)
    else:
        frequency, days = uk_phase(weeks, rules)
    return Schedule(frequency, days, last, last + timedelta(days=days), stage, weeks, cited)


def fbc_text(point: FbcPoint) -> str:
    """``WBC 3.2, neutrophils 1.8 x10^9/L on 2026-02-28``, naming a missing part."""
    wbc = _g(point.wbc.value) if point.wbc is not None else "not measured"
    neut = _g(point.neutrophils.value) if point.neutrophils is not None else "not measured"
    return f"WBC {wbc}, neutrophils {neut} x10^9/L on {point.day}"


def _g(per_ul: float) -> str:
    return f"{round(per_ul / 1000, 3):g}"


def _missing_part(point: FbcPoint) -> str:
    if point.wbc is None:
        return " No WBC was measured with these neutrophils: the colour rests on neutrophils alone."
    if point.neutrophils is None:
        return (
            " No neutrophil count (or differential) was measured with this WBC: the colour "
            "rests on the WBC alone; order a full blood count with differential."
        )
    return ""


def evaluate_fbc_uk(
    record: PatientRecord, history: ClozapineHistory, ctx: RuleContext
) -> tuple[list[Finding], AncSummary]:
    """UK traffic lights and the shared schedule facts (rulebook §3)."""
    ben, ben_refs = is_ben(record)
    t = thresholds(ben, ctx.rules)
    points = fbc_series(record, ctx.as_of)
    threshold_set: Literal["general", "ben"] = "ben" if t.ben else "general"
    course = history.current
    if course is None:
        last = points[-1] if points else None
        return [], AncSummary(
            threshold_set, colour(last, t) if last else "unknown", _latest(points)
        )
    earliest = course.start - timedelta(days=ctx.rules.days("anc.baseline.recency_days"))
    baseline = [p for p in points if earliest <= p.day <= course.start]
    monitored = baseline + [p for p in points if p.day > course.start]
    starting = len(monitored) == len(baseline)
    findings = _baseline_findings(baseline, course, t, ctx) if starting else []
    weekly_weeks = ctx.rules.num("anc_uk.phase.every_2_weeks_from_weeks")
    restart = restart_finding(history, weekly_weeks, "FBC", ctx.rules, ctx.as_of, ACTIONS)
    findings.extend([restart] if restart else [])
    schedule = run_uk_schedule(monitored, course.start, t, ctx.rules)
    if schedule is None:
        frequency, _ = uk_phase(weeks_since(course.start, ctx.as_of), ctx.rules)
        context = missing_context(record, "FBC", fbc_text(points[-1]) if points else None)
        return unmonitored(
            findings, "FBC", context, course, frequency, t.ben, ctx.rules, ctx.as_of, ACTIONS
        )
    latest = monitored[-1]
    if not any(f.code.startswith("anc-baseline") for f in findings):
        findings.append(_colour_finding(latest, schedule, course, t, ben_refs, ctx))
    due = due_finding(
        "FBC", fbc_text(latest), schedule.frequency, schedule.next_due, latest.evidence,
        schedule.citations, ctx.rules, ctx.as_of, ACTIONS,
    )  # fmt: skip
    findings.extend([due] if due else [])
    return findings, AncSummary(
        threshold_set=threshold_set,
        category=colour(latest, t),
        latest=_latest(monitored),
        frequency=schedule.frequency,
        next_due=schedule.next_due,
        overdue=ctx.as_of > schedule.next_due,
    )


def _latest(points: list[FbcPoint]) -> AncLatest | None:
    """The latest neutrophil count, which is what the summary's ANC shows."""
    for point in reversed(points):
        n = point.neutrophils
        if n is not None:
            return AncLatest(n.value, "/uL", n.day, n.ref)
    return None


def _baseline_findings(
    baseline: list[FbcPoint], course: Course, t: UkThresholds, ctx: RuleContext
) -> list[Finding]:
    """UK start needs WBC ≥ 3.5 and neutrophils ≥ 2.0 x10^9/L (U1), each judged on its
    latest value in the baseline window; a part never measured there is missing."""
    rules = ctx.rules
    wbcs = [p.wbc for p in baseline if p.wbc is not None]
    neuts = [p.neutrophils for p in baseline if p.neutrophils is not None]
    missing = [name for name, found in (("WBC", wbcs), ("neutrophils", neuts)) if not found]
    proposed_only = all(m.proposed for m in course.exposures)
    young = (ctx.as_of - course.start).days < rules.days("anc_uk.phase.weekly_days")
    evidence = tuple(r for p in baseline for r in p.evidence)
    if missing and (baseline or proposed_only or young):
        window = rules.days("anc.baseline.recency_days")
        reason = f"no {' or '.join(missing)} in the {window} days before it"
        paths = ("anc_uk.baseline.wbc_min", "anc_uk.baseline.neut_min")
        return [baseline_missing_finding("FBC", course, reason, evidence, paths, rules, ACTIONS)]
    if missing:
        return []
    wbc_min = t.wbc_green_min if t.ben else rules.num("anc_uk.baseline.wbc_min")
    neut_min = t.neut_green_min if t.ben else rules.num("anc_uk.baseline.neut_min")
    low = [
        f"{name} {_g(r.value)} < {_g(minimum)}"
        for name, r, minimum in (("WBC", wbcs[-1], wbc_min), ("neutrophils", neuts[-1], neut_min))
        if r.value < minimum
    ]
    if not low:
        return []
    return [
        Finding(
            code="anc-baseline-low",
            severity="critical",
            summary=f"Baseline FBC below the UK start thresholds ({'; '.join(low)} x10^9/L): "
            "do not start clozapine",
            detail=f"Baseline FBC before the clozapine start on {course.start}: "
            f"{'; '.join(low)} x10^9/L. Starting requires WBC >= {_g(wbc_min)} and neutrophils "
            f">= {_g(neut_min)} x10^9/L. Repeat the FBC; discuss with haematology.{t.note}",
            source=rules.cite("anc_uk.baseline.wbc_min", "anc_uk.baseline.neut_min", *t.paths),
            evidence=tuple(dict.fromkeys(evidence + course.evidence)),
            next_due=course.start,
            actions=ACTIONS,
        )
    ]


def _colour_finding(
    latest: FbcPoint,
    schedule: Schedule,
    course: Course,
    t: UkThresholds,
    ben_refs: tuple[str, ...],
    ctx: RuleContext,
) -> Finding:
    c = colour(latest, t)
    code, severity, action = COLOUR_TEXT[c]
    table = "local BEN thresholds" if t.ben else "general thresholds"
    weeks = max(schedule.weeks_at_last, 0.0)
    detail = (
        f"Latest FBC: {fbc_text(latest)} ({', '.join(latest.evidence)}), read against the "
        f"{table}: {c}. Action: {action}. Monitoring: {schedule.frequency}, next FBC by "
        f"{schedule.next_due}. Week {weeks:.1f} of the course that started on {course.start}."
        f"{_missing_part(latest)}{t.note}"
    )
    summary = f"FBC {c} ({fbc_text(latest)}): {action}"
    if c == "green":
        summary = (
            f"FBC green ({fbc_text(latest)}): next by {schedule.next_due} ({schedule.frequency})"
        )
    return Finding(
        code=code,
        severity=severity,
        summary=summary,
        detail=detail,
        source=ctx.rules.cite(*t.paths, *schedule.citations),
        evidence=tuple(dict.fromkeys(latest.evidence + (ben_refs if t.note or t.ben else ()))),
        next_due=schedule.next_due,
        actions=() if c == "green" else ACTIONS,
    )
