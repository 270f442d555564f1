"""Myocarditis in the first weeks of a clozapine course (rulebook §4) [M1, M2].

Two rules share the troponin (I or T, including high-sensitivity assays) and CRP results of the
current course:

- ``myocarditis-monitoring-due``: troponin *and* CRP at baseline and on days 7, 14, 21 and 28,
  each within a window of +/- ``myocarditis.schedule.window_days`` (policy). A missed draw is a
  warning unless a later troponin + CRP pair caught it up; the next draw is announced (info) a
  few days ahead and while its window is open. Shown until the last window closes or the usual
  risk window ends (day 33), whichever is later; a drafted order that starts a course needs its
  baseline, drawn before the first dose.
- ``myocarditis-watch`` / ``myocarditis-stop``: the latest troponin against the assay's upper
  limit of normal (ULN) and the latest CRP against 50 / 100 mg/L. After the monitoring period
  only results from the last ``myocarditis.result_max_age_days`` (policy) are graded, and the
  detail says that a late result has other likely causes.

A troponin whose ULN is neither reported nor known for its assay is never graded as normal: it
is reported as a watch finding that says the ULN is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from smartapp.domain import LabResult, PatientRecord
from smartapp.rules.courses import ClozapineHistory, Course
from smartapp.rules.findings import Finding
from smartapp.rules.ruleset import RuleContext, RulesetError

TROPONINS = ("troponin-i", "troponin-t")
CRP = "crp"
UNITS = {"troponin-i": "ng/L", "troponin-t": "ng/L", CRP: "mg/L"}
NAMES = {"troponin-i": "troponin I", "troponin-t": "troponin T", CRP: "CRP"}
DEFAULT_ULN = "myocarditis.troponin.default_uln_ng_l"
NONE, WATCH, STOP = 0, 1, 2
SUMMARY_MAX = 139


@dataclass(frozen=True)
class Draw:
    """One scheduled troponin + CRP draw of the course (day 0 is the baseline)."""

    day: int
    target: date
    opens: date
    closes: date
    evidence: tuple[str, ...]
    done: bool


@dataclass(frozen=True)
class Grade:
    level: int
    text: str
    short: str
    lab: LabResult
    paths: tuple[str, ...]


def evaluate_myocarditis(
    record: PatientRecord, history: ClozapineHistory, ctx: RuleContext
) -> list[Finding]:
    """Rulebook §4: the monitoring schedule and the stop / watch thresholds."""
    course = history.current
    if course is None:
        return []
    labs = course_labs(record, course, ctx)
    draws = schedule(course, labs, ctx)
    findings: list[Finding] = []
    in_period = bool(draws) and ctx.as_of <= _horizon(course, draws, ctx)
    if in_period:
        due = _monitoring_due(course, draws, labs, ctx)
        if due is not None:
            findings.append(due)
    threshold = _threshold_finding(course, _gradable(labs, in_period, ctx), ctx)
    if threshold is not None:
        findings.append(threshold)
    return findings


def _gradable(labs: list[LabResult], in_period: bool, ctx: RuleContext) -> list[LabResult]:
    """During the monitoring period every result counts; after it, only recent ones, so that
    one old abnormal result does not raise a card for the rest of the course (policy)."""
    if in_period:
        return labs
    first = ctx.as_of - timedelta(days=ctx.rules.days("myocarditis.result_max_age_days"))
    return [lab for lab in labs if lab.day >= first]


def course_labs(record: PatientRecord, course: Course, ctx: RuleContext) -> list[LabResult]:
    """Troponin and CRP results from the baseline look-back before the course up to as_of."""
    first = course.start - timedelta(
        days=ctx.rules.days("myocarditis.schedule.baseline_lookback_days")
    )
    return [
        lab
        for lab in record.labs_of(*TROPONINS, CRP)
        if first <= lab.day <= ctx.as_of and lab.unit == UNITS[lab.concept]
    ]


# --- schedule ------------------------------------------------------------------------------


def _draw_days(ctx: RuleContext) -> list[int]:
    value: Any = ctx.rules.value("myocarditis.schedule.draw_days")
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        raise RulesetError("myocarditis.schedule.draw_days must be a list of whole days")
    return sorted(value)


def schedule(course: Course, labs: list[LabResult], ctx: RuleContext) -> list[Draw]:
    """The scheduled draws of ``course``; a draw is done when both a troponin and a CRP fall
    inside its window (rulebook §4)."""
    window = timedelta(days=ctx.rules.days("myocarditis.schedule.window_days"))
    lookback = timedelta(days=ctx.rules.days("myocarditis.schedule.baseline_lookback_days"))
    draws = []
    for day in _draw_days(ctx):
        target = course.start + timedelta(days=day)
        opens = course.start - lookback if day == 0 else target - window
        closes = target + window
        inside = [lab for lab in labs if opens <= lab.day <= closes]
        done = _pair(inside)
        draws.append(Draw(day, target, opens, closes, tuple(lab.ref for lab in inside), done))
    return draws


def _pair(labs: list[LabResult]) -> bool:
    return any(lab.concept in TROPONINS for lab in labs) and any(lab.concept == CRP for lab in labs)


def _label(draw: Draw) -> str:
    return "baseline" if draw.day == 0 else f"day-{draw.day}"


def _monitoring_due(
    course: Course, draws: list[Draw], labs: list[LabResult], ctx: RuleContext
) -> Finding | None:
    missed = [
        d
        for d in draws
        if not d.done
        and (d.day == 0 or d.closes < ctx.as_of)
        and not _pair([lab for lab in labs if lab.day > d.closes])
    ]
    soon = ctx.rules.days("myocarditis.schedule.due_soon_days")
    pending = [
        d
        for d in draws
        if not d.done
        and d.day > 0
        and d.closes >= ctx.as_of
        and (d.target - ctx.as_of).days <= soon
    ]
    if missed:
        next_due = max(ctx.as_of, missed[0].opens)
        return _due_finding(course, draws, missed, True, next_due, labs, ctx)
    if pending:
        first = pending[0]
        return _due_finding(course, draws, [first], False, max(first.target, ctx.as_of), labs, ctx)
    return None


def _horizon(course: Course, draws: list[Draw], ctx: RuleContext) -> date:
    """Last day the schedule is shown: the last draw's window, or the end of the usual risk
    window if later, so that a missed day-28 draw is still reported as missed."""
    risk_end = course.start + timedelta(
        days=ctx.rules.days("myocarditis.risk_window.onset_last_day")
    )
    return max(draws[-1].closes, risk_end)


def _due_finding(
    course: Course,
    draws: list[Draw],
    due: list[Draw],
    overdue: bool,
    next_due: date,
    labs: list[LabResult],
    ctx: RuleContext,
) -> Finding:
    names = ", ".join(_label(d) for d in due)
    if overdue:
        baseline = due[0].day == 0 and course.start >= ctx.as_of
        when = "before the first dose" if baseline else "now"
        summary = f"Troponin + CRP {names} missing (course start {course.start}): draw {when}"
    else:
        d = due[0]
        summary = (
            f"Troponin + CRP {names} due {d.target} (window {d.opens} to {d.closes}), "
            f"course start {course.start}"
        )
    lines = [
        f"- {_label(d)} ({d.target}, window {d.opens} to {d.closes}): {_status(d, ctx)}"
        for d in draws
    ]
    days = [str(d.day) for d in draws if d.day > 0]
    plan = ", ".join(days[:-1]) + f" and {days[-1]}" if len(days) > 1 else "".join(days)
    detail = (
        "Myocarditis monitoring in the first weeks of a clozapine course: troponin (I or T) "
        f"and CRP at baseline and on days {plan}. A draw counts only when both tests fall "
        "inside its window.\n" + "\n".join(lines) + "\n" + _risk_text(course, ctx)
    )
    return Finding(
        code="myocarditis-monitoring-due",
        severity="warning" if overdue else "info",
        summary=_short(summary),
        detail=detail,
        source=ctx.rules.cite("myocarditis.schedule.draw_days", "myocarditis.schedule.window_days"),
        evidence=tuple(dict.fromkeys([*course.evidence, *(lab.ref for lab in labs)])),
        next_due=next_due,
        actions=("troponin-crp",),
    )


def _status(draw: Draw, ctx: RuleContext) -> str:
    if draw.done:
        return "done (" + ", ".join(draw.evidence) + ")"
    if draw.closes < ctx.as_of:
        return "missed"
    return "due" if draw.opens <= ctx.as_of else "upcoming"


def _risk_text(course: Course, ctx: RuleContext) -> str:
    r = ctx.rules
    day = (ctx.as_of - course.start).days
    today = f"Today is course day {day}." if day >= 0 else f"The course starts in {-day} days."
    return (
        f"{today} Myocarditis usually starts on days "
        f"{r.days('myocarditis.risk_window.onset_first_day')}-"
        f"{r.days('myocarditis.risk_window.onset_last_day')}, most often days "
        f"{r.days('myocarditis.risk_window.peak_first_day')}-"
        f"{r.days('myocarditis.risk_window.peak_last_day')}: ask about chest pain, "
        "breathlessness, fever and tachycardia."
    )


# --- thresholds ----------------------------------------------------------------------------


def _late_note(course: Course, abnormal: list[Grade], ctx: RuleContext) -> str:
    last_day = ctx.rules.days("myocarditis.risk_window.onset_last_day")
    if all((g.lab.day - course.start).days <= last_day for g in abnormal):
        return ""
    return (
        f" A result after day {last_day} is outside the usual risk window: consider other "
        "causes too (an infection raises CRP, and inflammation raises clozapine levels)."
    )


def _exact(value: float) -> float:
    """Strip float noise from unit conversion so that boundaries compare as written."""
    return round(value, 9)


def _num(value: float) -> str:
    return f"{round(value, 2):g}"


def _short(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


def troponin_uln(lab: LabResult, ctx: RuleContext) -> tuple[float | None, str | None]:
    """The ULN for ``lab``: its own reference range, else the assay default (policy) keyed by
    LOINC code. Returns (ULN in ng/L, rule-data path of the default or None)."""
    if lab.uln is not None and lab.uln > 0:
        return lab.uln, None
    path = f"{DEFAULT_ULN}.{lab.code}"
    try:
        value = ctx.rules.value(path) if lab.code else None
    except RulesetError:
        return None, None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value), path
    return None, None


def grade_troponin(lab: LabResult, ctx: RuleContext) -> Grade:
    """Troponin > 2 x ULN is stop, > ULN is watch (M1); an unknown ULN is watch, said so."""
    multiple = ctx.rules.num("myocarditis.troponin.stop_uln_multiple")
    name = f"{NAMES[lab.concept]} {_num(lab.value)} ng/L"
    uln, default = troponin_uln(lab, ctx)
    paths = ("myocarditis.troponin.stop_uln_multiple",) + ((default,) if default else ())
    if uln is None:
        assay = lab.code or "with no LOINC code"
        text = (
            f"{name} on {lab.day} ({lab.ref}): ULN unknown (no reference range, no default for "
            f"assay {assay}), so it cannot be graded: compare it with the laboratory's range"
        )
        return Grade(WATCH, text, f"{name}, ULN unknown ({lab.day})", lab, paths)
    origin = "default for the assay, policy" if default else "reported reference range"
    value = _exact(lab.value)
    if value > _exact(multiple * uln):
        level, rel = STOP, f"> {_num(multiple)}x ULN {_num(uln)}"
    elif value > _exact(uln):
        level, rel = WATCH, f"> ULN {_num(uln)}"
    else:
        level, rel = NONE, f"<= ULN {_num(uln)}"
    text = f"{name} on {lab.day} ({lab.ref}) {rel} ({origin})"
    return Grade(level, text, f"{name} {rel} ({lab.day})", lab, paths)


def grade_crp(lab: LabResult, ctx: RuleContext) -> Grade:
    """CRP > 100 mg/L is stop; 50-100 mg/L inclusive is watch (M1)."""
    stop = ctx.rules.num("myocarditis.crp.stop_above_mg_l")
    watch = ctx.rules.num("myocarditis.crp.watch_min_mg_l")
    value = _exact(lab.value)
    if value > stop:
        level, rel = STOP, f"> {_num(stop)}"
    elif value >= watch:
        level, rel = WATCH, f"{_num(watch)}-{_num(stop)}"
    else:
        level, rel = NONE, f"< {_num(watch)}"
    paths = ("myocarditis.crp.stop_above_mg_l", "myocarditis.crp.watch_min_mg_l")
    name = f"CRP {_num(lab.value)} mg/L"
    text = f"{name} on {lab.day} ({lab.ref}): {rel} mg/L"
    return Grade(level, text, f"{name} ({lab.day})", lab, paths)


def _latest(labs: list[LabResult]) -> list[LabResult]:
    """All results taken at the latest time (troponin I and T may share a specimen)."""
    if not labs:
        return []
    last = max(lab.when for lab in labs)
    return [lab for lab in labs if lab.when == last]


def latest_grades(labs: list[LabResult], ctx: RuleContext) -> list[Grade]:
    troponins = _latest([lab for lab in labs if lab.concept in TROPONINS])
    crps = _latest([lab for lab in labs if lab.concept == CRP])
    return [grade_troponin(lab, ctx) for lab in troponins] + [grade_crp(lab, ctx) for lab in crps]


def _threshold_finding(course: Course, labs: list[LabResult], ctx: RuleContext) -> Finding | None:
    grades = latest_grades(labs, ctx)
    abnormal = [g for g in grades if g.level > NONE]
    if not abnormal:
        return None
    stop = any(g.level == STOP for g in abnormal)
    repeat = ctx.rules.days("myocarditis.repeat_every_days")
    last_day = max(g.lab.day for g in abnormal)
    head = "Myocarditis stop criteria met" if stop else "Myocarditis watch"
    parts = [g.short for g in abnormal]
    if stop:
        action = (
            "Stop clozapine and arrange urgent medical review (ECG, cardiology); repeat "
            "troponin and CRP daily until they return to normal."
        )
    else:
        action = (
            "Repeat troponin and CRP daily until they return to normal; consider pausing "
            "the titration; stop clozapine if troponin rises above 2 x ULN or CRP above "
            "100 mg/L."
        )
    late = _late_note(course, abnormal, ctx)
    detail = (
        "\n".join(f"- {g.text}" for g in grades) + f"\n{action}\n{_risk_text(course, ctx)}{late}"
    )
    paths = [p for g in grades for p in g.paths] + ["myocarditis.repeat_every_days"]
    return Finding(
        code="myocarditis-stop" if stop else "myocarditis-watch",
        severity="critical" if stop else "warning",
        summary=_short(f"{head}: " + "; ".join(parts)),
        detail=detail,
        source=ctx.rules.cite(*paths),
        evidence=tuple(dict.fromkeys(g.lab.ref for g in grades)),
        next_due=last_day + timedelta(days=repeat),
        actions=("troponin-crp",),
    )
