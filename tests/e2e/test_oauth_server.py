"""The end-to-end tests' SMART authorization server (tests/oauth_server) does what the app's
launch relies on: discovery, PKCE S256 enforced, the registered client and redirect_uri checked,
SMART launch context in the token response, refresh rotation, client authentication, and a FHIR
facade that honours the granted scopes."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.fhir_server_fixture import FhirServer
from tests.oauth_server_fixture import OAuthServer, OAuthServerFactory

CLIENT = "e2e-client"
REDIRECT = "http://127.0.0.1:9/callback"
SCOPE = "launch openid fhirUser online_access patient/Patient.rs patient/Observation.rs"
VERIFIER = "v" * 20 + secrets.token_urlsafe(32)


def challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def patient_id(fhir_server: FhirServer) -> str:
    pid = f"oauth-{uuid.uuid4().hex[:12]}"
    resource = {"resourceType": "Patient", "id": pid, "birthDate": "1990-05-01"}
    response = requests.put(
        f"{fhir_server.base}/Patient/{pid}",
        json=resource,
        headers=fhir_server.headers(),
        timeout=10,
    )
    response.raise_for_status()
    return pid


@pytest.fixture(scope="module")
def server(fhir_server: FhirServer, oauth_server_factory: OAuthServerFactory) -> OAuthServer:
    return oauth_server_factory(
        fhir_server.base, client_id=CLIENT, redirect_uris=[REDIRECT], patient="default-patient"
    )


def authorize(server: OAuthServer, **overrides: str | None) -> dict[str, str]:
    """GET /authorize without following the redirect; returns the redirect's query."""
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": CLIENT,
        "redirect_uri": REDIRECT,
        "scope": SCOPE,
        "state": "st-1",
        "aud": server.iss,
        "code_challenge": challenge(VERIFIER),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    response = requests.get(
        f"{server.origin}/authorize",
        params={k: v for k, v in params.items() if v is not None},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def token(
    server: OAuthServer, form: dict[str, str], auth: tuple[str, str] | None = None
) -> requests.Response:
    return requests.post(f"{server.origin}/token", data=form, auth=auth, timeout=10)


def exchange(server: OAuthServer, code: str, verifier: str = VERIFIER) -> requests.Response:
    return token(
        server,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": CLIENT,
            "code_verifier": verifier,
        },
    )


def test_smart_configuration_at_the_fhir_base_and_the_root(server: OAuthServer) -> None:
    config = server.smart_configuration()
    assert requests.get(f"{server.origin}/.well-known/smart-configuration", timeout=10).json() == (
        config
    )
    assert config["authorization_endpoint"] == f"{server.origin}/authorize"
    assert config["token_endpoint"] == f"{server.origin}/token"
    assert config["code_challenge_methods_supported"] == ["S256"]
    for capability in (
        "launch-ehr",
        "launch-standalone",
        "client-public",
        "context-ehr-patient",
        "permission-v2",
    ):
        assert capability in config["capabilities"]
    assert "client-confidential-symmetric" not in config["capabilities"]


