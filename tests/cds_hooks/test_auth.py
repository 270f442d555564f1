"""CDS client JWT on the endpoints (CDS Hooks 2.0 "Trusting CDS Clients"): discovery, service
and feedback calls need a valid token for the exact URL called; any failure is a bare 401 with
``WWW-Authenticate: Bearer``; the replay cache lives in the database; the token is never
logged. The JWKS are served over HTTPS by ``responses``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient

from smartapp.persistence import store
from tests.cds_hooks import jwt_keys as k
from tests.cds_hooks import requests_builder as rb

BASE = "http://localhost"
SIGN = "/cds-services/clozapine-order-sign"
NAME = "trs-not-met"


@pytest.fixture
def jwks() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(k.SANDBOX_JKU, json=k.jwks(k.ec_key()))
        mock.get(k.EPIC_JWKS, json=k.jwks(k.rsa_key()))
        yield mock


@pytest.fixture
def app(tmp_path: Path, jwks: responses.RequestsMock) -> Flask:
    return rb.make_app(tmp_path, CDS_VERIFY_JWT=True, CDS_TRUSTED_ISSUERS=k.trusted_issuers())


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def now() -> datetime:
    return datetime.now(UTC)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(client: FlaskClient, token: str | None, path: str = SIGN, body: Any = None) -> Any:
    headers = bearer(token) if token is not None else {}
    return client.post(path, json=body or rb.hook_body(NAME), headers=headers)


def assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json == {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "login", "diagnostics": "unauthorized"}],
    }


def test_sandbox_token_for_the_url_called_is_accepted(client: FlaskClient) -> None:
    response = post(client, k.sandbox_token(BASE + SIGN, now=now()))
    assert response.status_code == 200
    assert response.json == {"cards": []}


def test_epic_style_token_is_accepted(client: FlaskClient) -> None:
    assert post(client, k.epic_token(BASE + SIGN, now=now())).status_code == 200


def test_discovery_needs_a_token(client: FlaskClient) -> None:
    assert_unauthorized(client.get("/cds-services"))
    token = k.sandbox_token(BASE + "/cds-services", now=now())
    assert client.get("/cds-services", headers=bearer(token)).status_code == 200


def test_feedback_needs_a_token(app: Flask, client: FlaskClient) -> None:
    path = SIGN + "/feedback"
    body = {
        "feedback": [
            {"card": "c1", "outcome": "accepted", "outcomeTimestamp": "2026-03-01T10:00:00Z"}
        ]
    }
    assert_unauthorized(client.post(path, json=body))
    # A token for the service URL is not a token for its feedback URL.
    assert_unauthorized(post(client, k.sandbox_token(BASE + SIGN, now=now()), path, body))
    assert store.list_feedback(app.extensions["smartapp.db"]) == []
    assert post(client, k.sandbox_token(BASE + path, now=now()), path, body).status_code == 200
    assert len(store.list_feedback(app.extensions["smartapp.db"])) == 1


def test_missing_token_is_401(client: FlaskClient) -> None:
    assert_unauthorized(post(client, None))


@pytest.mark.parametrize("scheme", ["Basic", "Token", ""])
def test_other_authorization_schemes_are_401(client: FlaskClient, scheme: str) -> None:
    token = k.sandbox_token(BASE + SIGN, now=now())
    response = client.post(
        SIGN, json=rb.hook_body(NAME), headers={"Authorization": f"{scheme} {token}".strip()}
    )
    assert_unauthorized(response)


def test_expired_token_is_401(client: FlaskClient) -> None:
    assert_unauthorized(post(client, k.sandbox_token(BASE + SIGN, now=now() - timedelta(hours=1))))


def test_token_for_another_url_is_401(client: FlaskClient) -> None:
    for aud in (
        BASE + "/cds-services/clozapine-patient-view",
        BASE + "/cds-services",
        "https://cds.example.org/cds-services/clozapine-order-sign",
        BASE + SIGN + "/",
    ):
        assert_unauthorized(post(client, k.sandbox_token(aud, now=now())))


def test_unknown_issuer_is_401(client: FlaskClient) -> None:
    token = k.sign(k.ec_key(), k.claims(BASE + SIGN, iss="https://evil.example", now=now()))
    assert_unauthorized(post(client, token))


def test_alg_none_is_401(client: FlaskClient) -> None:
    token = k.unsigned({"alg": "none", "typ": "JWT"}, k.claims(BASE + SIGN, now=now()))
    assert_unauthorized(post(client, token))


def test_replayed_jti_is_401(app: Flask, client: FlaskClient) -> None:
    token = k.sandbox_token(BASE + SIGN, now=now())
    assert post(client, token).status_code == 200
    assert_unauthorized(post(client, token))


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_the_replay_cache_is_shared_through_the_database(
    tmp_path: Path, jwks: Any, engine: str, request: pytest.FixtureRequest
) -> None:
    """Two app instances on one database: a token used on one is refused on the other."""
    config: dict[str, Any] = {"CDS_VERIFY_JWT": True, "CDS_TRUSTED_ISSUERS": k.trusted_issuers()}
    if engine == "postgresql":
        config["DATABASE_URL"] = request.getfixturevalue("postgres_database")
    first = rb.make_app(tmp_path, **config).test_client()
    second = rb.make_app(tmp_path, **config).test_client()
    token = k.sandbox_token(BASE + SIGN, now=now())
    assert post(first, token).status_code == 200
    assert_unauthorized(post(second, token))


def test_public_base_url_sets_the_audience(tmp_path: Path, jwks: Any) -> None:
    app = rb.make_app(
        tmp_path,
        CDS_VERIFY_JWT=True,
        CDS_TRUSTED_ISSUERS=k.trusted_issuers(),
        PUBLIC_BASE_URL="https://cds.example.org/",
    )
    client = app.test_client()
    assert_unauthorized(post(client, k.sandbox_token(BASE + SIGN, now=now())))
    public = "https://cds.example.org" + SIGN
    assert post(client, k.sandbox_token(public, now=now())).status_code == 200


def test_the_query_string_is_not_part_of_the_audience(client: FlaskClient) -> None:
    token = k.sandbox_token(BASE + SIGN, now=now())
    response = client.post(SIGN + "?x=1", json=rb.hook_body(NAME), headers=bearer(token))
    assert response.status_code == 200


def test_rejected_calls_are_not_audited_and_the_token_is_never_logged(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stale = k.sandbox_token(BASE + SIGN, now=now() - timedelta(hours=1), jti="stale-jti-1")
    assert_unauthorized(post(client, stale))
    good = k.sandbox_token(BASE + SIGN, now=now())
    assert post(client, good).status_code == 200
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "stale-jti-1" in text and k.SANDBOX_ISS in text  # iss and jti are logged
    assert stale not in text and good not in text
    for part in (*stale.split("."), *good.split(".")):
        assert part not in text
    assert [e.status for e in store.list_audit(app.extensions["smartapp.db"])] == [200]


def test_no_verification_when_switched_off(tmp_path: Path) -> None:
    client = rb.make_app(tmp_path, CDS_VERIFY_JWT=False).test_client()
    assert post(client, None).status_code == 200
