"""What the rest of the app uses of a SMART launch (design.md Contract 3; issue 4 item 1):
the current launch from the session cookie, a FHIR client with a fresh token, what the granted
scopes allow, and the HTML error page.

Refresh (standards-checklist.md "Callback and token" ★): a token expiring within the margin
(60 s) is refreshed before use; on a FHIR 401 the caller asks once more with
``force_refresh=True`` and, if that fails too, shows "please relaunch" (:class:`LaunchExpired`).
Refreshes of one session are serialised in this process, and a refresh that loses a race with
another process adopts the tokens that process stored, so a rotated refresh token is never sent
twice from here.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from flask import Response, current_app, g, render_template, session

from smartapp.fhir_client import FhirClient, FhirError
from smartapp.smart import scopes
from smartapp.smart.client_auth import AppKeys, oauth_session
from smartapp.smart.discovery import DiscoveryCache
from smartapp.smart.registration import Registration
from smartapp.smart.tokens import LaunchRecord, RefreshError, TokenStore, refresh

EXTENSION = "smartapp.smart"
SESSION_ID = "sid"  # the only launch data in the browser: an opaque id


class LaunchExpired(Exception):
    """The launch can no longer reach the FHIR server (session ended, refresh refused)."""


@dataclass(frozen=True)
class LaunchContext:
    session_id: str
    fhir_base: str
    patient_id: str | None
    encounter_id: str | None
    fhir_user: str | None
    need_patient_banner: bool
    smart_style_url: str | None
    granted_scopes: tuple[str, ...]
    app_context: str | None
    intent: str | None
    fhir_context: tuple[dict[str, Any], ...]


@dataclass
class SmartRuntime:
    """Per-app SMART state, built at start by ``launch.init_smart``."""

    registration: Registration
    keys: AppKeys
    store: TokenStore
    discovery: DiscoveryCache
    http: requests.Session
    http_timeout_s: float
    fhir_timeout_s: float
    fhir_max_pages: int
    allow_http: bool
    state_ttl: timedelta
    session_ttl: timedelta
    refresh_margin: timedelta
    missing_scope_is_requested: bool
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def oauth(self, token_url: str, scope: str | None = None) -> Any:
        return oauth_session(
            self.registration, self.keys, token_url, scope=scope,
            timeout=self.http_timeout_s, clock=self.clock,
        )  # fmt: skip


def runtime() -> SmartRuntime:
    rt: SmartRuntime = current_app.extensions[EXTENSION]
    return rt


def launch_context(session_id: str, record: LaunchRecord) -> LaunchContext:
    p = record.params
    return LaunchContext(
        session_id=session_id,
        fhir_base=record.fhir_base,
        patient_id=p.patient,
        encounter_id=p.encounter,
        fhir_user=p.fhir_user,
        need_patient_banner=p.need_patient_banner,
        smart_style_url=p.smart_style_url,
        granted_scopes=record.tokens.scope,
        app_context=p.app_context,
        intent=p.intent,
        fhir_context=p.fhir_context,
    )


def current_launch() -> LaunchContext | None:
    """The launch named by this browser's session cookie, or None (no launch, or it ended)."""
    if "smart_launch" not in g:
        sid = session.get(SESSION_ID)
        record = runtime().store.load(sid) if isinstance(sid, str) and sid else None
        g.smart_launch = launch_context(sid, record) if record and isinstance(sid, str) else None
    launch: LaunchContext | None = g.smart_launch
    return launch


def can_read(launch: LaunchContext, resource_type: str) -> bool:
    """Whether the granted (not the requested) scopes allow an unconstrained read and search
    of ``resource_type`` (v1 ``.read`` or v2 ``.rs``; granular scopes do not count)."""
    return scopes.can_read(launch.granted_scopes, resource_type)


_locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
_locks_guard = threading.Lock()


def _session_lock(session_id: str) -> threading.Lock:
    with _locks_guard:
        lock = _locks.get(session_id)
        if lock is None:
            lock = threading.Lock()
            _locks[session_id] = lock
        return lock


def _refreshed(rt: SmartRuntime, session_id: str, seen: LaunchRecord, force: bool) -> LaunchRecord:
    lock = _session_lock(session_id)
    with lock:
        record = rt.store.load(session_id)
        if record is None:
            raise LaunchExpired("the session has ended")
        now = rt.clock()
        if record.tokens.access_token != seen.tokens.access_token or not (
            force or record.tokens.expiring(now, rt.refresh_margin)
        ):
            return record  # another request refreshed it meanwhile
        try:
            fresh = refresh(record, rt.oauth(record.token_endpoint), now)
        except RefreshError as exc:
            latest = rt.store.load(session_id)
            if latest is not None and latest.tokens.refresh_token != record.tokens.refresh_token:
                return latest  # another process rotated the refresh token first
            raise LaunchExpired(str(exc)) from None
        rt.store.save(session_id, fresh)
        return fresh


def fhir_client(launch: LaunchContext, *, force_refresh: bool = False) -> FhirClient:
    """A client for the launch's FHIR server with a current access token: refreshed when it
    expires within the margin, or always with ``force_refresh`` (after a 401). Raises
    :class:`LaunchExpired` when the session has ended or cannot be refreshed."""
    rt = runtime()
    record = rt.store.load(launch.session_id)
    if record is None:
        raise LaunchExpired("the session has ended")
    if force_refresh or record.tokens.expiring(rt.clock(), rt.refresh_margin):
        record = _refreshed(rt, launch.session_id, record, force_refresh)
    if "smart_launch" in g and g.smart_launch is not None:
        g.smart_launch = replace(g.smart_launch, granted_scopes=record.tokens.scope)
    return FhirClient(
        record.fhir_base,
        record.tokens.access_token,
        timeout=rt.fhir_timeout_s,
        max_pages=rt.fhir_max_pages,
    )


def error_page(title: str, message: str, status: int, *, relaunch: bool = False) -> Response:
    """An HTML error page (smart/error.html): never a stack trace, never JSON."""
    body = render_template("smart/error.html", title=title, message=message, relaunch=relaunch)
    return Response(body, status=status, mimetype="text/html")


def relaunch_page() -> Response:
    return error_page(
        "Please launch the app again",
        "Your session with the EHR has ended or could not be renewed. Open the app again "
        "from the patient's chart in the EHR.",
        401,
        relaunch=True,
    )


def fhir_error_page(error: FhirError) -> Response:
    """The page for a FHIR request refused by the server (401 after one refresh, or 403)."""
    if error.status == 401:
        return relaunch_page()
    if error.status == 403:
        return error_page(
            "Access refused by the EHR",
            "The EHR refused to share this patient's data with the app. Your access may not "
            "include this patient or these records; ask your EHR administrator.",
            403,
        )
    return error_page(
        "The EHR could not be reached",
        "The patient's data could not be fetched from the EHR just now. Try again shortly.",
        502,
    )
