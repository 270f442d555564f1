"""Draft orders of order-select / order-sign, and which findings concern them.

CDS Hooks Hook Library: ``context.draftOrders`` is a Bundle of orders not yet signed (it may
mix resource types); order-select's ``context.selections`` names the newly selected ones.
Every MedicationRequest among them is evaluated as a proposed medication (design.md,
Contract 1: a ``draft`` MedicationRequest is a proposed order) together with the patient's
data; an order hook then returns only the findings that concern the order in focus (the
selected drafts for order-select, every draft for order-sign). The rule of relevance is the
table ``ORDER_RELEVANCE`` below; ``PATIENT_VIEW_DROPPED`` is the noise left out of the
patient-view monitoring summary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from smartapp.cds_hooks.hook_request import HookRequest, bad
from smartapp.domain import PatientRecord
from smartapp.rules.courses import CLOZAPINE
from smartapp.rules.findings import FINDING_CODES, Finding
from smartapp.rules.ruleset import RuleContext
from smartapp.rules.trials import antipsychotics

Resource = dict[str, Any]

#: Resources of a draftOrders Bundle kept to resolve ``medicationReference`` of a draft.
SUPPORTING_TYPES = frozenset({"Medication"})

Condition = Literal["always", "clozapine-draft", "names-draft", "antipsychotic-draft"]

_CLOZAPINE_OR_DRAFT: tuple[Condition, ...] = ("clozapine-draft", "names-draft")

#: When a finding concerns the order (design.md, Contract 2: "order hooks only what concerns
#: the order"). A finding is shown on an order hook when any of its conditions holds:
#: ``always``: data problems, which qualify every other card (rulebook safety principle);
#: ``clozapine-draft``: a clozapine order is in focus (baseline and current ANC, titration and
#: dose, myocarditis, levels and smoking: what the prescriber of clozapine must know now);
#: ``names-draft``: the finding's evidence names a draft in focus (an interaction or a
#: laxative need the new drug brings);
#: ``antipsychotic-draft``: a non-clozapine antipsychotic is in focus, the "third
#: antipsychotic" moment of rulebook §10 (TRS status, suicidality indication).
#: Codes not listed (``trs-not-met``, ``metabolic-monitoring-due``) are routine monitoring,
#: shown on patient-view only.
ORDER_RELEVANCE: dict[str, tuple[Condition, ...]] = {
    "data-unavailable": ("always",),
    "data-unmapped": ("always",),
    "trs-met": ("antipsychotic-draft",),
    "trs-possible": ("antipsychotic-draft",),
    "clozapine-suicidality-indication": ("antipsychotic-draft",),
    **{code: ("clozapine-draft",) for code in FINDING_CODES
       if code.startswith(("anc-", "fbc-", "myocarditis-", "level-", "ratio-", "smoking-"))},
    **{code: ("clozapine-draft",) for code in
       ("titration-start-dose", "retitration-needed", "dose-above-max", "seizure-risk")},
    **{code: _CLOZAPINE_OR_DRAFT for code in FINDING_CODES if code.startswith("interaction-")},
    "constipation-prophylaxis": _CLOZAPINE_OR_DRAFT,
}  # fmt: skip

#: Left out of the patient-view summary: "TRS criteria not met" is no advice to act on; the
#: app's trial ledger shows the assessment.
PATIENT_VIEW_DROPPED = frozenset({"trs-not-met"})


@dataclass(frozen=True)
class DraftOrders:
    """``entries``: Bundle entries (fullUrl kept, so ``urn:uuid`` references resolve) of the
    draft MedicationRequests (status ``draft``, subject the context patient, each with an id)
    and of the Medications they may reference; ``drafts``: every draft's reference;
    ``focus``: the drafts the hook is about."""

    entries: tuple[Resource, ...] = ()
    drafts: tuple[str, ...] = ()
    focus: tuple[str, ...] = ()


def _ref(resource: Resource) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def _is_patient(reference: str, patient_id: str) -> bool:
    tail = f"Patient/{patient_id}"
    return reference == tail or reference.endswith("/" + tail)


def _id_from_url(full_url: Any) -> str:
    """``urn:uuid:abc`` -> ``abc``; ``https://ehr/fhir/MedicationRequest/5`` -> ``5``."""
    if not isinstance(full_url, str):
        return ""
    return full_url.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def _draft(resource: Resource, index: int, full_url: Any, patient_id: str) -> Resource:
    """The order as a proposal: status forced to ``draft``, an id from the fullUrl (or its
    position) when it has none, the subject checked against (or set to) the context patient."""
    name = f"context.draftOrders.entry[{index}]"
    out = {**resource, "status": "draft"}
    if not isinstance(out.get("id"), str) or not out["id"]:
        out["id"] = _id_from_url(full_url) or f"draft-{index}"
    subject = out.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if reference is None:
        out["subject"] = {"reference": f"Patient/{patient_id}"}
    elif not isinstance(reference, str) or not _is_patient(reference, patient_id):
        raise bad(f"{name}.resource.subject is not the context patient")
    return out


