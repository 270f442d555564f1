"""The embedded sandbox EHR (issue 5; design.md "Sandbox (the embedded default)").

The synthetic patients served by an in-memory FHIR R4 API (``/sandbox/fhir``), a SMART
authorization server that auto-approves (``/sandbox/auth``), and a patient picker that performs
a real EHR launch of our own app (``/sandbox/``). It is registered only when SANDBOX_ENABLED is
on (``smartapp demo`` switches it on); the product never imports this package otherwise.

Every URL the sandbox hands out (FHIR base, issuer, JWKS) comes from :class:`SandboxUrls`, so
the demo configuration, the auth server, the FHIR API and the CDS client page agree on them.

Launch ids, codes and tokens live in the memory of one process: serve the sandbox from one
process (the demo's threaded server; ``smartapp serve --workers 1`` when enabled by hand,
with SMART_ALLOWED_ISS naming the sandbox FHIR base and PUBLIC_BASE_URL the app's origin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app, request

if TYPE_CHECKING:
    from smartapp.sandbox.auth_server import AuthServer
    from smartapp.sandbox.store import FhirStore

EXTENSION = "smartapp.sandbox"
PREFIX = "/sandbox"
FHIR_PATH = f"{PREFIX}/fhir"
AUTH_PATH = f"{PREFIX}/auth"
JWKS_PATH = f"{PREFIX}/jwks.json"
# Blueprints called by servers, not by a browser with our session cookie: no CSRF token.
CSRF_EXEMPT = ("sandbox_auth", "sandbox_fhir")


@dataclass(frozen=True)
class SandboxUrls:
    """The sandbox's absolute URLs under one origin (``http://127.0.0.1:8080``)."""

    origin: str

    @property
    def fhir_base(self) -> str:
        """The FHIR base, the ``iss`` of an EHR launch and the ``aud`` the app sends."""
        return f"{self.origin}{FHIR_PATH}"

    @property
    def issuer(self) -> str:
        """The sandbox as a CDS client (JWT ``iss``) and as an authorization server."""
        return f"{self.origin}{PREFIX}"

    @property
    def jwks_url(self) -> str:
        return f"{self.origin}{JWKS_PATH}"

    @property
    def authorize_url(self) -> str:
        return f"{self.origin}{AUTH_PATH}/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.origin}{AUTH_PATH}/token"

    @property
    def style_url(self) -> str:
        return f"{self.origin}{AUTH_PATH}/style.json"

    @property
    def home_url(self) -> str:
        return f"{self.origin}{PREFIX}/"


def sandbox_urls(origin: str) -> SandboxUrls:
    return SandboxUrls(origin.rstrip("/"))


def current_urls() -> SandboxUrls:
    """The URLs for this request: PUBLIC_BASE_URL when configured (the demo sets it), else
    the origin the request came to."""
    configured = current_app.config.get("PUBLIC_BASE_URL")
    return sandbox_urls(str(configured) if configured else request.host_url)


@dataclass
class Sandbox:
    """The sandbox's state for one app: the FHIR data and the authorization server."""

    store: FhirStore
    auth: AuthServer


def sandbox() -> Sandbox:
    """The current app's sandbox (only inside a request of an app with the sandbox on)."""
    state: Sandbox = current_app.extensions[EXTENSION]
    return state


def allow_sandbox_callers(app: Flask) -> None:
    """Exempt the server-called blueprints (token endpoint, FHIR API) from the CSRF check;
    must run before ``init_security`` reads CSRF_EXEMPT_BLUEPRINTS."""
    exempt = list(app.config["CSRF_EXEMPT_BLUEPRINTS"])
    app.config["CSRF_EXEMPT_BLUEPRINTS"] = [*exempt, *(b for b in CSRF_EXEMPT if b not in exempt)]


def register(app: Flask) -> Sandbox:
    """Build the sandbox's state from the synthetic patients and register its blueprints."""
    from smartapp.sandbox import auth_server, ehr, fhir_api
    from smartapp.sandbox.store import FhirStore

    state = Sandbox(store=FhirStore.from_scenarios(), auth=auth_server.AuthServer.for_app(app))
    app.extensions[EXTENSION] = state
    app.register_blueprint(fhir_api.blueprint)
    app.register_blueprint(auth_server.blueprint)
    app.register_blueprint(ehr.blueprint)
    return state
