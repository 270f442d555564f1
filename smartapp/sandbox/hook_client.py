"""The sandbox as a CDS Hooks 2.0 client (§Calling a CDS Service, §Prefetch, §FHIR Resource
Access, §Feedback; issue 5 item 1 "Prescribe"): it builds an order-select or order-sign
request for a draft order, signs it, POSTs it to our own ``/cds-services/{id}`` over HTTP, and
later sends the clinician's feedback on a card the same way.

- Prefetch: every template of the service's discovery entry, expanded with the request's
  context and run against the sandbox store through the FHIR API's own functions, so the
  values are exactly what ``GET [base]/<template>`` would answer (all pages merged into one
  searchset). A failed search is sent as its OperationOutcome, as the specification asks.
- Without prefetch: ``fhirServer`` (the sandbox FHIR base) and ``fhirAuthorization`` with a
  fresh access token the sandbox issues for this patient only; the service fetches.
- Every call carries ``Authorization: Bearer <JWT>`` signed with the sandbox's key
  (``keys.client_jwt``: ``aud`` the exact URL posted to). The POST goes over the network to
  this same server, which the demo serves with threads, as a real EHR would call it.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from smartapp.cds_hooks import discovery
from smartapp.sandbox import SandboxUrls
from smartapp.sandbox.auth_server import FHIR_USER, AuthServer
from smartapp.sandbox.fhir_api import FhirApiError, get, outcome
from smartapp.sandbox.keys import SandboxKey, client_jwt
from smartapp.sandbox.order_menu import draft_orders_bundle
from smartapp.sandbox.store import FhirStore

Json = dict[str, Any]

HOOK_SERVICES: Mapping[str, str] = {
    "order-select": "clozapine-order-select",
    "order-sign": "clozapine-order-sign",
}
#: What the service may read with the token of the fetch path (patient level, read + search).
SERVICE_SCOPE = "patient/*.rs"
#: ``fhirAuthorization.subject``: the OAuth client id the EHR knows the CDS service by.
SERVICE_CLIENT_ID = "clozapine-cds-service"
HOOK_TIMEOUT_S = 30.0
MAX_PAGES = 50
ERROR_TEXT_CHARS = 300


def service_url(urls: SandboxUrls, service_id: str) -> str:
    return f"{urls.origin}{discovery_path(service_id)}"


def discovery_path(service_id: str) -> str:
    return f"/cds-services/{service_id}"


def hook_context(hook: str, patient_id: str, drafts: list[Json]) -> Json:
    """The order-select / order-sign context: user, patient, the draft orders (and for
    order-select the selected ones: every draft here)."""
    context: Json = {
        "userId": FHIR_USER,
        "patientId": patient_id,
        "draftOrders": draft_orders_bundle(drafts),
    }
    if hook == "order-select":
        context["selections"] = [f"MedicationRequest/{d['id']}" for d in drafts]
    return context


def _relative(base: str, url: str) -> str:
    if not url.startswith(base + "/"):
        raise FhirApiError(500, "exception", "a next link outside the sandbox FHIR base")
    return url.removeprefix(base + "/")


def _next_link(page: Json) -> str | None:
    links = page.get("link", [])
    return next((x.get("url") for x in links if x.get("relation") == "next"), None)


def _all_pages(store: FhirStore, base: str, first: Json, patient_id: str) -> Json:
    """One searchset holding every page's entries (a prefetch value cannot be paged without
    ``fhirServer``)."""
    entries = list(first.get("entry", []))
    page, pages = first, 1
    while (link := _next_link(page)) is not None:
        if pages >= MAX_PAGES:
            raise FhirApiError(500, "too-costly", "more pages than the sandbox prefetches")
        page = get(store, base, _relative(base, link), patient_id)
        entries.extend(page.get("entry", []))
        pages += 1
    links = [x for x in first.get("link", []) if x.get("relation") == "self"]
    return {**first, "link": links, "entry": entries}


def prefetch_value(store: FhirStore, base: str, relative: str, patient_id: str) -> Json:
    """What the sandbox FHIR API answers for one expanded template (its OperationOutcome when
    the search fails)."""
    try:
        answer = get(store, base, relative, patient_id)
        if answer.get("resourceType") == "Bundle":
            return _all_pages(store, base, answer, patient_id)
        return answer
    except FhirApiError as exc:
        return outcome(exc.code, str(exc))


def build_prefetch(store: FhirStore, base: str, service_id: str, context: Json) -> Json:
    """Every prefetch key of the service, satisfied from the store."""
    templates = discovery.prefetch_templates(service_id) or {}
    out: Json = {}
    for key, template in templates.items():
        relative = discovery.expand(template, context, context.get("userId"))
        out[key] = prefetch_value(store, base, relative, context["patientId"])
    return out


def fhir_authorization(auth: AuthServer, patient_id: str) -> Json:
    """A token the service may use to read this patient's data from the sandbox."""
    issued = auth.issue_token(patient_id, SERVICE_SCOPE, client_id=SERVICE_CLIENT_ID)
    return {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scope,
        "subject": SERVICE_CLIENT_ID,
        "patient": patient_id,
    }


