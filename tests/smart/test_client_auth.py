"""Client authentication at the token endpoint (SMART client-confidential-symmetric and
-asymmetric) and the app's published JWKS."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
import responses
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from smartapp.config import ConfigError
from smartapp.smart.client_auth import PRIVATE_MEMBERS, load_app_keys
from tests.smart import flow
from tests.smart.flow import ISS, TOKEN

SECRET = "s3:cr&t"  # noqa: S105 - test data


def _token_call(rsps: responses.RequestsMock) -> responses.Call:
    return next(c for c in rsps.calls if c.request.url == TOKEN)


def test_confidential_symmetric_uses_basic_and_no_client_id_in_the_body(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    symmetric = flow.registration(client_type="confidential-symmetric")
    app = flow.make_app(tmp_path, symmetric, CLIENT_SECRET=SECRET)
    assert flow.launch(app.test_client(), rsps).status_code == 302
    call = _token_call(rsps)
    scheme, _, encoded = call.request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"{flow.CLIENT_ID}:s3:cr&t"
    body = flow.form(call.request.body)
    assert "client_id" not in body and "client_secret" not in body
    assert body["code_verifier"]


def _keys(app_client: object) -> KeySet:
    response = app_client.get("/.well-known/jwks.json")  # type: ignore[attr-defined]
    assert response.status_code == 200
    return KeySet.import_key_set(response.json)


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_private_key_jwt_assertion_verifies_with_the_published_jwks(
    tmp_path: Path, rsps: responses.RequestsMock, alg: str
) -> None:
    if alg == "RS384":
        key = RSAKey.generate_key(2048, private=True)
        entry = {**key.as_dict(private=True), "kid": "rsa-1", "alg": "RS384"}
        (tmp_path / "private_jwks.json").write_text(json.dumps({"keys": [entry]}))
    app = flow.make_app(tmp_path, flow.registration(client_type="confidential-asymmetric"))
    client = app.test_client()
    flow.launch(client, rsps)
    flow.launch(client, rsps)
    bodies = flow.token_requests(rsps)
    assert len(bodies) == 2
    jtis = set()
    for body in bodies:
        assert "client_id" not in body and "client_secret" not in body
        assert body["client_assertion_type"] == (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        )
        header = flow.b64url_json(body["client_assertion"].split(".")[0])
        assert header["alg"] == alg and header["kid"]
        token = jwt.decode(body["client_assertion"], _keys(client), algorithms=[alg])
        claims = token.claims
        assert claims["iss"] == claims["sub"] == flow.CLIENT_ID
        assert claims["aud"] == TOKEN
        assert 0 < claims["exp"] - claims["iat"] <= 300
        assert claims["exp"] <= datetime.now(UTC).timestamp() + 300
        jtis.add(claims["jti"])
    assert len(jtis) == 2
    assert not any(
        c.request.headers.get("Authorization") for c in rsps.calls if c.request.url == TOKEN
    )


def test_published_jwks_has_public_keys_only(app: object) -> None:
    document = app.test_client().get("/.well-known/jwks.json").json  # type: ignore[attr-defined]
    assert document["keys"]
    for key in document["keys"]:
        assert not PRIVATE_MEMBERS & set(key)
        assert key["alg"] in {"ES384", "RS384"} and key["kid"] and key["use"] == "sig"


def test_a_key_is_generated_once_with_owner_only_permissions(tmp_path: Path) -> None:
    first = load_app_keys(None, str(tmp_path))
    second = load_app_keys(None, str(tmp_path))
    path = tmp_path / "smart_private_jwks.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.public_jwks == second.public_jwks
    assert first.algorithm == "ES384"
    assert first.public_jwks["keys"][0]["crv"] == "P-384"


@pytest.mark.parametrize(
    "entry",
    [
        {"kty": "EC", "crv": "P-256", "kid": "k"},  # ES256 is not a SMART client algorithm
        {"kty": "oct", "k": "c2VjcmV0", "kid": "k"},
        {"kty": "EC", "crv": "P-384", "alg": "ES256", "kid": "k"},
    ],
)
def test_unsuitable_private_keys_stop_start_up(tmp_path: Path, entry: dict[str, str]) -> None:
    if entry.get("crv"):
        entry = {**ECKey.generate_key(entry["crv"], private=True).as_dict(private=True), **entry}
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [entry]}))
    with pytest.raises(ConfigError):
        load_app_keys(str(path), str(tmp_path))


def test_a_public_only_jwks_file_stops_start_up(tmp_path: Path) -> None:
    key = load_app_keys(None, str(tmp_path)).public_jwks
    path = tmp_path / "public.json"
    path.write_text(json.dumps(key))
    with pytest.raises(ConfigError, match="no private"):
        load_app_keys(str(path), str(tmp_path))


@pytest.mark.parametrize(
    ("changes", "config", "message"),
    [
        ({"client_type": "confidential-symmetric"}, {}, "CLIENT_SECRET"),
        ({"client_secret": "x"}, {}, "must not hold client_secret"),
        ({"client_type": "public", "token_endpoint_auth_method": "private_key_jwt"}, {}, "fit"),
        ({"client_type": "shared"}, {}, "client_type"),
        ({"redirect_uris": []}, {}, "redirect_uris"),
        ({"scopes": ["patient/Observation.bogus"]}, {}, "scope"),
        ({"allowed_ehr_origins": ["https://ehr.example; script-src *"]}, {}, "origin"),
    ],
)
def test_a_malformed_registration_stops_start_up(
    tmp_path: Path, changes: dict[str, object], config: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        flow.make_app(tmp_path, flow.registration(**changes), **config)


def test_server_without_our_auth_method_gets_a_page_not_a_doomed_request(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    app = flow.make_app(tmp_path, flow.registration(client_type="confidential-asymmetric"))
    flow.mock_discovery(rsps, token_endpoint_auth_methods_supported=["client_secret_basic"])
    response = app.test_client().get("/launch", query_string={"iss": ISS, "launch": "L"})
    assert response.status_code == 502
    assert "confidential-asymmetric" in response.get_data(as_text=True)