def test_ehr_launch_token_carries_the_launch_context(server: OAuthServer, patient_id: str) -> None:
    app_context = json.dumps({"finding": "anc-mild", "patient": patient_id})
    launch = server.launch_id(patient=patient_id, encounter="enc-1", appContext=app_context)
    query = authorize(server, launch=launch)
    assert query["state"] == "st-1"
    response = exchange(server, query["code"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["patient"] == patient_id
    assert body["encounter"] == "enc-1"
    assert body["appContext"] == app_context
    assert body["need_patient_banner"] is True
    assert body["fhirUser"] == "Practitioner/e2e-clinician"
    assert body["scope"] == SCOPE
    assert body["expires_in"] == 3600
    assert body["token_type"] == "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    assert body["refresh_token"] and body["id_token"]
    style = requests.get(body["smart_style_url"], timeout=10).json()
    assert style["color_background"] == "#edeae3"
    read = requests.get(
        f"{server.iss}/Patient/{patient_id}",
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=10,
    )
    assert read.status_code == 200 and read.json()["id"] == patient_id


def test_patient_defaults_to_the_servers_patient_without_a_launch(server: OAuthServer) -> None:
    body = exchange(server, authorize(server)["code"]).json()
    assert body["patient"] == "default-patient"


@pytest.mark.parametrize("verifier", ["w" * 60, ""])
def test_pkce_wrong_or_missing_verifier_is_invalid_grant_and_burns_the_code(
    server: OAuthServer, verifier: str
) -> None:
    code = authorize(server)["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    form["client_id"] = CLIENT
    if verifier:
        form["code_verifier"] = verifier
    refused = token(server, form)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert exchange(server, code).json()["error"] == "invalid_grant"  # single use


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"aud": "http://127.0.0.1:1/fhir"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"launch": "not-base64-json!"}, "invalid_request"),
    ],
)
def test_authorize_refusals_go_back_to_the_app_with_state(
    server: OAuthServer, overrides: dict[str, str | None], error: str
) -> None:
    query = authorize(server, **overrides)
    assert query["error"] == error
    assert query["state"] == "st-1"
    assert "code" not in query


def test_user_denial_is_access_denied(server: OAuthServer) -> None:
    query = authorize(server, launch=server.launch_id(patient="p", deny=True))
    assert query["error"] == "access_denied"


@pytest.mark.parametrize(
    "overrides",
    [{"redirect_uri": "http://127.0.0.1:9/elsewhere"}, {"client_id": "someone-else"}],
)
def test_unregistered_client_or_redirect_is_400_without_redirect(
    server: OAuthServer, overrides: dict[str, str]
) -> None:
    params = {
        "response_type": "code",
        "client_id": CLIENT,
        "redirect_uri": REDIRECT,
        "scope": SCOPE,
        "state": "s",
        "aud": server.iss,
        "code_challenge": challenge(VERIFIER),
        "code_challenge_method": "S256",
        **overrides,
    }
    response = requests.get(
        f"{server.origin}/authorize", params=params, allow_redirects=False, timeout=10
    )
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_token_checks_redirect_uri_and_client_id(server: OAuthServer) -> None:
    code = authorize(server)["code"]
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": VERIFIER}
    wrong_redirect = token(
        server, {**form, "redirect_uri": "http://127.0.0.1:9/other", "client_id": CLIENT}
    )
    assert wrong_redirect.json()["error"] == "invalid_grant"
    code = authorize(server)["code"]
    wrong_client = token(
        server, {**form, "code": code, "redirect_uri": REDIRECT, "client_id": "someone-else"}
    )
    assert wrong_client.status_code == 401
    assert wrong_client.json()["error"] == "invalid_client"


def test_refresh_rotates_and_keeps_the_context(server: OAuthServer, patient_id: str) -> None:
    query = authorize(server, launch=server.launch_id(patient=patient_id))
    first = exchange(server, query["code"]).json()
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    refreshed = token(server, {**refresh, "client_id": CLIENT})
    assert refreshed.status_code == 200, refreshed.text
    body = refreshed.json()
    assert body["patient"] == patient_id
    assert body["scope"] == SCOPE
    assert body["refresh_token"] != first["refresh_token"]
    again = token(server, {**refresh, "client_id": CLIENT})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_facade_enforces_token_and_granted_scopes(server: OAuthServer, patient_id: str) -> None:
    launch = server.launch_id(patient=patient_id, scope_grant="launch patient/Patient.rs")
    body = exchange(server, authorize(server, launch=launch)["code"]).json()
    assert body["scope"] == "launch patient/Patient.rs"
    assert "refresh_token" not in body and "id_token" not in body
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    patients = requests.get(
        f"{server.iss}/Patient", params={"_id": patient_id}, headers=bearer, timeout=10
    )
    assert patients.status_code == 200
    assert all(link["url"].startswith(server.iss) for link in patients.json()["link"])
    refused = requests.get(f"{server.iss}/Observation", headers=bearer, timeout=10)
    assert refused.status_code == 403
    assert refused.json()["resourceType"] == "OperationOutcome"
    anonymous = requests.get(f"{server.iss}/Patient/{patient_id}", timeout=10)
    assert anonymous.status_code == 401
    assert "Bearer" in anonymous.headers["WWW-Authenticate"]
    metadata = requests.get(f"{server.iss}/metadata", timeout=10).json()
    oauth = metadata["rest"][0]["security"]["extension"][0]
    assert {e["url"]: e["valueUri"] for e in oauth["extension"]} == {
        "authorize": f"{server.origin}/authorize",
        "token": f"{server.origin}/token",
    }


