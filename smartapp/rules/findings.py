"""Findings and the evaluation they make up (design.md, Contract 1).

A ``Finding`` is one statement of the rules about one patient: a stable ``code`` from the
finding vocabulary, a severity that doubles as the CDS Hooks card indicator, the evidence
(resource references) it rests on and the source (rulebook tag and citation) it implements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")

#: Lab orders a finding may suggest; the CDS Hooks layer turns them into ServiceRequests.
LabAction = Literal["anc", "cbc-diff", "troponin-crp", "clozapine-level", "metabolic"]

FINDING_CODES: tuple[str, ...] = (
    "trs-met", "trs-possible", "trs-not-met", "clozapine-suicidality-indication",
    "anc-normal", "anc-mild", "anc-moderate", "anc-severe", "anc-ben-neutropenia",
    "anc-ben-severe", "anc-repeat-needed", "anc-due-soon", "anc-overdue", "anc-missing",
    "anc-baseline-missing", "anc-baseline-low", "anc-schedule-restart",
    "fbc-green", "fbc-amber", "fbc-red",
    "myocarditis-monitoring-due", "myocarditis-watch", "myocarditis-stop",
    "level-low", "level-therapeutic", "level-high", "level-alert", "ratio-low", "ratio-high",
    "smoking-cessation", "smoking-started",
    "interaction-cyp1a2-inhibitor", "interaction-inducer", "interaction-agranulocytosis",
    "interaction-anticholinergic", "interaction-valproate-titration",
    "titration-start-dose", "retitration-needed", "dose-above-max", "seizure-risk",
    "constipation-prophylaxis", "metabolic-monitoring-due",
    "data-unavailable", "data-unmapped",
)  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One rule outcome. ``source`` is the human-readable citation (e.g.
    ``"L1 US clozapine PI, Table 1"``); ``actions`` are lab orders worth suggesting."""

    code: str
    severity: Severity
    summary: str
    detail: str
    source: str
    evidence: tuple[str, ...] = ()
    next_due: date | None = None
    actions: tuple[LabAction, ...] = ()

    def __post_init__(self) -> None:
        if self.code not in FINDING_CODES:
            raise ValueError(f"unknown finding code {self.code!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")


@dataclass(frozen=True)
class ClozapineSummary:
    status: Literal["active", "stopped", "never"]
    course_start: date | None = None
    weeks_on_treatment: float | None = None
    daily_dose_mg: float | None = None
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class AncLatest:
    value: float
    unit: str
    date: date
    evidence: str


@dataclass(frozen=True)
class AncSummary:
    """ANC status. ``category`` is ``normal|mild|moderate|severe|ben-neutropenia|ben-severe|
    unknown`` in the US profile and ``green|amber|red|unknown`` in the UK profile."""

    threshold_set: Literal["general", "ben"]
    category: str
    latest: AncLatest | None = None
    frequency: str | None = None
    next_due: date | None = None
    overdue: bool = False


@dataclass(frozen=True)
class TrialAssessment:
    """One antipsychotic trial judged against the TRS adequacy criteria (rulebook §10)."""

    drug: str
    start: date
    end: date | None
    weeks_at_adequate_dose: float
    max_daily_dose_mg: float | None
    cpz_equivalent_mg: float | None
    adherence: float | None
    adequate: bool
    reasons: tuple[str, ...]
    evidence: tuple[str, ...]
    dose_adequate: bool | None = None
    duration_adequate: bool = False
    response: Literal["none", "responded", "unknown"] = "unknown"


@dataclass(frozen=True)
class TrsSummary:
    status: Literal["met", "possible", "not-met", "not-applicable"]
    trials: tuple[TrialAssessment, ...] = ()
    method: str = "gardner-2010"


@dataclass(frozen=True)
class Evaluation:
    as_of: date
    profile: str
    ruleset_version: str
    patient: str | None
    findings: tuple[Finding, ...]
    clozapine: ClozapineSummary
    anc: AncSummary
    trs: TrsSummary
    data_issues: tuple[tuple[str, str], ...] = field(default=())

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]
