"""Contract 1 renderings of an ``Evaluation``: the stable JSON (``smartapp.evaluation/1``) and
a readable text form for the terminal."""

from __future__ import annotations

from datetime import date
from typing import Any

from smartapp.rules.findings import AncSummary, Evaluation, Finding, TrialAssessment

SCHEMA = "smartapp.evaluation/1"


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _number(value: float | None) -> float | int | None:
    if value is None:
        return None
    rounded = round(value, 2)
    return int(rounded) if rounded == int(rounded) else rounded


def _finding(f: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {
        "code": f.code,
        "severity": f.severity,
        "summary": f.summary,
        "detail": f.detail,
        "evidence": list(f.evidence),
        "source": f.source,
    }
    if f.next_due:
        out["next_due"] = f.next_due.isoformat()
    if f.actions:
        out["actions"] = list(f.actions)
    return out


def _anc(a: AncSummary) -> dict[str, Any]:
    latest = None
    if a.latest:
        latest = {
            "value": _number(a.latest.value),
            "unit": a.latest.unit,
            "date": a.latest.date.isoformat(),
            "evidence": a.latest.evidence,
        }
    return {
        "latest": latest,
        "threshold_set": a.threshold_set,
        "category": a.category,
        "frequency": a.frequency,
        "next_due": _iso(a.next_due),
        "overdue": a.overdue,
    }


def _trial(t: TrialAssessment) -> dict[str, Any]:
    return {
        "drug": t.drug,
        "start": t.start.isoformat(),
        "end": _iso(t.end),
        "weeks_at_adequate_dose": round(t.weeks_at_adequate_dose, 1),
        "max_daily_dose_mg": _number(t.max_daily_dose_mg),
        "cpz_equivalent_mg": _number(t.cpz_equivalent_mg),
        "adherence": None if t.adherence is None else round(t.adherence, 3),
        "adequate": t.adequate,
        "dose_adequate": t.dose_adequate,
        "duration_adequate": t.duration_adequate,
        "response": t.response,
        "reasons": list(t.reasons),
        "evidence": list(t.evidence),
    }


def to_json(ev: Evaluation) -> dict[str, Any]:
    """The evaluation as the stable Contract 1 JSON object."""
    c = ev.clozapine
    return {
        "schema": SCHEMA,
        "as_of": ev.as_of.isoformat(),
        "profile": ev.profile,
        "ruleset_version": ev.ruleset_version,
        "patient": ev.patient,
        "findings": [_finding(f) for f in ev.findings],
        "clozapine": {
            "status": c.status,
            "course_start": _iso(c.course_start),
            "weeks_on_treatment": c.weeks_on_treatment,
            "daily_dose_mg": _number(c.daily_dose_mg),
            "evidence": list(c.evidence),
        },
        "anc": _anc(ev.anc),
        "trs": {
            "status": ev.trs.status,
            "method": ev.trs.method,
            "trials": [_trial(t) for t in ev.trs.trials],
        },
        "data_issues": [{"resource": r, "problem": p} for r, p in ev.data_issues],
    }


def to_text(ev: Evaluation) -> str:
    """A short human-readable report, most severe findings first."""
    c, a = ev.clozapine, ev.anc
    lines = [
        f"Patient {ev.patient or '(unknown)'} as of {ev.as_of} "
        f"({ev.profile}, rules {ev.ruleset_version})",
        f"Clozapine: {c.status}"
        + (f", course from {c.course_start}, week {c.weeks_on_treatment}" if c.course_start else "")
        + (f", {_number(c.daily_dose_mg)} mg/day" if c.daily_dose_mg is not None else ""),
        f"ANC ({a.threshold_set} table): {a.category}"
        + (
            f", latest {_number(a.latest.value)} {a.latest.unit} on {a.latest.date}"
            if a.latest
            else ", no result"
        )
        + (f", next due {a.next_due}" + (" (OVERDUE)" if a.overdue else "") if a.next_due else ""),
        f"TRS: {ev.trs.status} ({len(ev.trs.trials)} trial(s) assessed)",
        "",
    ]
    for f in ev.findings:
        lines.append(f"[{f.severity.upper()}] {f.code}: {f.summary}")
        if f.evidence:
            lines.append(f"    evidence: {', '.join(f.evidence)}")
        lines.append(f"    source: {f.source}")
    if not ev.findings:
        lines.append("No findings.")
    for resource, problem in ev.data_issues:
        lines.append(f"data issue: {resource}: {problem}")
    return "\n".join(lines) + "\n"
