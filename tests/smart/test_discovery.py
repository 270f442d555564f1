"""SMART discovery: well-known document under a base with a path, relative endpoints, the
CapabilityStatement fallback, the scope version chosen, caching and https-only endpoints."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses
from flask import Flask

from smartapp.smart.discovery import (
    OAUTH_URIS,
    DiscoveryCache,
    DiscoveryError,
    SmartConfiguration,
    discover,
)
from tests.smart import flow
from tests.smart.flow import ISS

BASE = "https://ehr.example/tenant/42/fhir/R4"


def _discover(iss: str = BASE, allow_http: bool = False) -> SmartConfiguration:
    return discover(iss, http=requests.Session(), timeout=2.0, allow_http=allow_http)


def capability_statement(authorize: str, token: str, capabilities: list[str]) -> dict[str, object]:
    return {
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "security": {"extension": [
            {"url": OAUTH_URIS, "extension": [
                {"url": "authorize", "valueUri": authorize},
                {"url": "token", "valueUri": token}]},
            *({"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/capabilities",
               "valueCode": c} for c in capabilities),
        ]}}],
    }  # fmt: skip


def test_well_known_under_a_base_with_a_path_and_relative_endpoints(
    rsps: responses.RequestsMock,
) -> None:
    doc = flow.smart_configuration(jwks_uri="https://keys.example/jwks")
    doc.update({"authorization_endpoint": "auth/authorize", "token_endpoint": "/oauth2/token"})
    rsps.get(f"{BASE}/.well-known/smart-configuration", json=doc)
    config = _discover(BASE + "/")
    assert config.authorization_endpoint == f"{BASE}/auth/authorize"
    assert config.token_endpoint == "https://ehr.example/oauth2/token"  # noqa: S105 - a URL
    assert config.jwks_uri == "https://keys.example/jwks"
    assert config.source == "smart-configuration"
    assert "client-confidential-asymmetric" in config.capabilities
    assert config.token_endpoint_auth_methods == ("client_secret_basic", "private_key_jwt")
    assert rsps.calls[0].request.headers["Accept"] == "application/json"


@pytest.mark.parametrize("failure", [{"status": 404}, {"body": "not json"}, {"json": {"x": 1}}])
def test_capability_statement_fallback(
    rsps: responses.RequestsMock, failure: dict[str, object]
) -> None:
    rsps.get(f"{BASE}/.well-known/smart-configuration", **failure)  # type: ignore[arg-type]
    rsps.get(f"{BASE}/metadata", json=capability_statement(
        "https://ehr.example/authz", "https://ehr.example/token", ["launch-ehr"]))  # fmt: skip
    config = _discover()
    assert (config.authorization_endpoint, config.token_endpoint) == (
        "https://ehr.example/authz", "https://ehr.example/token")  # fmt: skip
    assert config.source == "capability-statement"
    assert config.capabilities == frozenset({"launch-ehr"})
    assert config.scope_version() == "v1"  # a legacy server that says nothing about v2


def test_no_usable_discovery_is_an_error(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{BASE}/.well-known/smart-configuration", status=404)
    rsps.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "rest": []})
    with pytest.raises(DiscoveryError, match="names no OAuth endpoints"):
        _discover()


@pytest.mark.parametrize(
    ("changes", "version"),
    [
        ({}, "v2"),
        ({"capabilities": ["launch-ehr", "permission-v1"]}, "v1"),
        ({"capabilities": ["permission-v1", "permission-v2"]}, "v2"),
        ({"capabilities": ["launch-ehr"]}, "v2"),  # SMART 2 fields present
        ({"capabilities": ["launch-ehr"], "code_challenge_methods_supported": None}, "v1"),
    ],
)
def test_scope_version_from_capabilities(
    rsps: responses.RequestsMock, changes: dict[str, object], version: str
) -> None:
    doc = {k: v for k, v in flow.smart_configuration(**changes).items() if v is not None}
    rsps.get(f"{BASE}/.well-known/smart-configuration", json=doc)
    assert _discover().scope_version() == version


def test_a_v1_only_server_is_asked_for_v1_scopes(app: Flask, rsps: responses.RequestsMock) -> None:
    flow.mock_discovery(rsps, capabilities=["launch-ehr", "client-public", "permission-v1"])
    response = app.test_client().get("/launch", query_string={"iss": ISS, "launch": "L"})
    scopes = dict(parse_qsl(urlsplit(response.headers["Location"]).query))["scope"].split()
    assert "patient/Observation.read" in scopes and "patient/MedicationRequest.read" in scopes
    assert not any(s.endswith(".rs") for s in scopes)
    assert "launch" in scopes and "openid" in scopes


def test_plain_http_endpoints_are_refused_except_on_loopback(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{BASE}/.well-known/smart-configuration", json=flow.smart_configuration(
        authorization_endpoint="http://ehr.example/authorize"))  # fmt: skip
    rsps.get(f"{BASE}/metadata", status=404)
    with pytest.raises(DiscoveryError):
        _discover()
    with pytest.raises(DiscoveryError, match="not an https URL"):
        _discover("http://ehr.example/fhir")
    local = "http://127.0.0.1:9999/fhir"
    doc = flow.smart_configuration()
    doc.update({"authorization_endpoint": "http://127.0.0.1:9998/authorize",
                "token_endpoint": "http://127.0.0.1:9998/token"})  # fmt: skip
    rsps.get(f"{local}/.well-known/smart-configuration", json=doc)
    assert _discover(local).token_endpoint == "http://127.0.0.1:9998/token"  # noqa: S105 - a URL


def test_discovery_is_cached_per_iss_for_its_ttl() -> None:
    calls: list[str] = []
    now = [0.0]

    def fetch(iss: str) -> SmartConfiguration:
        calls.append(iss)
        return SmartConfiguration(iss, "https://a/authorize", "https://a/token", frozenset(),
                                  None, None, None, None, "smart-configuration")  # fmt: skip

    cache = DiscoveryCache(300, fetch, clock=lambda: now[0])
    cache.get("https://a/fhir")
    now[0] = 299.0
    cache.get("https://a/fhir")
    cache.get("https://b/fhir")
    assert calls == ["https://a/fhir", "https://b/fhir"]
    now[0] = 300.0
    cache.get("https://a/fhir")
    assert calls[-1] == "https://a/fhir" and len(calls) == 3


def test_discovery_answers_are_cached_across_launches(
    app: Flask, rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    flow.mock_discovery(rsps)
    client = app.test_client()
    flow.authorize_params(client, iss=ISS, launch="a")
    flow.authorize_params(client, iss=ISS, launch="b")
    assert len(rsps.calls) == 1
