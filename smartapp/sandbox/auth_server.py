"""The sandbox's SMART authorization server (SMART App Launch 2.2 app-launch; issue 5 item 1):
``GET /sandbox/auth/authorize``, ``POST /sandbox/auth/token``, ``GET /sandbox/auth/style.json``.

It plays the EHR's part in a real EHR launch of our app, as the end-to-end test server
(tests/oauth_server/server.mjs) does, with no login page (the user is approved at once):

- authorize: the registered client and redirect URI (launch.json: ``client_id``,
  ``redirect_uris``) or a 400 page, never a redirect to an unregistered URI; then
  ``response_type=code``, ``state``, ``aud`` = the sandbox FHIR base, PKCE ``S256``, a scope,
  and a launch id issued by the patient picker (single use, bound to a patient and perhaps a
  CDS card's ``appContext``); errors go back to the redirect URI with the ``state``.
- token: public client (``client_id`` in the body, no secret), the code single use and
  short-lived, the same ``redirect_uri``, the ``code_verifier`` checked against the challenge;
  the response carries ``patient``, ``need_patient_banner``, ``smart_style_url``, ``fhirUser``,
  ``scope``, ``expires_in``, a rotating ``refresh_token`` and ``appContext`` when the launch had
  one. Refresh tokens are single use.

Access tokens are opaque random strings held in memory, each bound to one patient and its
granted scopes; the FHIR API (``fhir_api``) checks them. No ``id_token`` is issued, so
``openid`` is not granted and ``sso-openid-connect`` is not advertised.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, Flask, Response, jsonify, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from smartapp.sandbox import AUTH_PATH, SandboxUrls, current_urls, sandbox
from smartapp.smart.context import error_page
from smartapp.smart.pkce import METHOD, VERIFIER, challenge
from smartapp.smart.scopes import parse_scope

blueprint = Blueprint("sandbox_auth", __name__, url_prefix=AUTH_PATH)

FHIR_USER = "Practitioner/sandbox-clinician"
LAUNCH_TTL_S = 600.0
CODE_TTL_S = 120.0
ACCESS_TTL_S = 3600
REFRESH_TTL_S = 8 * 3600.0
PLAIN_SCOPES = frozenset({"launch", "fhirUser", "online_access", "offline_access"})
CHALLENGE_CHARS = 43  # BASE64URL of a SHA-256 digest, unpadded
SCOPES_SUPPORTED = ["launch", "fhirUser", "online_access", "offline_access",
                    "patient/*.rs", "patient/*.read"]  # fmt: skip
CAPABILITIES = [
    "launch-ehr", "client-public", "context-ehr-patient", "context-banner", "context-style",
    "permission-patient", "permission-v1", "permission-v2", "permission-online",
    "permission-offline",
]  # fmt: skip
# The sandbox EHR's own look (static/sandbox.css), handed to the app as an EHR does; every
# colour pair keeps WCAG AA contrast on the background.
STYLE = {
    "color_background": "#ffffff",
    "color_error": "#a51d2d",
    "color_highlight": "#0b5394",
    "color_success": "#26734d",
    "color_text": "#1c2330",
    "dim_border_radius": "4px",
    "dim_font_size": "15px",
    "dim_spacing_size": "16px",
    "font_family_body": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    "font_family_heading": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
}


class OAuthError(Exception):
    """An OAuth error answer: ``error`` code, description, HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.status = status


@dataclass(frozen=True)
class Grant:
    """What a token stands for: one patient, the granted scopes, the launch's appContext."""

    client_id: str
    patient: str
    scope: tuple[str, ...]
    app_context: str | None = None


@dataclass(frozen=True)
class _Code:
    grant: Grant
    redirect_uri: str
    challenge: str


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    patient: str


def granted_scopes(requested: str) -> tuple[str, ...]:
    """What the sandbox grants of a requested scope string: the launch and access scopes and
    patient-level resource scopes; ``openid`` (no id_token), user/system scopes and anything
    unknown are left out, so the app sees what it really got."""
    out = []
    for scope in dict.fromkeys(requested.split()):
        parsed = parse_scope(scope)
        if scope in PLAIN_SCOPES or (parsed is not None and parsed.context == "patient"):
            out.append(scope)
    return tuple(out)


