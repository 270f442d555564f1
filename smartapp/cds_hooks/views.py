"""The CDS Hooks 2.0 HTTP surface (design.md, Contract 2; standards-checklist.md, CDS Hooks).

``GET /cds-services`` (discovery), ``POST /cds-services/{id}`` (a hook call) and
``POST /cds-services/{id}/feedback``. Every call but the CORS preflight carries the CDS
client's JWT, checked before anything else; a failure is a bare 401. Each hook call leaves one
audit event (identifiers, finding codes, status, latency: never a token, never clinical data).
The views only translate HTTP: validation lives in ``hook_request``/``feedback``, the call
pipeline in ``service``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask.sansio.app import App
from werkzeug.exceptions import HTTPException

from smartapp.cds_hooks import discovery
from smartapp.cds_hooks.feedback import parse_feedback
from smartapp.cds_hooks.hook_request import parse_hook_request, read_json_body
from smartapp.cds_hooks.jwks import https_fetcher
from smartapp.cds_hooks.jwt_auth import CdsJwtVerifier, JwtRejected
from smartapp.cds_hooks.service import ServiceSettings, call_hook
from smartapp.errors import ClientError
from smartapp.fhir_client import make_session
from smartapp.persistence import Database, store
from smartapp.persistence.models import ID_LEN, PATIENT_LEN, URL_LEN
from smartapp.persistence.records import AuditEvent

log = logging.getLogger(__name__)

blueprint = Blueprint("cds_hooks", __name__)

PREFIX = "/cds-services"
ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE_S = 86400
VERIFIER = "smartapp.cds_jwt"
FHIR_SESSION = "smartapp.fhir_session"
#: Tests and the sandbox may put a ``Callable[[], date]`` here to fix the evaluation date.
TODAY = "smartapp.today"


@blueprint.record_once
def _setup(state: BlueprintSetupState) -> None:
    """Build the JWT verifier (once per app) and the pooled session for FHIR fallback."""
    app = state.app
    app.extensions[FHIR_SESSION] = make_session(pool_maxsize=4 * int(app.config["FHIR_PARALLEL"]))
    if app.config["CDS_VERIFY_JWT"]:
        app.extensions[VERIFIER] = build_verifier(app)


def build_verifier(app: App) -> CdsJwtVerifier:
    def replay(issuer: str, jti: str, expires_at: datetime) -> bool:
        return store.remember_jti(database(app), issuer, jti, expires_at)

    return CdsJwtVerifier(
        app.config["CDS_TRUSTED_ISSUERS"],
        leeway_s=int(app.config["CDS_JWT_LEEWAY_S"]),
        max_age_s=int(app.config["CDS_JWT_MAX_AGE_S"]),
        jwks_cache_s=int(app.config["CDS_JWKS_CACHE_S"]),
        fetch_json=https_fetcher(
            allow_loopback_http=bool(app.config["CDS_JWKS_ALLOW_LOOPBACK_HTTP"])
        ),
        replay=replay,
    )


def database(app: App) -> Database:
    db: Database = app.extensions["smartapp.db"]
    return db


def audience() -> str:
    """The exact URL called (the JWT ``aud``): the configured public base URL plus the path
    when behind a proxy, else the URL as this server saw it, without its query."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    return f"{str(base).rstrip('/')}{request.path}" if base else request.base_url


def authenticate() -> None:
    """Refuse the call with a bare 401 unless its JWT verifies (skipped when verification is
    switched off; the app warned at start)."""
    verifier: CdsJwtVerifier | None = current_app.extensions.get(VERIFIER)
    if verifier is None:
        return
    try:
        client = verifier.verify(request.headers.get("Authorization"), audience())
    except JwtRejected as exc:
        log.warning("CDS client JWT rejected: %s (iss=%s, jti=%s)", exc.reason, exc.issuer, exc.jti)
        raise ClientError(401, "unauthorized") from None
    log.debug("CDS client JWT accepted (iss=%s, jti=%s)", client.issuer, client.jti)


def today() -> date:
    """The evaluation date: today in UTC, the only clock read of a hook call."""
    fixed = current_app.extensions.get(TODAY)
    return fixed() if fixed is not None else datetime.now(UTC).date()


def known_service(service_id: str) -> dict[str, Any]:
    found = discovery.service(service_id)
    if found is None:
        raise ClientError(404, f"no CDS service {service_id[:ID_LEN]!r}")
    return found


def preflight() -> Response:
    """CORS preflight, answered without a JWT (the browser sends none)."""
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
    response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
    response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
    return response


