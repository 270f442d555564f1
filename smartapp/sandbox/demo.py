"""``smartapp demo``: the whole product on one machine (issue 5 item 1; design.md "Sandbox").

The app with the sandbox EHR switched on, served by werkzeug's threaded development server on
the loopback address, and one line on stdout: ``Open http://127.0.0.1:PORT/sandbox/``.

The configuration makes the app and the sandbox trust each other, and nothing else:

- the sandbox FHIR base is the only extra ``iss`` the app launches against;
- the app's registration is launch.json's public client with its URLs moved to this port;
- the CDS service trusts the sandbox's own issuer, its JWKS fetched over loopback http;
- cookies work over plain http (INSECURE_DEV_COOKIES), the evaluation date is fixed at the
  synthetic patients' 2026-03-01, and the database is a SQLite file of its own in the
  instance folder (a SMARTAPP_DATABASE_URL meant for a deployment is never touched).

Threads matter: the app calls the sandbox on the same server (discovery, token, FHIR
searches, the CDS client's hook calls) while the browser's request is still open.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from werkzeug.serving import make_server

from smartapp.config import read_launch_json
from smartapp.persistence import Database
from smartapp.sandbox import SandboxUrls, sandbox_urls
from smartapp.sandbox.keys import trusted_issuer

DEFAULT_PORT = 8080
HOST = "127.0.0.1"
DEMO_DATABASE_FILE = "sandbox-demo.sqlite3"
EVALUATION_DATE = "2026-03-01"  # the day the synthetic patients are written for
# The registration's values when no launch.json is at hand (an installed package).
DEFAULT_REGISTRATION: dict[str, Any] = {
    "client_id": "smartapp-clozapine",
    "scopes": [
        "launch", "openid", "fhirUser", "online_access", "patient/Patient.rs",
        "patient/MedicationRequest.rs", "patient/MedicationDispense.rs",
        "patient/MedicationAdministration.rs", "patient/Medication.rs", "patient/Observation.rs",
        "patient/Condition.rs", "patient/DiagnosticReport.rs",
    ],
    "offline_access": False,
    "allowed_ehr_origins": [],
}  # fmt: skip
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def demo_database_url(instance_path: str) -> str:
    """The demo's own SQLite file in the instance folder."""
    return f"sqlite:///{Path(instance_path).resolve() / DEMO_DATABASE_FILE}"


def demo_registration(origin: str, launch: dict[str, Any] | None = None) -> dict[str, Any]:
    """launch.json's registration as a public client served at ``origin``."""
    base = dict(DEFAULT_REGISTRATION)
    base.update({k: v for k, v in (launch or {}).items() if k in DEFAULT_REGISTRATION})
    return {
        **base,
        "client_type": "public",
        "token_endpoint_auth_method": "none",
        "launch_url": f"{origin}/launch",
        "redirect_uris": [f"{origin}/callback"],
        "jwks_url": f"{origin}/.well-known/jwks.json",
        "cds_hooks_discovery_url": f"{origin}/cds-services",
        "allowed_fhir_servers": [],
        "default_fhir_server": None,
    }


def demo_config(urls: SandboxUrls, instance_path: str) -> dict[str, Any]:
    """The configuration overrides of the demo app (see the module docstring)."""
    return {
        "SANDBOX_ENABLED": True,
        "EVALUATION_DATE": EVALUATION_DATE,
        "PUBLIC_BASE_URL": urls.origin,
        "APP_LAUNCH_URL": f"{urls.origin}/launch",
        "LAUNCH": demo_registration(urls.origin, read_launch_json(None)),
        "SMART_ALLOWED_ISS": [urls.fhir_base],
        "CDS_VERIFY_JWT": True,
        "CDS_TRUSTED_ISSUERS": trusted_issuer(urls.origin),
        "CDS_JWKS_ALLOW_LOOPBACK_HTTP": True,
        "INSECURE_DEV_COOKIES": True,
        "DATABASE_URL": demo_database_url(instance_path),
        "AUTO_MIGRATE": True,
    }


class _Deferred:
    """The WSGI app, set once the socket is bound (its port may be chosen by the system)."""

    def __init__(self) -> None:
        self.app: WSGIApp | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"starting\n"]
        return self.app(environ, start_response)


def build_demo_app(origin: str) -> Any:
    """The Flask app of a demo served at ``origin`` (``http://127.0.0.1:PORT``)."""
    from smartapp.app import create_app, default_instance_path

    instance = default_instance_path()
    os.makedirs(instance, exist_ok=True)
    return create_app(demo_config(sandbox_urls(origin), instance))


def run_demo(host: str = HOST, port: int = DEFAULT_PORT, out: IO[str] | None = None) -> None:
    """Serve the demo until interrupted. ``port`` 0 lets the system choose a free one."""
    if host != HOST:
        raise ValueError(f"the demo serves plain http, so it listens on {HOST} only")
    target = _Deferred()
    server = make_server(host, port, target, threaded=True)
    origin = f"http://{HOST}:{server.server_port}"
    app = build_demo_app(origin)
    target.app = app
    stream = out or sys.stdout
    stream.write(f"Open {origin}/sandbox/\n")
    stream.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        database: Database | None = app.extensions.get("smartapp.db")
        if database is not None:
            database.dispose()
