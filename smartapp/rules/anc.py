"""ANC monitoring: the entry point for both profiles and the US findings (rulebook §2).

``evaluate_anc`` dispatches on the profile: ``us-fda`` gives the ``anc-*`` category codes of
the FDA label tables (L1 Tables 1–2), ``uk-mhra`` the ``fbc-*`` traffic lights (``fbc_uk``).
The schedule facts (missing, overdue, due soon, baseline, restart) are shared.

Which counts are monitored: those of the current course (after its start day) plus its
baseline, the counts in the recency window before the start (start day included). A count
from before that window, an earlier course's for instance, does not count for this course.
Only a patient with a current course (active, or proposed today) gets monitoring findings.
"""

from __future__ import annotations

from datetime import date, timedelta

from smartapp.domain import LabResult, PatientRecord
from smartapp.rules.anc_schedule import (
    Schedule,
    baseline_missing_finding,
    count_text,
    due_finding,
    restart_finding,
    run_schedule,
    unmonitored,
    us_phase,
    weeks_since,
)
from smartapp.rules.anc_values import (
    AncCategory,
    anc_series,
    baseline_window,
    category,
    category_citation,
    evidence_of,
    is_ben,
    mean_value,
    missing_context,
    normal_min,
)
from smartapp.rules.courses import ClozapineHistory, Course
from smartapp.rules.fbc_uk import evaluate_fbc_uk
from smartapp.rules.findings import AncLatest, AncSummary, Finding, LabAction, Severity
from smartapp.rules.ruleset import RuleContext

ACTIONS: tuple[LabAction, ...] = ("anc",)

#: code, severity, label and treatment per category (L1 Tables 1–2, L2 Tables 6–7).
CATEGORY_TEXT: dict[AncCategory, tuple[str, Severity, str, str]] = {
    "normal": ("anc-normal", "info", "normal", "continue clozapine"),
    "mild": ("anc-mild", "warning", "mild neutropenia", "continue clozapine"),
    "moderate": (
        "anc-moderate",
        "critical",
        "moderate neutropenia",
        "interrupt clozapine, haematology consult",
    ),
    "severe": (
        "anc-severe",
        "critical",
        "severe neutropenia",
        "interrupt clozapine, haematology consult, no rechallenge unless benefit outweighs risk",
    ),
    "ben-neutropenia": (
        "anc-ben-neutropenia",
        "warning",
        "BEN neutropenia",
        "continue clozapine, haematology consult",
    ),
    "ben-severe": (
        "anc-ben-severe",
        "critical",
        "BEN severe neutropenia",
        "interrupt clozapine, haematology consult, no rechallenge unless benefit outweighs risk",
    ),
}
SHORT_TREATMENT = {"severe": "interrupt clozapine", "ben-severe": "interrupt clozapine"}


def evaluate_anc(
    record: PatientRecord, history: ClozapineHistory, ctx: RuleContext
) -> tuple[list[Finding], AncSummary]:
    """ANC findings and summary for the profile of ``ctx`` (rulebook §2 or §3)."""
    if ctx.profile == "uk-mhra":
        return evaluate_fbc_uk(record, history, ctx)
    return evaluate_anc_us(record, history, ctx)


def anc_text(result: LabResult) -> str:
    return f"{count_text(result.value)} on {result.day}"


def describe(result: LabResult) -> str:
    """A count with where it came from, for finding details."""
    how = f"derived from {result.original}" if result.derived_from else "reported"
    return f"{anc_text(result)} ({how}; {', '.join(evidence_of(result))})"


def latest_of(result: LabResult) -> AncLatest:
    return AncLatest(result.value, "/uL", result.day, result.ref)