class AuthServer:
    """Launch ids, codes, access and refresh tokens in memory; thread-safe."""

    def __init__(
        self,
        client_id: str,
        redirect_uris: tuple[str, ...],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_id = client_id
        self.redirect_uris = redirect_uris
        self.clock = clock
        self._lock = threading.Lock()
        self._launches: dict[str, tuple[float, str, str | None]] = {}
        self._codes: dict[str, tuple[float, _Code]] = {}
        self._access: dict[str, tuple[float, Grant]] = {}
        self._refresh: dict[str, tuple[float, Grant]] = {}

    @classmethod
    def for_app(cls, app: Flask) -> AuthServer:
        """The client registered in launch.json (``config["LAUNCH"]``)."""
        launch = app.config.get("LAUNCH") or {}
        uris = launch.get("redirect_uris") or []
        return cls(str(launch.get("client_id") or ""), tuple(u for u in uris if isinstance(u, str)))

    # Issued by the sandbox itself ---------------------------------------------------------

    def create_launch(self, patient: str, app_context: str | None = None) -> str:
        """A launch id for an EHR launch of ``patient`` (single use, 10 minutes)."""
        launch_id = secrets.token_urlsafe(16)
        with self._lock:
            self._prune()
            self._launches[launch_id] = (self.clock() + LAUNCH_TTL_S, patient, app_context)
        return launch_id

    def issue_token(self, patient: str, scope: str, client_id: str = "sandbox") -> IssuedToken:
        """An access token without a launch (the CDS client's ``fhirAuthorization``)."""
        grant = Grant(client_id, patient, granted_scopes(scope))
        token = self._new_access(grant)
        return IssuedToken(token, ACCESS_TTL_S, " ".join(grant.scope), patient)

    def check(self, access_token: str) -> Grant | None:
        """The grant of a current access token, or None (unknown or expired)."""
        with self._lock:
            held = self._access.get(access_token)
        if held is None or held[0] <= self.clock():
            return None
        return held[1]

    # authorize ----------------------------------------------------------------------------

    def check_client(self, query: Mapping[str, str]) -> str:
        """The redirect URI, once client and URI are known; raises before anything is
        redirected (an unregistered URI never receives a code or an error)."""
        if not self.client_id or query.get("client_id") != self.client_id:
            raise OAuthError("unauthorized_client", "unknown client_id")
        redirect_uri = query.get("redirect_uri") or ""
        if redirect_uri not in self.redirect_uris:
            raise OAuthError("invalid_request", "redirect_uri is not registered for this client")
        return redirect_uri

    def approve(self, query: Mapping[str, str], urls: SandboxUrls) -> str:
        """A code for a valid authorize request; OAuthError otherwise."""
        if query.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "response_type must be code")
        if not query.get("state"):
            raise OAuthError("invalid_request", "state is required")
        if (query.get("aud") or "").rstrip("/") != urls.fhir_base:
            raise OAuthError("invalid_request", f"aud must be {urls.fhir_base}")
        code_challenge = query.get("code_challenge") or ""
        if query.get("code_challenge_method") != METHOD or len(code_challenge) != CHALLENGE_CHARS:
            raise OAuthError("invalid_request", "PKCE with code_challenge_method S256 is required")
        scope = granted_scopes(query.get("scope") or "")
        if "launch" not in scope:
            raise OAuthError(
                "invalid_scope", "the sandbox supports EHR launch only: scope must hold launch"
            )
        patient, app_context = self._take_launch(query.get("launch") or "")
        grant = Grant(self.client_id, patient, scope, app_context)
        code = secrets.token_urlsafe(32)
        entry = _Code(grant, query["redirect_uri"], code_challenge)
        with self._lock:
            self._codes[code] = (self.clock() + CODE_TTL_S, entry)
        return code

    def _take_launch(self, launch_id: str) -> tuple[str, str | None]:
        with self._lock:
            held = self._launches.pop(launch_id, None)
        if held is None or held[0] <= self.clock():
            raise OAuthError("invalid_request", "unknown, used or expired launch")
        return held[1], held[2]

    # token --------------------------------------------------------------------------------

    def token(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        """The token response for a code or refresh grant; OAuthError otherwise."""
        if authorization:
            raise OAuthError("invalid_client", "this public client must not authenticate", 401)
        if form.get("client_id") != self.client_id or not self.client_id:
            raise OAuthError("invalid_client", "unknown or missing client_id", 401)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = self._redeem_code(form)
        elif grant_type == "refresh_token":
            grant = self._redeem_refresh(form)
        else:
            raise OAuthError("unsupported_grant_type", "grant_type is not supported")
        return self._response(grant)

    def _redeem_code(self, form: Mapping[str, str]) -> Grant:
        with self._lock:
            held = self._codes.pop(form.get("code") or "", None)
        if held is None or held[0] <= self.clock():
            raise OAuthError("invalid_grant", "unknown, used or expired authorization code")
        entry = held[1]
        if form.get("redirect_uri") != entry.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorize request")
        verifier = form.get("code_verifier") or ""
        if not VERIFIER.fullmatch(verifier) or not hmac.compare_digest(
            challenge(verifier), entry.challenge
        ):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        return entry.grant

    def _redeem_refresh(self, form: Mapping[str, str]) -> Grant:
        with self._lock:
            held = self._refresh.pop(form.get("refresh_token") or "", None)
        if held is None or held[0] <= self.clock():
            raise OAuthError("invalid_grant", "unknown, used or expired refresh token")
        return held[1]

    def _new_access(self, grant: Grant) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._prune()
            self._access[token] = (self.clock() + ACCESS_TTL_S, grant)
        return token

    def _response(self, grant: Grant) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self._new_access(grant),
            "token_type": "Bearer",
            "expires_in": ACCESS_TTL_S,
            "scope": " ".join(grant.scope),
            "patient": grant.patient,
            "need_patient_banner": True,
            "smart_style_url": current_urls().style_url,
        }
        if "fhirUser" in grant.scope:
            body["fhirUser"] = FHIR_USER
        if grant.app_context is not None:
            body["appContext"] = grant.app_context
        if {"online_access", "offline_access"} & set(grant.scope):
            refresh_token = secrets.token_urlsafe(32)
            with self._lock:
                self._refresh[refresh_token] = (self.clock() + REFRESH_TTL_S, grant)
            body["refresh_token"] = refresh_token
        return body

    def _prune(self) -> None:
        """Forget what has expired (called with the lock held)."""
        now = self.clock()
        for table in (self._launches, self._codes, self._access, self._refresh):
            for key in [k for k, v in table.items() if v[0] <= now]:
                del table[key]


