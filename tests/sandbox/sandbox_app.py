"""An app with the sandbox EHR switched on (the demo's configuration at a fixed origin, with
its files in a temporary folder), and ``responses`` routing of the sandbox's URLs into the
app's test client, so the product's own ``FhirClient`` can search the sandbox in-process."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import responses
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient

from smartapp.app import create_app
from smartapp.sandbox import EXTENSION, Sandbox, SandboxUrls, sandbox_urls
from smartapp.sandbox.demo import demo_config
from smartapp.smart.client_auth import _generated_jwks

ORIGIN = "http://127.0.0.1:5999"
URLS = sandbox_urls(ORIGIN)
CLIENT_ID = "smartapp-clozapine"
REDIRECT_URI = f"{ORIGIN}/callback"
VERIFIER = "v" * 43 + "-verifier-of-the-test-0123456789"
ALL_SCOPES = (
    "launch fhirUser online_access patient/Patient.rs patient/MedicationRequest.rs "
    "patient/MedicationDispense.rs patient/MedicationAdministration.rs patient/Medication.rs "
    "patient/Observation.rs patient/Condition.rs patient/DiagnosticReport.rs"
)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sandbox_config(tmp_path: Path, urls: SandboxUrls, **overrides: Any) -> dict[str, Any]:
    """The demo's configuration in a temporary instance folder: its own database, keys and
    secrets, so tests never share state."""
    jwks = tmp_path / "private_jwks.json"
    jwks.write_bytes(_generated_jwks())
    config = demo_config(urls, str(tmp_path))
    config.update({
        "DATABASE_URL": f"sqlite:///{tmp_path}/sandbox.db",
        "SECRET_KEY": "sandbox-test-secret",
        "TOKEN_KEY": Fernet.generate_key().decode(),
        "SMART_PRIVATE_JWKS_PATH": str(jwks),
        **overrides,
    })  # fmt: skip
    return config


def make_sandbox_app(tmp_path: Path, **overrides: Any) -> Flask:
    app = create_app(sandbox_config(tmp_path, URLS, **overrides))
    app.testing = True
    return app


def state(app: Flask) -> Sandbox:
    found: Sandbox = app.extensions[EXTENSION]
    return found


def token_for(app: Flask, patient: str, scope: str = ALL_SCOPES) -> str:
    return state(app).auth.issue_token(patient, scope).access_token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def authorize_query(launch: str, **changes: str) -> dict[str, str]:
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "launch openid " + ALL_SCOPES,
        "state": "state-123",
        "aud": URLS.fhir_base,
        "launch": launch,
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
    }
    query.update(changes)
    return query


def exchange_form(code: str) -> dict[str, str]:
    """The token request the app sends for ``code`` (public client, PKCE)."""
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
        "code_verifier": VERIFIER,
    }


def code_from(location: str) -> str:
    return parse_qs(urlsplit(location).query)["code"][0]


def route_to(client: FlaskClient, mock: responses.RequestsMock) -> None:
    """Answer every request to ORIGIN with the app's test client."""

    def forward(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(str(request.url))
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        answer = client.open(
            parts.path,
            method=str(request.method),
            query_string=parts.query,
            headers=headers,
            data=request.body,
        )
        kept = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        return answer.status_code, kept, answer.get_data()

    for method in (responses.GET, responses.POST):
        mock.add_callback(method, re.compile(re.escape(ORIGIN) + r"/.*"), callback=forward)