def evaluate_anc_us(
    record: PatientRecord, history: ClozapineHistory, ctx: RuleContext
) -> tuple[list[Finding], AncSummary]:
    ben, ben_refs = is_ben(record)
    series = anc_series(record, ctx.as_of)
    course = history.current
    if course is None:
        latest = series[-1] if series else None
        return [], AncSummary(
            threshold_set="ben" if ben else "general",
            category=category(latest.value, ben, ctx.rules) if latest else "unknown",
            latest=latest_of(latest) if latest else None,
        )
    baseline = baseline_window(series, course.start, ctx.rules)
    monitored = baseline + [r for r in series if r.day > course.start]
    starting = len(monitored) == len(baseline)
    findings = _baseline_findings(series, baseline, course, ben, ben_refs, ctx) if starting else []
    restart = restart_finding(
        history, ctx.rules.num("anc.phase.every_2_weeks_from_weeks"), "ANC", ctx.rules,
        ctx.as_of, ACTIONS,
    )  # fmt: skip
    findings.extend([restart] if restart else [])
    schedule = run_schedule(monitored, course.start, ben, mean_value(baseline), ctx.rules)
    if schedule is None:
        frequency, _ = us_phase(weeks_since(course.start, ctx.as_of), ctx.rules)
        context = missing_context(record, "ANC", describe(series[-1]) if series else None)
        return unmonitored(
            findings, "ANC", context, course, frequency, ben, ctx.rules, ctx.as_of, ACTIONS
        )
    latest = monitored[-1]
    next_due = schedule.next_due
    repeat = None if starting else _repeat_needed(monitored, ben, ctx)
    if repeat is not None and repeat.next_due is not None:
        next_due = min(next_due, repeat.next_due)
        findings.append(repeat)
    if not any(f.code.startswith("anc-baseline") for f in findings):
        findings.append(_category_finding(latest, schedule, next_due, course, ben, ben_refs, ctx))
    due = due_finding(
        "ANC", anc_text(latest), schedule.frequency, next_due, evidence_of(latest),
        schedule.citations, ctx.rules, ctx.as_of, ACTIONS,
    )  # fmt: skip
    findings.extend([due] if due else [])
    return findings, AncSummary(
        threshold_set="ben" if ben else "general",
        category=category(latest.value, ben, ctx.rules),
        latest=latest_of(latest),
        frequency=schedule.frequency,
        next_due=next_due,
        overdue=ctx.as_of > next_due,
    )


def _baseline_findings(
    series: list[LabResult],
    baseline: list[LabResult],
    course: Course,
    ben: bool,
    ben_refs: tuple[str, ...],
    ctx: RuleContext,
) -> list[Finding]:
    """Baseline of a course with no count yet after its start (rulebook §2.1, L1): one
    count in the window (two for BEN), the latest of them at or above the normal minimum."""
    rules = ctx.rules
    new_course_days = rules.days("anc.phase.weekly_days")
    proposed_only = all(m.proposed for m in course.exposures)
    findings: list[Finding] = []
    if not baseline:
        if proposed_only or (ctx.as_of - course.start).days < new_course_days:
            window = rules.days("anc.baseline.recency_days")
            reason = f"no ANC in the {window} days before it"
            findings.append(
                baseline_missing_finding(
                    "ANC", course, reason, (), ("anc.baseline.required",), rules, ACTIONS
                )
            )
        return findings
    if ben:
        ben_baseline = baseline_window(series, course.start, rules, "anc.baseline.ben_window_days")
        needed = rules.days("anc.ben.baseline_count_min")
        if len(ben_baseline) < needed:
            window = rules.days("anc.baseline.ben_window_days")
            reason = (
                f"BEN needs {needed} baseline ANCs within {window} days, found {len(ben_baseline)}"
            )
            refs = tuple(r for b in ben_baseline for r in evidence_of(b)) + ben_refs
            findings.append(
                baseline_missing_finding(
                    "ANC", course, reason, refs, ("anc.ben.baseline_count_min",), rules, ACTIONS
                )
            )
    latest = baseline[-1]
    minimum = normal_min(ben, rules)
    if latest.value < minimum:
        findings.append(_baseline_low(latest, minimum, course, ben, ben_refs, ctx))
    return findings


