"""The SMART launch views (SMART App Launch 2.2, app-launch; design.md Contract 3; issue 4
item 1): ``GET /launch``, ``GET /callback``, ``GET /.well-known/jwks.json``, ``POST /logout``
and ``GET /smart/style.css``.

``/launch`` takes an EHR launch (``iss`` and ``launch``) or a standalone one (``iss`` only, or
the configured default server), checks ``iss`` against the allow list, discovers the endpoints
and redirects to the authorize endpoint with PKCE S256, a fresh ``state`` (256 bits), ``aud`` =
``iss`` exactly and the scopes for the server's SMART version. ``/callback`` consumes the state
once, exchanges the code, keeps the tokens on the server and sends the browser to ``/app``
(``/app#<finding>`` when a CDS card's ``appContext`` names one). Every failure is an HTML page
that says what happened and never redirects again, so an error cannot loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from dataclasses import replace
from datetime import timedelta
from typing import Any

import requests
from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
from flask import Blueprint, Flask, Response, jsonify, redirect, render_template, request, session
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from smartapp.fhir_client import make_session, shown
from smartapp.persistence import Database
from smartapp.rules.findings import FINDING_CODES
from smartapp.smart import idtoken, style
from smartapp.smart.client_auth import load_app_keys
from smartapp.smart.context import (
    EXTENSION,
    SESSION_ID,
    LaunchExpired,
    SmartRuntime,
    error_page,
    relaunch_page,
    runtime,
)
from smartapp.smart.discovery import DiscoveryCache, DiscoveryError, SmartConfiguration, discover
from smartapp.smart.pkce import new_verifier
from smartapp.smart.registration import load_registration
from smartapp.smart.scopes import requested_scopes
from smartapp.smart.security import renew_csrf_token
from smartapp.smart.tokens import (
    LaunchParams,
    LaunchRecord,
    PendingLaunch,
    StateError,
    TokenResponseError,
    TokenSet,
    TokenStore,
    make_cipher,
    read_token_response,
    state_digest,
)

log = logging.getLogger(__name__)

blueprint = Blueprint("smart_launch", __name__)

APP_HOME = "/app"
PENDING_KEY = "pending"  # state digests this browser started, when it keeps cookies
PENDING_KEEP = 5
DIGEST_CHARS = 32
MAX_PARAM_CHARS = 2048
OAUTH_ERRORS = {
    "access_denied": "Access was declined, so the app cannot show this patient's data.",
    "invalid_scope": "The EHR did not accept the access the app asks for. Your EHR "
    "administrator may need to update the app's registration.",
    "unauthorized_client": "The EHR does not allow this app to sign in this way. Your EHR "
    "administrator may need to update the app's registration.",
}


def init_smart(app: Flask) -> None:
    """Read the registration and keys (a bad one stops start-up) and register the views."""
    config = app.config
    http = make_session()
    timeout = float(config["SMART_HTTP_TIMEOUT_S"])
    allow_http = bool(config["FHIR_ALLOW_HTTP"])
    database: Database = app.extensions["smartapp.db"]

    def fetch(iss: str) -> SmartConfiguration:
        return discover(iss, http=http, timeout=timeout, allow_http=allow_http)

    app.extensions[EXTENSION] = SmartRuntime(
        registration=load_registration(config),
        keys=load_app_keys(config["SMART_PRIVATE_JWKS_PATH"], app.instance_path),
        store=TokenStore(database, make_cipher(config["TOKEN_KEY"], app.instance_path)),
        discovery=DiscoveryCache(float(config["SMART_DISCOVERY_CACHE_S"]), fetch),
        http=http,
        http_timeout_s=timeout,
        fhir_timeout_s=float(config["FHIR_TIMEOUT_S"]),
        fhir_max_pages=int(config["FHIR_MAX_PAGES"]),
        allow_http=allow_http,
        state_ttl=timedelta(seconds=float(config["SMART_STATE_TTL_S"])),
        session_ttl=timedelta(seconds=float(config["SMART_SESSION_TTL_S"])),
        refresh_margin=timedelta(seconds=float(config["SMART_REFRESH_MARGIN_S"])),
        missing_scope_is_requested=bool(config["SMART_MISSING_SCOPE_IS_REQUESTED"]),
    )
    app.register_blueprint(blueprint)
    app.register_error_handler(LaunchExpired, lambda _exc: relaunch_page())


def _param(name: str) -> str | None:
    value = request.args.get(name)
    if value is not None and (not value or len(value) > MAX_PARAM_CHARS):
        raise ValueError(name)
    return value


def _refused(title: str, message: str, status: int = 400) -> Response:
    return error_page(title, message, status)


@blueprint.get("/launch")
def launch() -> BaseResponse:
    rt = runtime()
    try:
        iss, launch_id = _param("iss"), _param("launch")
    except ValueError as exc:
        return _refused(
            "The launch link is malformed", f"The {exc} parameter is empty or too long."
        )
    if iss is None and launch_id is not None:
        return _refused("The launch link is incomplete", "The EHR sent a launch without iss.")
    iss = iss or rt.registration.default_fhir_server
    if iss is None:
        return _refused("No EHR named", "Open the app from the EHR: no FHIR server was named.")
    if not rt.registration.iss_allowed(iss):
        log.warning("launch refused: iss %s is not on the allow list", shown(iss))
        return _refused(
            "This EHR is not registered",
            f"The app is not registered to work with the FHIR server {shown(iss)}. Ask your "
            "EHR administrator to add it to the app's allowed servers.",
            403,
        )
    try:
        smart = rt.discovery.get(iss)
    except DiscoveryError as exc:
        log.warning("discovery failed for %s: %s", shown(iss), exc)
        return _refused("The EHR's sign-in service could not be found", str(exc), 502)
    return _authorize(rt, smart, iss, launch_id)


def _authorize(
    rt: SmartRuntime, smart: SmartConfiguration, iss: str, launch_id: str | None
) -> BaseResponse:
    method = rt.registration.token_endpoint_auth_method
    supported = smart.token_endpoint_auth_methods
    if method != "none" and supported is not None and method not in supported:
        return _refused(
            "The EHR does not support this app's sign-in method",
            f"The app is registered as {rt.registration.client_type}, which the EHR does not "
            "advertise. Ask your EHR administrator.",
            502,
        )
    scope = " ".join(
        requested_scopes(
            rt.registration.scopes,
            version=smart.scope_version(),
            ehr_launch=launch_id is not None,
            offline=rt.registration.offline_access,
        )
    )
    state, verifier = secrets.token_urlsafe(32), new_verifier()
    pending = PendingLaunch(
        iss=iss, launch=launch_id, code_verifier=verifier, requested_scope=scope,
        token_endpoint=smart.token_endpoint, issuer=smart.issuer, jwks_uri=smart.jwks_uri,
    )  # fmt: skip
    rt.store.put_pending(state, pending, rt.clock() + rt.state_ttl)
    digests = [d for d in session.get(PENDING_KEY, []) if isinstance(d, str)]
    session[PENDING_KEY] = [*digests, state_digest(state)[:DIGEST_CHARS]][-PENDING_KEEP:]
    extra = {"launch": launch_id} if launch_id is not None else {}
    with rt.oauth(smart.token_endpoint, scope=scope) as oauth:
        url, _ = oauth.create_authorization_url(
            smart.authorization_endpoint, state=state, code_verifier=verifier, aud=iss, **extra
        )
    log.info(
        "authorize redirect for %s (%s scopes, %s launch)",
        shown(iss),
        smart.scope_version(),
        "EHR" if launch_id is not None else "standalone",
    )
    return redirect(url, code=302)


def _oauth_error(error: str, description: str | None) -> Response:
    log.info("authorization ended with OAuth error %r", error[:64])
    message = OAUTH_ERRORS.get(error, "The EHR could not complete the sign-in.")
    if description:
        message = f"{message} The EHR said: {description[:300]}"
    return _refused("Sign-in did not complete", f"{message} (error: {error[:64]})", 403)


def _started_elsewhere(state: str) -> bool:
    """A browser that kept our cookie and never started this state: the callback is not its
    own (login CSRF). A browser without the cookie (an iframe dropping it) is not judged."""
    started = session.get(PENDING_KEY)
    return isinstance(started, list) and state_digest(state)[:DIGEST_CHARS] not in started


@blueprint.get("/callback")
def callback() -> BaseResponse:
    rt = runtime()
    state, error = request.args.get("state"), request.args.get("error")
    if error:
        if state:
            with contextlib.suppress(StateError):  # consumed; the error page follows anyway
                rt.store.take_pending(state, rt.clock() + rt.state_ttl)
        return _oauth_error(error, request.args.get("error_description"))
    if not state:
        return _refused("Sign-in did not complete", "The EHR's answer had no state parameter.")
    if _started_elsewhere(state):
        log.warning("callback state was not started by this browser")
        return _refused(
            "Sign-in did not start here",
            "This sign-in answer belongs to a launch that this browser did not start. Open "
            "the app again from the EHR.",
        )
    try:
        pending = rt.store.take_pending(state, rt.clock() + rt.state_ttl)
    except StateError as exc:
        log.warning("callback refused: state %s", exc)
        return _refused(
            "This sign-in link has expired",
            "The sign-in answer is unknown, has expired or was already used. Open the app "
            "again from the EHR.",
        )
    code = request.args.get("code")
    if not code:
        return _refused("Sign-in did not complete", "The EHR's answer had no code.")
    return _exchange(rt, pending, code)


def _exchange(rt: SmartRuntime, pending: PendingLaunch, code: str) -> BaseResponse:
    now = rt.clock()
    try:
        with rt.oauth(pending.token_endpoint) as oauth:
            body = oauth.fetch_token(
                pending.token_endpoint, grant_type="authorization_code", code=code,
                code_verifier=pending.code_verifier, redirect_uri=rt.registration.redirect_uri,
            )  # fmt: skip
        tokens, params = read_token_response(
            dict(body), requested=pending.requested_scope, now=now,
            missing_scope_is_requested=rt.missing_scope_is_requested,
        )  # fmt: skip
    except OAuthError as exc:
        log.warning("token endpoint refused the code: %r", str(exc.error)[:64])
        return _refused(
            "The EHR refused to issue an access token",
            f"The token request was refused (error: {str(exc.error)[:64]}). Open the app again "
            "from the EHR.",
            502,
        )
    except (requests.RequestException, ValueError, TokenResponseError) as exc:
        log.warning("token request failed: %s", type(exc).__name__)
        detail = str(exc) if isinstance(exc, TokenResponseError) else "no usable answer"
        return _refused(
            "The EHR's token service failed", f"The token request failed: {detail}.", 502
        )
    return _start_session(rt, pending, tokens, _with_identity(rt, pending, tokens, params))


def _with_identity(
    rt: SmartRuntime, pending: PendingLaunch, tokens: TokenSet, params: LaunchParams
) -> LaunchParams:
    """``fhirUser`` from a validated id_token when there is one; else the token response's
    own ``fhirUser`` member (sent to us directly over TLS), never an unvalidated claim."""
    if tokens.id_token is None:
        return params
    try:
        claims = idtoken.validated_claims(
            tokens.id_token, issuer=pending.issuer, jwks_uri=pending.jwks_uri,
            client_id=rt.registration.client_id, http=rt.http, timeout=rt.http_timeout_s,
            now=rt.clock(),
        )  # fmt: skip
    except idtoken.IdTokenError as exc:
        log.info("id_token not used: %s", exc)
        return params
    user = claims.get("fhirUser") or claims.get("profile")
    return replace(params, fhir_user=user) if isinstance(user, str) else params


def _start_session(
    rt: SmartRuntime, pending: PendingLaunch, tokens: TokenSet, params: LaunchParams
) -> BaseResponse:
    values: dict[str, str] = {}
    if params.smart_style_url:
        values = style.fetch_style(
            params.smart_style_url, http=rt.http, timeout=rt.http_timeout_s,
            allow_http=rt.allow_http,
        )  # fmt: skip
    record = LaunchRecord(
        fhir_base=pending.iss, token_endpoint=pending.token_endpoint, tokens=tokens,
        params=params, expires_at=rt.clock() + rt.session_ttl, style=values,
    )  # fmt: skip
    session_id = secrets.token_urlsafe(32)
    rt.store.save(session_id, record)
    session.clear()  # a new launch: nothing from an earlier one survives, CSRF token included
    session[SESSION_ID] = session_id
    renew_csrf_token()
    log.info("launch complete for %s", shown(pending.iss))
    return redirect(landing(params.app_context, params.patient), code=302)


def landing(app_context: str | None, patient: str | None) -> str:
    """``/app``, or ``/app#<finding>`` when a card's appContext names a known finding for
    this patient (the appContext is untrusted: anything else is ignored)."""
    try:
        data: Any = json.loads(app_context) if app_context else None
    except ValueError:
        return APP_HOME
    if not isinstance(data, dict) or data.get("finding") not in FINDING_CODES:
        return APP_HOME
    if data.get("patient") not in (None, patient):
        log.warning("appContext names another patient than the launch: not followed")
        return APP_HOME
    return f"{APP_HOME}#{data['finding']}"


@blueprint.get("/.well-known/jwks.json")
def jwks() -> Response:
    response = jsonify(runtime().keys.public_jwks)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@blueprint.post("/logout")
def logout() -> Response:
    session_id = session.get(SESSION_ID)
    if isinstance(session_id, str) and session_id:
        runtime().store.delete(session_id)
    session.clear()
    return Response(render_template("smart/signed_out.html"), mimetype="text/html")


@blueprint.get("/smart/style.css")
def style_css() -> Response:
    session_id = session.get(SESSION_ID)
    record = runtime().store.load(session_id) if isinstance(session_id, str) else None
    response = Response(style.css(record.style if record else {}), mimetype="text/css")
    response.headers["Cache-Control"] = "private, no-store"
    return response


@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return error_page(exc.name, exc.description or exc.name, exc.code or 500)


@blueprint.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, LaunchExpired):
        return relaunch_page()
    log.exception("unhandled error in the SMART launch")
    return error_page(
        "Something went wrong", "The app could not complete this step. Try again.", 500
    )