def test_received_requests_show_what_the_client_sent(server: OAuthServer) -> None:
    authorize(server, state="recorded-state")
    sent = server.received("authorize")[-1]
    assert sent["state"] == "recorded-state"
    assert sent["code_challenge_method"] == "S256"


def test_v1_only_server_advertises_no_v2(
    fhir_server: FhirServer, oauth_server_factory: OAuthServerFactory
) -> None:
    v1 = oauth_server_factory(fhir_server.base, v1_only=True)
    capabilities = v1.smart_configuration()["capabilities"]
    assert "permission-v1" in capabilities and "permission-v2" not in capabilities


def test_confidential_symmetric_client_needs_basic_auth(
    fhir_server: FhirServer, oauth_server_factory: OAuthServerFactory
) -> None:
    confidential = oauth_server_factory(
        fhir_server.base,
        client_id=CLIENT,
        redirect_uris=[REDIRECT],
        client_secret="s3:cr+t",  # noqa: S106 - a test client's secret
        patient="p",
    )
    assert (
        "client_secret_basic"
        in (confidential.smart_configuration()["token_endpoint_auth_methods_supported"])
    )
    form = {"grant_type": "authorization_code", "redirect_uri": REDIRECT, "code_verifier": VERIFIER}
    unauthenticated = token(
        confidential, {**form, "code": authorize(confidential)["code"], "client_id": CLIENT}
    )
    assert unauthenticated.status_code == 401
    wrong = token(confidential, {**form, "code": authorize(confidential)["code"]}, (CLIENT, "nope"))
    assert wrong.status_code == 401
    # RFC 6749 §2.3.1: the secret is form-encoded inside Basic; requests sends it raw, so encode.
    secret = (CLIENT, "s3%3Acr%2Bt")
    good = token(confidential, {**form, "code": authorize(confidential)["code"]}, secret)
    assert good.status_code == 200, good.text
    assert good.json()["patient"] == "p"


class _JwksHandler(BaseHTTPRequestHandler):
    jwks: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:
        body = json.dumps(self.jwks).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def client_key() -> Iterator[tuple[RSAKey, str]]:
    """An RSA key and the loopback URL of a JWKS publishing its public half."""
    key = RSAKey.generate_key(2048, parameters={"kid": "e2e-key", "alg": "RS384"})
    _JwksHandler.jwks = {"keys": [key.as_dict(private=False)]}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _JwksHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield key, f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_confidential_asymmetric_client_with_private_key_jwt(
    fhir_server: FhirServer,
    oauth_server_factory: OAuthServerFactory,
    client_key: tuple[RSAKey, str],
) -> None:
    key, jwks_url = client_key
    server = oauth_server_factory(
        fhir_server.base,
        client_id=CLIENT,
        redirect_uris=[REDIRECT],
        client_jwks_url=jwks_url,
        patient="p",
    )
    now = int(time.time())
    claims = {
        "iss": CLIENT,
        "sub": CLIENT,
        "aud": f"{server.origin}/token",
        "exp": now + 240,
        "iat": now,
        "jti": uuid.uuid4().hex,
    }
    header = {"alg": "RS384", "kid": "e2e-key", "typ": "JWT"}
    assertion = jwt.encode(header, claims, key, algorithms=["RS384"])
    form = {
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    accepted = token(server, {**form, "code": authorize(server)["code"]})
    assert accepted.status_code == 200, accepted.text
    replayed = token(server, {**form, "code": authorize(server)["code"]})
    assert replayed.status_code == 401
    assert "replayed" in replayed.json()["error_description"]