@dataclass(frozen=True)
class HookCall:
    """One request to send: the hook, the patient, the drafts, and how data is provided."""

    hook: str
    patient_id: str
    drafts: tuple[Json, ...]
    with_prefetch: bool

    @property
    def service_id(self) -> str:
        return HOOK_SERVICES[self.hook]


def hook_body(call: HookCall, urls: SandboxUrls, store: FhirStore, auth: AuthServer) -> Json:
    """The request body (a fresh ``hookInstance``); prefetch or fhirServer + token."""
    context = hook_context(call.hook, call.patient_id, list(call.drafts))
    body: Json = {"hook": call.hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if call.with_prefetch:
        body["prefetch"] = build_prefetch(store, urls.fhir_base, call.service_id, context)
    else:
        body["fhirServer"] = urls.fhir_base
        body["fhirAuthorization"] = fhir_authorization(auth, call.patient_id)
    return body


@dataclass
class Answer:
    """What the service answered: HTTP status, the JSON body when there was one, an error
    line when the call failed, how long it took, and the JWT claims that were sent."""

    status: int | None
    body: Any = None
    error: str | None = None
    elapsed_ms: float = 0.0
    claims: Json = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


def post_signed(
    url: str,
    body: Json,
    key: SandboxKey,
    urls: SandboxUrls,
    session: requests.Session | None = None,
) -> Answer:
    """POST ``body`` to ``url`` with a fresh CDS client JWT; never raises for the network or
    the service's answer (the page shows what happened)."""
    token = client_jwt(key, urls.origin, url, datetime.now(UTC))
    claims = _claims_of(token)
    started = time.perf_counter()
    http = session or requests
    try:
        response = http.post(
            url,
            json=body,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=HOOK_TIMEOUT_S,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        elapsed = (time.perf_counter() - started) * 1000
        error = f"no answer ({type(exc).__name__})"
        return Answer(None, error=error, elapsed_ms=elapsed, claims=claims)
    elapsed = (time.perf_counter() - started) * 1000
    return _answer(response, elapsed, claims)


def _answer(response: requests.Response, elapsed_ms: float, claims: Json) -> Answer:
    try:
        payload = response.json() if response.content else None
    except ValueError:
        payload = None
    error = None
    if response.status_code != 200:
        detail = payload.get("error") if isinstance(payload, dict) else None
        text = str(detail or response.text or response.reason)[:ERROR_TEXT_CHARS]
        error = f"HTTP {response.status_code}: {' '.join(text.split())}"
    return Answer(response.status_code, payload, error, elapsed_ms, claims)


def _claims_of(token: str) -> Json:
    """The JWT's claims, to show on the page (we just signed them: no verification)."""
    payload = token.split(".")[1]
    decoded: Json = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def cards_of(answer: Answer) -> list[Json]:
    """The cards of a 200 answer (an answer of another shape has none)."""
    if not answer.ok or not isinstance(answer.body, dict):
        return []
    cards = answer.body.get("cards")
    return [c for c in cards if isinstance(c, dict)] if isinstance(cards, list) else []


def feedback_body(
    card_uuid: str,
    outcome_: str,
    *,
    suggestion: str | None = None,
    reason: Mapping[str, Any] | None = None,
    comment: str | None = None,
) -> Json:
    """A CDS Hooks 2.0 feedback body for one card: ``accepted`` (with the suggestion taken)
    or ``overridden`` (with the coded reason and the clinician's comment)."""
    item: Json = {
        "card": card_uuid,
        "outcome": outcome_,
        "outcomeTimestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    if suggestion:
        item["acceptedSuggestions"] = [{"id": suggestion}]
    if reason is not None:
        override: Json = {"reason": dict(reason)}
        if comment:
            override["userComment"] = comment
        item["overrideReason"] = override
    return {"feedback": [item]}
