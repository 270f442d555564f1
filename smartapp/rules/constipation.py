"""Prophylactic laxatives for everyone on clozapine (rulebook §9) [G1, G2].

``constipation-prophylaxis`` (info): a patient on clozapine (or being ordered it) with no
laxative of ``constipation.laxatives`` in force on ``as_of``. A strong anticholinergic in force
(the ``interactions.anticholinergic`` group) adds to the hypomotility and is named.
"""

from __future__ import annotations

from smartapp.domain import MedicationExposure, PatientRecord
from smartapp.rules.courses import ClozapineHistory
from smartapp.rules.findings import Finding
from smartapp.rules.interactions import (
    clozapine_in_force,
    drug_name,
    fit_summary,
    group_drugs,
    name_list,
)
from smartapp.rules.medications import active_on
from smartapp.rules.ruleset import RuleContext

BASE = "constipation"
ANTICHOLINERGIC = "interactions.anticholinergic"


def evaluate_constipation(
    record: PatientRecord, history: ClozapineHistory, ctx: RuleContext
) -> list[Finding]:
    """``constipation-prophylaxis`` when no laxative is in force (§9)."""
    if history.current is None:
        return []
    laxatives = ctx.rules.strings(f"{BASE}.laxatives") + ctx.rules.strings(
        f"{BASE}.extra_laxatives"
    )
    if active_on(record, ctx.as_of, laxatives):
        return []
    anticholinergics = group_drugs(ctx, ANTICHOLINERGIC)
    partners = active_on(record, ctx.as_of, anticholinergics)
    clozapine = clozapine_in_force(record, history, ctx)
    names = list(dict.fromkeys(drug_name(m, anticholinergics) for m in partners))
    if names:
        summary = f"On clozapine and {name_list(names)} with no laxative: start a laxative"
    else:
        summary = "On clozapine with no laxative in force: start a prophylactic laxative"
    lines = [str(ctx.rules.value(f"{BASE}.advice"))]
    if partners:
        lines.append(
            f"Also on {name_list(names)} ({', '.join(m.ref for m in partners)}): a strong "
            "anticholinergic adds to the gut hypomotility; review whether it is needed."
        )
    lines.append(_last_laxative(record, laxatives, ctx))
    cited = [f"{BASE}.advice", f"{BASE}.laxatives"] + (
        [f"{ANTICHOLINERGIC}.drugs"] if names else []
    )
    return [
        Finding(
            code="constipation-prophylaxis",
            severity=ctx.rules.value(f"{BASE}.severity"),
            summary=fit_summary(summary),
            detail="\n".join(lines),
            source=ctx.rules.cite(*cited),
            evidence=tuple(dict.fromkeys(m.ref for m in [*clozapine, *partners])),
        )
    ]


def _last_laxative(record: PatientRecord, laxatives: tuple[str, ...], ctx: RuleContext) -> str:
    """Say when the last laxative ended, so a lapsed prescription is seen as one."""
    wanted = set(laxatives)
    ended: list[MedicationExposure] = [
        m
        for m in record.medications
        if wanted.intersection(m.ingredients) and m.end is not None and m.end <= ctx.as_of
    ]
    if not ended:
        return "No laxative on record."
    last = max(ended, key=lambda m: (m.end, m.ref))
    when = last.end.isoformat() if last.end is not None else "unknown"
    return f"Last laxative on record: {drug_name(last, laxatives)} ({last.ref}), ended {when}."
