"""One CDS hook call, from a validated request to cards (design.md, Contract 2).

Draft orders are read first (a bad one is a 400 before any FHIR traffic); then the patient's
data is gathered from prefetch and the FHIR server; when nothing usable comes back the answer
is 412, when part is missing the ``data-unavailable`` rule says so on a card (rulebook safety
principle: never a silent "all clear"). The drafts join the patient's data as proposed
medications, the clinical core evaluates the record, and the findings that concern this hook
become cards. The clock is read by the caller (``today``), never here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import requests

from fhir_mappings.record import InputError, build_record
from smartapp.cds_hooks import prefetch
from smartapp.cds_hooks.cards import CardContext, cards_for
from smartapp.cds_hooks.hook_request import HookRequest, bad
from smartapp.cds_hooks.orders import DraftOrders, focus_of, read_draft_orders, relevant_findings
from smartapp.domain import PatientRecord
from smartapp.errors import ClientError
from smartapp.rules.evaluate import evaluate
from smartapp.rules.ruleset import PROFILES, Profile, RuleContext, Ruleset

Gather = Callable[..., prefetch.PatientData]

#: How many failed queries a 412 names (the rest are counted).
SHOWN_FAILURES = 3


@dataclass(frozen=True)
class ServiceSettings:
    """What a hook call needs from the app's configuration."""

    rules: Ruleset
    profile: Profile = "us-fda"
    cpz_method: str = "gardner-2010"
    app_launch_url: str = ""
    fhir_timeout_s: float = 5.0
    fhir_max_pages: int = 50
    fhir_parallel: int = 8
    fhir_allow_http: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any], rules: Ruleset) -> ServiceSettings:
        profile = next((p for p in PROFILES if p == config["PROFILE"]), None)
        if profile is None:
            raise ValueError(f"PROFILE must be one of {', '.join(PROFILES)}")
        return cls(
            rules=rules,
            profile=profile,
            cpz_method=str(config["CPZ_METHOD"]),
            app_launch_url=str(config["APP_LAUNCH_URL"]),
            fhir_timeout_s=float(config["FHIR_TIMEOUT_S"]),
            fhir_max_pages=int(config["FHIR_MAX_PAGES"]),
            fhir_parallel=int(config["FHIR_PARALLEL"]),
            fhir_allow_http=bool(config["FHIR_ALLOW_HTTP"]),
        )


@dataclass(frozen=True)
class HookOutcome:
    """The cards of one call and what the audit trail keeps of it."""

    cards: list[dict[str, Any]]
    finding_codes: tuple[str, ...]
    fetched: tuple[str, ...] = ()
    unavailable: tuple[str, ...] = ()


def _context(request: HookRequest) -> dict[str, Any]:
    """The context fields a prefetch template may name (top-level strings only)."""
    context = request.context
    fields = {"userId": context.user_id, "patientId": context.patient_id}
    if context.encounter_id is not None:
        fields["encounterId"] = context.encounter_id
    return fields


def gather_data(
    service_id: str,
    request: HookRequest,
    settings: ServiceSettings,
    session: requests.Session | None = None,
    gather: Gather = prefetch.gather,
) -> prefetch.PatientData:
    auth = request.fhir_authorization
    return gather(
        service_id,
        _context(request),
        request.prefetch,
        request.fhir_server,
        auth.access_token if auth else None,
        user_id=request.context.user_id,
        timeout=settings.fhir_timeout_s,
        max_pages=settings.fhir_max_pages,
        max_workers=settings.fhir_parallel,
        session=session,
        allow_http=settings.fhir_allow_http,
    )


def not_usable(data: prefetch.PatientData) -> ClientError:
    """412: the data a decision needs could not be obtained (CDS Hooks 2.0, Prefetch)."""
    shown = "; ".join(data.unavailable[:SHOWN_FAILURES])
    more = len(data.unavailable) - SHOWN_FAILURES
    if more > 0:
        shown += f"; and {more} more"
    return ClientError(412, f"the patient's data could not be obtained: {shown or 'no data'}")


def patient_record(
    request: HookRequest, drafts: DraftOrders, data: prefetch.PatientData
) -> PatientRecord:
    """The drafts (first, so their ``draft`` status wins over a copy the EHR also returned)
    and the gathered resources, as one patient's record. The context patient is added when no
    Patient resource came, so data about anyone else is refused as a second patient."""
    patient_id = request.patient_id
    entries: list[dict[str, Any]] = [*drafts.entries]
    entries += [{"resource": r} for r in data.resources]
    if not any(
        r.get("resourceType") == "Patient" and r.get("id") == patient_id for r in data.resources
    ):
        entries.append({"resource": {"resourceType": "Patient", "id": patient_id}})
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    try:
        record = build_record(bundle, unavailable=data.unavailable)
    except InputError as exc:
        raise bad(str(exc)) from None
    if record.patient != f"Patient/{patient_id}":
        raise bad("the patient data is not about context.patientId")
    return record


def call_hook(
    service_id: str,
    request: HookRequest,
    settings: ServiceSettings,
    today: date,
    *,
    session: requests.Session | None = None,
    gather: Gather = prefetch.gather,
) -> HookOutcome:
    """Evaluate one hook call as of ``today``; raises ``ClientError`` (400, 412)."""
    drafts = read_draft_orders(request)
    data = gather_data(service_id, request, settings, session, gather)
    if not data.usable:
        raise not_usable(data)
    record = patient_record(request, drafts, data)
    evaluation = evaluate(record, today, settings.profile, settings.rules, settings.cpz_method)
    ctx = RuleContext(today, settings.profile, settings.rules, settings.cpz_method)
    focus = focus_of(record, drafts.focus, ctx)
    findings = relevant_findings(request.hook, evaluation.findings, focus)
    card_context = CardContext(
        service_id=service_id,
        hook=request.hook,
        patient_id=request.patient_id,
        app_launch_url=settings.app_launch_url,
        draft_refs=drafts.drafts,
        as_of=today,
    )
    return HookOutcome(
        cards=cards_for(findings, card_context),
        finding_codes=tuple(f.code for f in findings),
        fetched=tuple(data.fetched),
        unavailable=tuple(data.unavailable),
    )
