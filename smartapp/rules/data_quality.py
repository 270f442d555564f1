"""Findings about the data itself: the rulebook's first principle.

"Missing or unreadable data is never read as normal" (clinical-rules.md, safety principle):
a failed FHIR query gives ``data-unavailable``; resources that could not be read well enough to
use gives ``data-unmapped``. Both say what was left out of the decision.
"""

from __future__ import annotations

from smartapp.domain import PatientRecord
from smartapp.rules.courses import ClozapineHistory
from smartapp.rules.findings import Finding
from smartapp.rules.ruleset import RuleContext

SHOWN = 5


def _listing(items: list[str]) -> str:
    lines = [f"- {item}" for item in items[:SHOWN]]
    if len(items) > SHOWN:
        lines.append(f"- … and {len(items) - SHOWN} more")
    return "\n".join(lines)


def _unavailable(record: PatientRecord, ctx: RuleContext) -> list[Finding]:
    if not record.unavailable:
        return []
    what = list(dict.fromkeys(record.unavailable))
    return [
        Finding(
            code="data-unavailable",
            severity=ctx.rules.value("data.unavailable_severity"),
            summary=f"Some patient data could not be obtained ({len(what)} failed "
            f"quer{'y' if len(what) == 1 else 'ies'}): findings may be incomplete",
            detail="These queries failed, so their data is missing from every finding below; "
            "absence of an alert is not reassurance:\n" + _listing(what),
            source=ctx.rules.cite("data.unavailable_severity"),
        )
    ]


def _unmapped(record: PatientRecord, ctx: RuleContext) -> list[Finding]:
    problems = [f"{i.resource}: {i.problem}" for i in record.data_issues]
    problems += [f"{ref}: no recognisable code or text" for ref in record.unmapped]
    if not problems:
        return []
    refs = tuple(dict.fromkeys([i.resource for i in record.data_issues] + list(record.unmapped)))
    severity = "data.unmapped_severity" if record.data_issues else "data.unrecognised_severity"
    return [
        Finding(
            code="data-unmapped",
            severity=ctx.rules.value(severity),
            summary=f"{len(refs)} resource(s) could not be read and were left out of the decision",
            detail="Each was excluded rather than guessed; check them in the chart:\n"
            + _listing(problems),
            source=ctx.rules.cite(severity),
            evidence=refs,
        )
    ]


def evaluate_data_quality(
    record: PatientRecord, history: ClozapineHistory, ctx: RuleContext
) -> list[Finding]:
    """``data-unavailable`` and ``data-unmapped`` (design.md finding vocabulary)."""
    return _unavailable(record, ctx) + _unmapped(record, ctx)