def smart_configuration(urls: SandboxUrls) -> dict[str, Any]:
    """``{fhir base}/.well-known/smart-configuration`` (SMART App Launch 2.2 conformance)."""
    return {
        "authorization_endpoint": urls.authorize_url,
        "token_endpoint": urls.token_url,
        "token_endpoint_auth_methods_supported": ["none"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": [METHOD],
        "scopes_supported": SCOPES_SUPPORTED,
        "capabilities": CAPABILITIES,
    }


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@blueprint.get("/authorize")
def authorize() -> BaseResponse:
    query = {k: v for k, v in request.args.items() if isinstance(v, str)}
    auth = sandbox().auth
    try:
        redirect_uri = auth.check_client(query)
    except OAuthError as exc:
        return error_page("The app's sign-in request was refused", str(exc), 400)
    state = {"state": query["state"]} if query.get("state") else {}
    try:
        code = auth.approve(query, current_urls())
    except OAuthError as exc:
        params = {"error": exc.error, "error_description": str(exc), **state}
        return redirect(_with_query(redirect_uri, params), code=302)
    return redirect(_with_query(redirect_uri, {"code": code, **state}), code=302)


@blueprint.post("/token")
def token() -> Response:
    form = {k: v for k, v in request.form.items() if isinstance(v, str)}
    try:
        body = sandbox().auth.token(form, request.headers.get("Authorization"))
    except OAuthError as exc:
        response = jsonify({"error": exc.error, "error_description": str(exc)})
        response.status_code = exc.status
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="sandbox"'
        return _no_store(response)
    return _no_store(jsonify(body))


@blueprint.get("/style.json")
def style() -> Response:
    return jsonify(STYLE)