@blueprint.after_app_request
def _cors(response: Response) -> Response:
    """CORS on every CDS response, errors included; ``WWW-Authenticate`` on a 401."""
    if request.path != PREFIX and not request.path.startswith(PREFIX + "/"):
        return response
    allowed = current_app.config["CDS_ALLOWED_ORIGINS"]
    origin = request.headers.get("Origin")
    if "*" in allowed:
        response.headers["Access-Control-Allow-Origin"] = "*"
    else:
        response.vary.add("Origin")
        if origin is not None and origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


@blueprint.route(PREFIX, methods=["GET", "OPTIONS"])
def discovery_view() -> Response:
    if request.method == "OPTIONS":
        return preflight()
    authenticate()
    return jsonify(discovery.discovery_document())


@dataclass
class Trail:
    """What the audit event of one hook call records."""

    service_id: str
    hook: str = ""
    hook_instance: str = ""
    patient_id: str | None = None
    fhir_server: str | None = None
    finding_codes: tuple[str, ...] = ()
    status: int = 500
    started: float = field(default_factory=time.perf_counter)

    def peek(self, body: Any) -> None:
        """Identifiers of a body that may yet fail validation, for the audit of a 400."""
        if not isinstance(body, dict):
            return
        instance, context = body.get("hookInstance"), body.get("context")
        if isinstance(instance, str):
            self.hook_instance = instance
        patient = context.get("patientId") if isinstance(context, dict) else None
        if isinstance(patient, str):
            self.patient_id = patient
        self.fhir_server = origin(body.get("fhirServer"))


def origin(url: Any) -> str | None:
    """``scheme://host[:port]`` of a URL: the audit keeps which EHR called, not the path."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}" if parts.scheme and host else None


def _audit(trail: Trail) -> None:
    latency_ms = round((time.perf_counter() - trail.started) * 1000, 1)
    event = AuditEvent(
        service_id=trail.service_id[:ID_LEN],
        hook=trail.hook,
        hook_instance=trail.hook_instance[:ID_LEN],
        patient_id=trail.patient_id[:PATIENT_LEN] if trail.patient_id else None,
        finding_codes=trail.finding_codes,
        latency_ms=latency_ms,
        status=trail.status,
        at=datetime.now(UTC),
        fhir_server=trail.fhir_server[:URL_LEN] if trail.fhir_server else None,
    )
    log.info(
        "CDS hook %r instance=%r patient=%r status=%d codes=%s %.1f ms",
        event.service_id, event.hook_instance, event.patient_id, event.status,
        ",".join(event.finding_codes) or "-", latency_ms,
    )  # fmt: skip
    try:
        store.add_audit(database(current_app), event)
    except Exception:
        # The clinician's cards matter more than the audit row; the failure is logged loudly.
        log.exception("CDS hook audit event could not be stored")


def _run_hook(service_id: str, trail: Trail) -> Response:
    hook = known_service(service_id)["hook"]
    trail.hook = hook
    body = read_json_body(request.content_type, request.get_data(cache=False))
    trail.peek(body)
    hook_request = parse_hook_request(body, hook)
    settings = ServiceSettings.from_config(
        current_app.config, current_app.extensions["smartapp.rules"]
    )
    outcome = call_hook(
        service_id,
        hook_request,
        settings,
        today(),
        session=current_app.extensions.get(FHIR_SESSION),
    )
    trail.finding_codes = outcome.finding_codes
    return jsonify({"cards": outcome.cards})


@blueprint.route(f"{PREFIX}/<service_id>", methods=["POST", "OPTIONS"])
def hook_view(service_id: str) -> Response:
    if request.method == "OPTIONS":
        return preflight()
    authenticate()
    trail = Trail(service_id)
    try:
        response = _run_hook(service_id, trail)
        trail.status = response.status_code
        return response
    except ClientError as exc:
        trail.status = exc.status
        raise
    except HTTPException as exc:
        trail.status = exc.code or 500
        raise
    finally:
        _audit(trail)


@blueprint.route(f"{PREFIX}/<service_id>/feedback", methods=["POST", "OPTIONS"])
def feedback_view(service_id: str) -> Response:
    if request.method == "OPTIONS":
        return preflight()
    authenticate()
    known_service(service_id)
    items = parse_feedback(read_json_body(request.content_type, request.get_data(cache=False)))
    stored = store.add_feedback(database(current_app), service_id, items)
    log.info("CDS feedback for %s: %d item(s), %d new", service_id, len(items), stored)
    return Response(status=200)
