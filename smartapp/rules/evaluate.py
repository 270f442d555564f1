"""The evaluation: every rule run over one patient record (design.md, Contract 1).

``evaluate`` is the single entry point of the clinical core. It is pure: the caller passes the
evaluation date, the profile and the rule data; nothing here reads the clock or the network.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from smartapp.domain import PatientRecord
from smartapp.rules.anc import evaluate_anc
from smartapp.rules.constipation import evaluate_constipation
from smartapp.rules.courses import ClozapineHistory, clozapine_history, current_daily_dose
from smartapp.rules.data_quality import evaluate_data_quality
from smartapp.rules.dosing import evaluate_dosing
from smartapp.rules.findings import (
    FINDING_CODES,
    ClozapineSummary,
    Evaluation,
    Finding,
)
from smartapp.rules.interactions import evaluate_interactions
from smartapp.rules.levels import evaluate_levels
from smartapp.rules.metabolic import evaluate_metabolic
from smartapp.rules.myocarditis import evaluate_myocarditis
from smartapp.rules.ruleset import PROFILES, Profile, RuleContext, Ruleset, default_ruleset
from smartapp.rules.smoking import evaluate_smoking
from smartapp.rules.suicidality import evaluate_suicidality
from smartapp.rules.trs import evaluate_trs

Rule = Callable[[PatientRecord, ClozapineHistory, RuleContext], list[Finding]]

#: Rules that return findings only; ANC and TRS also return their summaries.
FINDING_RULES: tuple[Rule, ...] = (
    evaluate_myocarditis,
    evaluate_levels,
    evaluate_smoking,
    evaluate_interactions,
    evaluate_dosing,
    evaluate_constipation,
    evaluate_metabolic,
    evaluate_suicidality,
    evaluate_data_quality,
)

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
CPZ_METHODS = ("gardner-2010", "ddd-leucht-2016")


def _ordered(findings: list[Finding]) -> tuple[Finding, ...]:
    """Most severe first, then in vocabulary order: a stable order for cards and golden files."""
    return tuple(
        sorted(findings, key=lambda f: (SEVERITY_RANK[f.severity], FINDING_CODES.index(f.code)))
    )


def clozapine_summary(history: ClozapineHistory, as_of: date) -> ClozapineSummary:
    course = history.current
    if course is None:
        return ClozapineSummary(status="stopped" if history.courses else "never")
    dose, _ = current_daily_dose(history, as_of)
    weeks = round(max(0.0, course.weeks_on(as_of)), 1)
    return ClozapineSummary(
        status="active",
        course_start=course.start,
        weeks_on_treatment=weeks,
        daily_dose_mg=dose,
        evidence=course.evidence,
    )


def evaluate(
    record: PatientRecord,
    as_of: date,
    profile: Profile = "us-fda",
    rules: Ruleset | None = None,
    cpz_method: str = "gardner-2010",
) -> Evaluation:
    """Run every rule of the rulebook over ``record`` as of ``as_of``."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}")
    if cpz_method not in CPZ_METHODS:
        raise ValueError(f"unknown chlorpromazine-equivalence method {cpz_method!r}")
    ctx = RuleContext(
        as_of=as_of, profile=profile, rules=rules or default_ruleset(), cpz_method=cpz_method
    )
    history = clozapine_history(record, ctx)
    anc_findings, anc_summary = evaluate_anc(record, history, ctx)
    trs_findings, trs_summary = evaluate_trs(record, history, ctx)
    findings = [*anc_findings, *trs_findings]
    for rule in FINDING_RULES:
        findings.extend(rule(record, history, ctx))
    return Evaluation(
        as_of=as_of,
        profile=profile,
        ruleset_version=ctx.rules.version,
        patient=record.patient,
        findings=_ordered(findings),
        clozapine=clozapine_summary(history, as_of),
        anc=anc_summary,
        trs=trs_summary,
        data_issues=tuple((i.resource, i.problem) for i in record.data_issues),
    )
