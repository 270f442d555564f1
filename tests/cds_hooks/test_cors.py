"""CORS (standards-checklist.md, CDS Hooks security ★): the browser-based CDS client's
preflight is answered without a JWT, and every CDS response, errors included, carries
``Access-Control-Allow-Origin`` for an allowed origin."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.cds_hooks import jwt_keys as k
from tests.cds_hooks import requests_builder as rb

SANDBOX = "https://sandbox.cds-hooks.org"
PATHS = [
    "/cds-services",
    "/cds-services/clozapine-order-sign",
    "/cds-services/clozapine-patient-view/feedback",
]
PREFLIGHT = {
    "Origin": SANDBOX,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def secured(tmp_path: Path, origins: list[str]) -> FlaskClient:
    """JWT verification on: the preflight must pass without one."""
    app = rb.make_app(
        tmp_path,
        CDS_VERIFY_JWT=True,
        CDS_TRUSTED_ISSUERS=k.trusted_issuers(),
        CDS_ALLOWED_ORIGINS=origins,
    )
    return app.test_client()


@pytest.mark.parametrize("path", PATHS)
def test_preflight_is_answered_without_a_jwt(tmp_path: Path, path: str) -> None:
    response = secured(tmp_path, [SANDBOX]).options(path, headers=PREFLIGHT)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == SANDBOX
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert response.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in response.headers["Vary"]


def test_wildcard_allows_any_origin(tmp_path: Path) -> None:
    response = secured(tmp_path, ["*"]).options(PATHS[1], headers=PREFLIGHT)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_an_origin_not_allowed_gets_no_allow_origin(tmp_path: Path) -> None:
    headers = {**PREFLIGHT, "Origin": "https://evil.example"}
    response = secured(tmp_path, [SANDBOX]).options(PATHS[1], headers=headers)
    assert "Access-Control-Allow-Origin" not in response.headers


def test_error_responses_carry_cors_headers(tmp_path: Path) -> None:
    """A 401 the browser cannot read looks like a network failure to the CDS client."""
    client = secured(tmp_path, [SANDBOX])
    response = client.post(PATHS[1], json={}, headers={"Origin": SANDBOX})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == SANDBOX
    wrong_method = client.put(PATHS[1], headers={"Origin": SANDBOX})
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Access-Control-Allow-Origin"] == SANDBOX


def test_successful_responses_carry_cors_headers(tmp_path: Path) -> None:
    client = rb.make_app(tmp_path, CDS_ALLOWED_ORIGINS=[SANDBOX]).test_client()
    response = client.get("/cds-services", headers={"Origin": SANDBOX})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == SANDBOX


def test_other_surfaces_get_no_cds_cors_headers(tmp_path: Path) -> None:
    client = rb.make_app(tmp_path).test_client()
    response = client.get("/healthz", headers={"Origin": SANDBOX})
    assert "Access-Control-Allow-Origin" not in response.headers
