"""The sandbox EHR's CDS Hooks client page, ``/sandbox/prescribe`` (issue 5 item 1,
"Prescribe"), and the sandbox's public keys at ``/sandbox/jwks.json``.

The clinician picks a patient, a draft order from the menu (``order_menu``), the hook
(order-select or order-sign) and whether the sandbox sends prefetch or lets the service fetch
with a token. The server builds and signs the request and POSTs it to our own
``/cds-services/{id}`` (``hook_client``), keeps the answer in memory under its
``hookInstance`` and shows it at ``/sandbox/prescribe/calls/<hookInstance>``: each card's
indicator, summary, detail, source, suggestions with "Accept", override reasons with
"Override", and smart links that launch the app through the sandbox's EHR launch with the
card's ``appContext``. Accepting or overriding POSTs signed feedback to
``/cds-services/{id}/feedback`` and the card then says whether the service stored it.

Forms are POSTs with the session's CSRF token; feedback names a card, suggestion and reason
only by the ids the service sent, checked against the stored answer, so the page cannot be
made to send anything the service did not offer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Blueprint, Response, current_app, jsonify, redirect, render_template, request
from flask.blueprints import BlueprintSetupState
from werkzeug.wrappers import Response as BaseResponse

from smartapp.cds_hooks.views import today
from smartapp.fhir_client import make_session
from smartapp.sandbox import JWKS_PATH, current_urls, sandbox
from smartapp.sandbox.card_view import CardView, card_view
from smartapp.sandbox.ehr import launch_path
from smartapp.sandbox.hook_client import (
    HOOK_SERVICES,
    Answer,
    HookCall,
    cards_of,
    feedback_body,
    hook_body,
    post_signed,
    service_url,
)
from smartapp.sandbox.keys import SandboxKey, load_key
from smartapp.sandbox.order_menu import BY_KEY, MENU, draft_request, new_order_id
from smartapp.smart.context import error_page

blueprint = Blueprint("sandbox_cds", __name__)

PRESCRIBE = "/sandbox/prescribe"
KEY = "smartapp.sandbox.cds_key"
CALLS = "smartapp.sandbox.cds_calls"
HTTP = "smartapp.sandbox.cds_http"
KEEP_CALLS = 50
DATA_MODES = {"prefetch": True, "fetch": False}
MAX_COMMENT_CHARS = 500


@dataclass
class CallRecord:
    """One hook call as the page shows it, and the feedback sent on its cards."""

    hook_instance: str
    call: HookCall
    order_key: str
    url: str
    sent_keys: tuple[str, ...]
    answer: Answer
    cards: tuple[CardView, ...]
    feedback: dict[str, str] = field(default_factory=dict)

    def card(self, card_uuid: str) -> CardView | None:
        return next((c for c in self.cards if c.uuid == card_uuid), None)


class CallLog:
    """The latest calls in memory (the demo's one user; thread-safe, bounded)."""

    def __init__(self, keep: int = KEEP_CALLS) -> None:
        self._calls: OrderedDict[str, CallRecord] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self._calls[record.hook_instance] = record
            while len(self._calls) > self._keep:
                self._calls.popitem(last=False)

    def get(self, hook_instance: str) -> CallRecord | None:
        with self._lock:
            return self._calls.get(hook_instance)


@blueprint.record_once
def _setup(state: BlueprintSetupState) -> None:
    app = state.app
    app.extensions[KEY] = load_key(app.instance_path)
    app.extensions[CALLS] = CallLog()
    app.extensions[HTTP] = make_session(pool_maxsize=8)


def _key() -> SandboxKey:
    key: SandboxKey = current_app.extensions[KEY]
    return key


def _calls() -> CallLog:
    log: CallLog = current_app.extensions[CALLS]
    return log


def _http() -> requests.Session:
    session: requests.Session = current_app.extensions[HTTP]
    return session


@blueprint.get(JWKS_PATH)
def jwks() -> Response:
    """The public half of the sandbox's signing key (CDS Hooks 2.0: the client's JWKS)."""
    return jsonify(_key().public_jwks())


def _page(status: int = 200, **values: Any) -> tuple[str, int]:
    defaults = {"patient": "", "order": "", "hook": "order-sign", "data": "prefetch"}
    chosen = {**defaults, **values.pop("chosen", {})}
    html = render_template(
        "sandbox/prescribe.html",
        patients=sandbox().store.patients(),
        menu=MENU,
        hooks=tuple(HOOK_SERVICES),
        chosen=chosen,
        evaluation_date=today().isoformat(),
        launch_path=launch_path,
        **values,
    )
    return html, status


@blueprint.get(PRESCRIBE)
def prescribe() -> tuple[str, int]:
    patient = request.args.get("patient") or ""
    known = sandbox().store.patient(patient) is not None
    return _page(chosen={"patient": patient if known else ""})


class FormError(ValueError):
    """The form does not name a known patient, menu order, hook or data mode."""


def _form_call() -> tuple[HookCall, str]:
    """The call the form asks for, and its menu key."""
    form = request.form
    patient = form.get("patient") or ""
    if sandbox().store.patient(patient) is None:
        raise FormError("Choose a patient from the list.")
    order = BY_KEY.get(form.get("order") or "")
    if order is None:
        raise FormError("Choose an order from the menu.")
    hook = form.get("hook") or ""
    if hook not in HOOK_SERVICES:
        raise FormError("Choose order-select or order-sign.")
    data = form.get("data") or ""
    if data not in DATA_MODES:
        raise FormError("Choose whether the sandbox sends prefetch.")
    draft = draft_request(order, patient, today(), new_order_id())
    return HookCall(hook, patient, (draft,), DATA_MODES[data]), order.key


@blueprint.post(PRESCRIBE)
def send() -> BaseResponse | tuple[str, int]:
    chosen = {k: request.form.get(k) or "" for k in ("patient", "order", "hook", "data")}
    try:
        call, order_key = _form_call()
    except FormError as exc:
        return _page(400, chosen=chosen, form_error=str(exc))
    urls = current_urls()
    state = sandbox()
    body = hook_body(call, urls, state.store, state.auth)
    url = service_url(urls, call.service_id)
    answer = post_signed(url, body, _key(), urls, _http())
    record = CallRecord(
        hook_instance=body["hookInstance"],
        call=call,
        order_key=order_key,
        url=url,
        sent_keys=tuple(body.get("prefetch", {})),
        answer=answer,
        cards=tuple(card_view(c) for c in cards_of(answer)),
    )
    _calls().add(record)
    return redirect(f"{PRESCRIBE}/calls/{record.hook_instance}", code=303)


def _chosen(record: CallRecord) -> dict[str, str]:
    return {
        "patient": record.call.patient_id,
        "order": record.order_key,
        "hook": record.call.hook,
        "data": "prefetch" if record.call.with_prefetch else "fetch",
    }


@blueprint.get(f"{PRESCRIBE}/calls/<hook_instance>")
def call_page(hook_instance: str) -> tuple[str, int] | Response:
    record = _calls().get(hook_instance)
    if record is None:
        return _gone()
    return _page(chosen=_chosen(record), record=record)


def _gone() -> Response:
    return error_page(
        "This call is no longer held",
        "The sandbox keeps only its latest calls, in memory: send the order again.",
        404,
    )


def _feedback(card: CardView) -> tuple[dict[str, Any], str]:
    """The feedback body for the form's choice, and the line the card shows once stored."""
    form = request.form
    if form.get("outcome") == "accepted":
        # CDS Hooks 2.0 Feedback: acceptedSuggestions is required for an accepted outcome.
        suggestion = card.suggestion(form.get("suggestion") or "")
        if suggestion is None:
            raise FormError("That suggestion is not on this card.")
        body = feedback_body(card.uuid, "accepted", suggestion=suggestion.uuid)
        return body, f"Accepted: {suggestion.label}"
    if form.get("outcome") == "overridden":
        reason = card.reason(form.get("reason") or "")
        if reason is None:
            raise FormError("Choose one of the card's override reasons.")
        comment = (form.get("comment") or "").strip()[:MAX_COMMENT_CHARS] or None
        body = feedback_body(card.uuid, "overridden", reason=reason.coding, comment=comment)
        return body, f"Overridden: {reason.display}"
    raise FormError("Accept or override the card.")


@blueprint.post(f"{PRESCRIBE}/calls/<hook_instance>/feedback")
def feedback(hook_instance: str) -> BaseResponse | tuple[str, int]:
    record = _calls().get(hook_instance)
    if record is None:
        return _gone()
    card = record.card(request.form.get("card") or "")
    try:
        if card is None:
            raise FormError("That card is not part of this answer.")
        body, done = _feedback(card)
    except FormError as exc:
        return _page(400, chosen=_chosen(record), record=record, form_error=str(exc))
    urls = current_urls()
    answer = post_signed(f"{record.url}/feedback", body, _key(), urls, _http())
    stored = "feedback stored" if answer.ok else f"feedback not stored ({answer.error})"
    record.feedback[card.uuid] = f"{done} - {stored}"
    return redirect(f"{PRESCRIBE}/calls/{hook_instance}#card-{card.uuid}", code=303)