def _baseline_low(
    latest: LabResult,
    minimum: float,
    course: Course,
    ben: bool,
    ben_refs: tuple[str, ...],
    ctx: RuleContext,
) -> Finding:
    table = "BEN" if ben else "general"
    path = "anc.ben.normal_min" if ben else "anc.general.normal_min"
    return Finding(
        code="anc-baseline-low",
        severity="critical",
        summary=f"Baseline ANC {anc_text(latest)} is below {count_text(minimum)}: starting "
        "clozapine is not recommended",
        detail=f"Baseline ANC {describe(latest)} before the clozapine start on {course.start} "
        f"is below the {table} minimum of {count_text(minimum)} for starting. Starting is not "
        "recommended; repeat the ANC and consider a haematology opinion.",
        source=ctx.rules.cite(path),
        evidence=tuple(dict.fromkeys(evidence_of(latest) + ben_refs + course.evidence)),
        next_due=course.start,
        actions=ACTIONS,
    )


def _repeat_needed(monitored: list[LabResult], ben: bool, ctx: RuleContext) -> Finding | None:
    """``anc-repeat-needed``: the first count below normal after a normal one (or with none
    before it in the course) is confirmed by a repeat within 24 hours (L1 Tables 1–2)."""
    minimum = normal_min(ben, ctx.rules)
    latest = monitored[-1]
    previous = monitored[-2] if len(monitored) > 1 else None
    if latest.value >= minimum or (previous is not None and previous.value < minimum):
        return None
    due = latest.day + _days(ctx, "anc.repeat.confirm_within_days")
    return Finding(
        code="anc-repeat-needed",
        severity="warning",
        summary=f"ANC {anc_text(latest)} is the first below {count_text(minimum)}: confirm "
        f"with a repeat ANC by {due}",
        detail=f"ANC {describe(latest)} is the first count below {count_text(minimum)} "
        + (f"after {anc_text(previous)}" if previous else "in this course")
        + f". Confirm it with a repeat ANC within 24 hours (by {due}) before acting on it.",
        source=ctx.rules.cite("anc.repeat.confirm_within_days", *category_citation(ben)),
        evidence=evidence_of(latest),
        next_due=due,
        actions=ACTIONS,
    )


def _days(ctx: RuleContext, path: str) -> timedelta:
    return timedelta(days=ctx.rules.days(path))


def _category_finding(
    latest: LabResult,
    schedule: Schedule,
    next_due: date,
    course: Course,
    ben: bool,
    ben_refs: tuple[str, ...],
    ctx: RuleContext,
) -> Finding:
    """The category of the latest count (L1 Table 1 / Table 2) and what it asks for."""
    cat = category(latest.value, ben, ctx.rules)
    code, severity, label, treatment = CATEGORY_TEXT[cat]
    table = "BEN table (L1 Table 2)" if ben else "general table (L1 Table 1)"
    weeks = max(schedule.weeks_at_last, 0.0)
    summary = (
        f"ANC {anc_text(latest)}: {label} - {treatment}; next ANC by {next_due} "
        f"({schedule.frequency})"
    )
    if len(summary) >= 140:
        summary = (
            f"ANC {anc_text(latest)}: {label} - {SHORT_TREATMENT.get(cat, treatment)}; "
            f"ANC {schedule.frequency}"
        )
    detail = (
        f"Latest ANC {describe(latest)}, read against the {table}: {label}. Action: "
        f"{treatment}. Monitoring: {schedule.frequency} (stage {schedule.stage}), next ANC by "
        f"{next_due}. Week {weeks:.1f} of the clozapine course that started on {course.start}."
    )
    if ben:
        detail += f" BEN recorded in {', '.join(ben_refs)}."
    return Finding(
        code=code,
        severity=severity,
        summary=summary,
        detail=detail,
        source=ctx.rules.cite(*category_citation(ben), *schedule.citations),
        evidence=tuple(dict.fromkeys(evidence_of(latest) + ben_refs)),
        next_due=next_due,
        actions=() if cat == "normal" else ACTIONS,
    )
