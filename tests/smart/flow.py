"""Builders for the SMART launch tests: an app registered with a mocked EHR (``responses``),
and the launch -> authorize -> callback steps driven with the Flask test client."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import responses
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from smartapp.app import create_app
from smartapp.smart.client_auth import _generated_jwks

ISS = "https://ehr.example/fhir/r4"
AUTHORIZE = "https://ehr.example/auth/authorize"
TOKEN = "https://ehr.example/auth/token"  # noqa: S105 - a URL
JWKS = "https://ehr.example/auth/jwks"
ISSUER = "https://ehr.example/auth"
CLIENT_ID = "app-1"
REDIRECT = "https://app.example/callback"
EHR_ORIGIN = "https://ehr.example"
V2_SCOPES = [
    "launch", "openid", "fhirUser", "online_access", "patient/Patient.rs",
    "patient/MedicationRequest.rs", "patient/Observation.rs", "patient/Condition.rs",
]  # fmt: skip
ACCESS = "at-secret-0001"
REFRESH = "rt-secret-0001"


def registration(**changes: Any) -> dict[str, Any]:
    launch: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_type": "public",
        "launch_url": "https://app.example/launch",
        "redirect_uris": [REDIRECT],
        "scopes": V2_SCOPES,
        "offline_access": True,
        "allowed_ehr_origins": [EHR_ORIGIN],
        "allowed_fhir_servers": [ISS],
        "default_fhir_server": ISS,
    }
    launch.update(changes)
    return launch


def make_app(tmp_path: Path, launch: Mapping[str, Any] | None = None, **config: Any) -> Flask:
    jwks = tmp_path / "private_jwks.json"
    if not jwks.exists():
        jwks.write_bytes(_generated_jwks())
    settings: dict[str, Any] = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/app.db",
        "CDS_VERIFY_JWT": False,
        "LAUNCH": dict(launch if launch is not None else registration()),
        "SECRET_KEY": "test-secret-key",
        "TOKEN_KEY": Fernet.generate_key().decode(),
        "SMART_PRIVATE_JWKS_PATH": str(jwks),
    }
    settings.update(config)
    app = create_app(settings)
    app.testing = True
    return app


def smart_configuration(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "issuer": ISSUER,
        "jwks_uri": JWKS,
        "authorization_endpoint": AUTHORIZE,
        "token_endpoint": TOKEN,
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic", "private_key_jwt",
        ],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": [
            "launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
            "client-confidential-asymmetric", "context-ehr-patient", "permission-v2",
            "permission-offline", "sso-openid-connect",
        ],
    }  # fmt: skip
    doc.update(changes)
    return doc


def mock_discovery(rsps: responses.RequestsMock, iss: str = ISS, **changes: Any) -> None:
    rsps.get(f"{iss}/.well-known/smart-configuration", json=smart_configuration(**changes))


def token_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": ACCESS,
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": " ".join(V2_SCOPES),
        "refresh_token": REFRESH,
        "patient": "p1",
        "need_patient_banner": True,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def authorize_params(client: FlaskClient, **query: str) -> dict[str, str]:
    """GET /launch and return the authorize redirect's query parameters."""
    response = client.get("/launch", query_string=query)
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(AUTHORIZE + "?")
    return dict(parse_qsl(urlsplit(location).query))


def callback(client: FlaskClient, params: Mapping[str, str], code: str = "code-1") -> TestResponse:
    return client.get("/callback", query_string={"code": code, "state": params["state"]})


def launch(
    client: FlaskClient, rsps: responses.RequestsMock, body: Mapping[str, Any] | None = None
) -> TestResponse:
    """A whole EHR launch: discovery and token endpoint mocked, callback answered."""
    mock_discovery(rsps)
    rsps.post(TOKEN, json=dict(body if body is not None else token_body()))
    params = authorize_params(client, iss=ISS, launch="launch-123")
    return callback(client, params)


def form(request_body: Any) -> dict[str, str]:
    text = request_body.decode() if isinstance(request_body, bytes) else str(request_body)
    return dict(parse_qsl(text, keep_blank_values=True))


def token_requests(rsps: responses.RequestsMock) -> list[dict[str, str]]:
    return [form(c.request.body) for c in rsps.calls if c.request.url == TOKEN]


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def b64url_json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