def _names(selection: str, resource: Resource, full_url: Any) -> bool:
    rid = resource.get("id")
    ref = f"{resource.get('resourceType')}/{rid}" if isinstance(rid, str) and rid else None
    if ref is not None and (selection == ref or selection.endswith("/" + ref)):
        return True
    return isinstance(full_url, str) and selection == full_url


def _selected(request: HookRequest, entries: list[tuple[int, Resource, Any]]) -> set[int]:
    chosen: set[int] = set()
    for i, selection in enumerate(request.context.selections):
        hits = [index for index, r, url in entries if _names(selection, r, url)]
        if not hits:
            raise bad(f"context.selections[{i}] names no order in context.draftOrders")
        chosen.update(hits)
    return chosen


def read_draft_orders(request: HookRequest) -> DraftOrders:
    """The draft MedicationRequests of an order hook (none for patient-view)."""
    bundle = request.context.draft_orders
    if bundle is None:
        return DraftOrders()
    entries = [(i, e["resource"], e.get("fullUrl")) for i, e in enumerate(bundle.get("entry", []))]
    selected = _selected(request, entries) if request.hook == "order-select" else None
    kept: list[Resource] = []
    drafts: list[str] = []
    focus: list[str] = []
    for index, resource, full_url in entries:
        rtype = resource.get("resourceType")
        if rtype == "MedicationRequest":
            resource = _draft(resource, index, full_url, request.patient_id)
            drafts.append(_ref(resource))
            if selected is None or index in selected:
                focus.append(_ref(resource))
        elif rtype not in SUPPORTING_TYPES:
            continue
        kept.append(
            {"fullUrl": full_url, "resource": resource}
            if isinstance(full_url, str) and full_url
            else {"resource": resource}
        )
    return DraftOrders(tuple(kept), tuple(drafts), tuple(dict.fromkeys(focus)))


@dataclass(frozen=True)
class Focus:
    """What the orders in focus are, as the rules recognised them."""

    refs: frozenset[str]
    clozapine: bool
    antipsychotic: bool


def focus_of(record: PatientRecord, refs: Iterable[str], ctx: RuleContext) -> Focus:
    wanted = frozenset(refs)
    drugs = antipsychotics(ctx)
    exposures = [m for m in record.medications if m.proposed and m.ref in wanted]
    return Focus(
        refs=wanted,
        clozapine=any(m.has(CLOZAPINE) for m in exposures),
        antipsychotic=any(
            drugs.intersection(m.ingredients) and not m.has(CLOZAPINE) for m in exposures
        ),
    )


def _holds(condition: Condition, finding: Finding, focus: Focus) -> bool:
    if condition == "always":
        return True
    if condition == "clozapine-draft":
        return focus.clozapine
    if condition == "antipsychotic-draft":
        return focus.antipsychotic
    return bool(focus.refs.intersection(finding.evidence))


def concerns_order(finding: Finding, focus: Focus) -> bool:
    return any(_holds(c, finding, focus) for c in ORDER_RELEVANCE.get(finding.code, ()))


def relevant_findings(hook: str, findings: Sequence[Finding], focus: Focus) -> list[Finding]:
    """The findings worth a card for this hook (order kept: most severe first)."""
    if hook == "patient-view":
        return [f for f in findings if f.code not in PATIENT_VIEW_DROPPED]
    return [f for f in findings if concerns_order(f, focus)]
