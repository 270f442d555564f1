"""What the dashboard page shows, assembled from one evaluation (design.md Contract 3 pages).

Pure: the view fetches, stores and evaluates; this module turns the record and its evaluation
into the page's parts (banner, findings with their card content, charts, TRS ledger, calendar,
pharmacology, statements). Everything shown comes from the evaluation or the rule data; nothing
here decides anything clinical.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from smartapp.cds_hooks.cards import card_data, source_tags
from smartapp.dashboard.calendar import CalendarRow, monitoring_calendar
from smartapp.dashboard.charts import AncChart, LevelChart, anc_chart, levels_chart
from smartapp.dashboard.pharmacology import Pharmacology, occupancy_figure, pharmacology
from smartapp.dashboard.text import render_detail
from smartapp.domain import ClinicianStatement, PatientRecord
from smartapp.rules.findings import FINDING_CODES, Evaluation, Finding, TrialAssessment
from smartapp.rules.ruleset import RuleContext

Resource = dict[str, Any]
SEVERITY_WORDS = {"critical": "Critical", "warning": "Warning", "info": "Information"}
STATEMENT_WORDS = {
    "ben-confirmed": "Benign ethnic neutropenia (BEN)",
    "trial-response": "Response to a trial",
}


@dataclass(frozen=True)
class Banner:
    name: str
    birth_date: str
    gender: str
    patient_id: str


@dataclass(frozen=True)
class FindingView:
    finding: Finding
    display: str
    severity_word: str
    detail_html: Markup
    source_links: tuple[tuple[str, str], ...]  # (label, absolute url) from cards.json
    highlighted: bool
    next_due_late: bool


@dataclass(frozen=True)
class TrialRow:
    trial: TrialAssessment
    adherence_text: str
    dose_text: str
    cpz_text: str
    period: str


@dataclass(frozen=True)
class StatementRow:
    what: str
    value: str
    author: str
    recorded: str


@dataclass(frozen=True)
class DashboardPage:
    evaluation: Evaluation
    banner: Banner | None
    findings: tuple[FindingView, ...]
    refused: tuple[str, ...]
    anc: AncChart
    levels: LevelChart
    trials: tuple[TrialRow, ...]
    trial_drugs: tuple[str, ...]
    calendar: tuple[CalendarRow, ...]
    pharmacology: Pharmacology
    occupancy_svg: str
    statements: tuple[StatementRow, ...]
    highlight: str | None
    highlight_absent: bool  # the card's finding no longer applies
    as_of_pinned: bool


def _name(patient: Resource) -> str:
    names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    chosen = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
    if chosen is None:
        return "name not recorded"
    if isinstance(chosen.get("text"), str) and chosen["text"].strip():
        return str(chosen["text"]).strip()
    given = [g for g in chosen.get("given") or [] if isinstance(g, str)]
    family = chosen.get("family")
    parts = [*given, family] if isinstance(family, str) else given
    return " ".join(parts).strip() or "name not recorded"


def banner(patient: Resource | None, patient_id: str, refused: tuple[str, ...]) -> Banner:
    """Name, birth date, gender and id; says why when the Patient could not be read."""
    if patient is None:
        why = "no read access to Patient" if "Patient" in refused else "Patient not available"
        return Banner(f"name not available ({why})", "not available", "not available", patient_id)
    birth = patient.get("birthDate")
    gender = patient.get("gender")
    return Banner(
        name=_name(patient),
        birth_date=birth if isinstance(birth, str) else "not recorded",
        gender=gender if isinstance(gender, str) else "not recorded",
        patient_id=patient_id,
    )


def app_context_finding(app_context: str | None, patient_id: str | None) -> str | None:
    """The finding a CDS card's ``appContext`` names (``{"finding": code, "patient": id}``).
    Untrusted text: only a known finding code is used, and only for the patient it names."""
    if not app_context:
        return None
    try:
        data = json.loads(app_context)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("finding") not in FINDING_CODES:
        return None
    named = data.get("patient")
    if named is not None and named not in (patient_id, f"Patient/{patient_id}"):
        return None
    return str(data["finding"])


def _source_links(finding: Finding) -> tuple[tuple[str, str], ...]:
    sources = card_data().sources
    links = []
    for tag in source_tags(finding.source):
        entry = sources.get(tag)
        if entry is not None and entry.url:
            links.append((entry.label, entry.url))
    return tuple(links)


def finding_views(evaluation: Evaluation, highlight: str | None) -> tuple[FindingView, ...]:
    displays = card_data().displays
    return tuple(
        FindingView(
            finding=f,
            display=displays[f.code],
            severity_word=SEVERITY_WORDS[f.severity],
            detail_html=render_detail(f.detail),
            source_links=_source_links(f),
            highlighted=f.code == highlight,
            next_due_late=f.next_due is not None and f.next_due < evaluation.as_of,
        )
        for f in evaluation.findings
    )


def _mg(value: float | None) -> str:
    return "unknown" if value is None else f"{value:,.4g} mg/day"


def trial_rows(evaluation: Evaluation) -> tuple[TrialRow, ...]:
    rows = []
    for t in evaluation.trs.trials:
        end = t.end.isoformat() if t.end else "ongoing"
        rows.append(
            TrialRow(
                trial=t,
                adherence_text="unknown" if t.adherence is None else f"{t.adherence:.0%}",
                dose_text=_mg(t.max_daily_dose_mg),
                cpz_text=_mg(t.cpz_equivalent_mg),
                period=f"{t.start.isoformat()} to {end}",
            )
        )
    return tuple(rows)


def statement_rows(statements: list[ClinicianStatement]) -> tuple[StatementRow, ...]:
    rows = []
    for s in sorted(statements, key=lambda s: s.recorded, reverse=True):
        value = s.value
        if s.kind == "ben-confirmed":
            value = "confirmed" if s.value.strip().lower() == "true" else "not confirmed"
        elif s.kind == "trial-response":
            drug, _, verdict = s.value.partition(":")
            value = f"{drug}: {'responded' if verdict == 'responded' else 'no response'}"
        rows.append(
            StatementRow(
                what=STATEMENT_WORDS.get(s.kind, s.kind),
                value=value,
                author=s.author,
                recorded=s.recorded.strftime("%Y-%m-%d %H:%M UTC"),
            )
        )
    return tuple(rows)


def assemble(
    record: PatientRecord,
    evaluation: Evaluation,
    ctx: RuleContext,
    *,
    patient: Resource | None,
    patient_id: str,
    show_banner: bool,
    refused: tuple[str, ...],
    statements: list[ClinicianStatement],
    highlight: str | None,
    as_of_pinned: bool = False,
) -> DashboardPage:
    codes = evaluation.codes()
    return DashboardPage(
        evaluation=evaluation,
        banner=banner(patient, patient_id, refused) if show_banner else None,
        findings=finding_views(evaluation, highlight),
        refused=refused,
        anc=anc_chart(record, evaluation, ctx),
        levels=levels_chart(record, ctx),
        trials=trial_rows(evaluation),
        trial_drugs=tuple(sorted({t.drug for t in evaluation.trs.trials})),
        calendar=tuple(monitoring_calendar(evaluation, ctx.rules)),
        pharmacology=pharmacology(),
        occupancy_svg=occupancy_figure(),
        statements=statement_rows(statements),
        highlight=highlight,
        highlight_absent=highlight is not None and highlight not in codes,
        as_of_pinned=as_of_pinned,
    )
