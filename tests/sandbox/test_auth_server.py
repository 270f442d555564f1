"""The sandbox authorization server: what authorize checks (and where its errors go), PKCE
enforced at the token endpoint, codes and refresh tokens single use, and the SMART context in
the token response."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from smartapp.sandbox.auth_server import FHIR_USER, granted_scopes
from smartapp.smart.style import sanitize
from tests.sandbox.sandbox_app import (
    CLIENT_ID,
    REDIRECT_URI,
    URLS,
    VERIFIER,
    authorize_query,
    bearer,
    code_from,
    make_sandbox_app,
    state,
)

PATIENT = "clozapine-week10-mild"
OTHER = "uk-green"
AUTHORIZE = "/sandbox/auth/authorize"
TOKEN = "/sandbox/auth/token"  # noqa: S105 (a path)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return make_sandbox_app(tmp_path_factory.mktemp("sandbox-auth"))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def launch(app: Flask, patient: str = PATIENT, app_context: str | None = None) -> str:
    return state(app).auth.create_launch(patient, app_context)


def redirect_params(answer: Any) -> dict[str, str]:
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get_code(app: Flask, client: FlaskClient, **changes: str) -> str:
    answer = client.get(AUTHORIZE, query_string=authorize_query(launch(app), **changes))
    return code_from(answer.headers["Location"])


def exchange(client: FlaskClient, code: str, **changes: str) -> Any:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
        "code_verifier": VERIFIER,
    }
    form.update(changes)
    return client.post(TOKEN, data={k: v for k, v in form.items() if v != "<omit>"})


# authorize ---------------------------------------------------------------------------------


def test_authorize_approves_and_echoes_state(app: Flask, client: FlaskClient) -> None:
    answer = client.get(AUTHORIZE, query_string=authorize_query(launch(app), state="s-1"))
    params = redirect_params(answer)
    assert params["state"] == "s-1"
    assert len(params["code"]) >= 40
    assert "error" not in params


@pytest.mark.parametrize(
    "changes",
    [{"client_id": "someone-else"}, {"redirect_uri": "https://evil.example/callback"},
     {"redirect_uri": ""}],
)  # fmt: skip
def test_unknown_client_or_redirect_is_a_page_not_a_redirect(
    app: Flask, client: FlaskClient, changes: dict[str, str]
) -> None:
    answer = client.get(AUTHORIZE, query_string=authorize_query(launch(app), **changes))
    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert answer.mimetype == "text/html"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"aud": "https://another.example/fhir"}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"scope": "launch/patient patient/*.rs"}, "invalid_scope"),
        ({"launch_id": "never-issued"}, "invalid_request"),
    ],
)
def test_authorize_errors_go_back_with_the_state(
    app: Flask, client: FlaskClient, changes: dict[str, str], error: str
) -> None:
    query = authorize_query(changes.pop("launch_id", "") or launch(app), **changes)
    params = redirect_params(client.get(AUTHORIZE, query_string=query))
    assert params["error"] == error
    assert params["state"] == "state-123"
    assert "code" not in params


def test_missing_state_is_an_error_without_state(app: Flask, client: FlaskClient) -> None:
    query = authorize_query(launch(app))
    del query["state"]
    params = redirect_params(client.get(AUTHORIZE, query_string=query))
    assert params["error"] == "invalid_request"
    assert "state" not in params


def test_a_launch_id_is_single_use(app: Flask, client: FlaskClient) -> None:
    launch_id = launch(app)
    first = redirect_params(client.get(AUTHORIZE, query_string=authorize_query(launch_id)))
    assert "code" in first
    again = redirect_params(client.get(AUTHORIZE, query_string=authorize_query(launch_id)))
    assert again["error"] == "invalid_request"


def test_a_launch_id_expires(app: Flask, client: FlaskClient) -> None:
    auth = state(app).auth
    launch_id = launch(app)
    real = auth.clock
    auth.clock = lambda: real() + 601
    try:
        params = redirect_params(client.get(AUTHORIZE, query_string=authorize_query(launch_id)))
    finally:
        auth.clock = real
    assert params["error"] == "invalid_request"


# token -------------------------------------------------------------------------------------


def test_token_response_carries_the_launch_context(app: Flask, client: FlaskClient) -> None:
    answer = exchange(client, get_code(app, client))
    assert answer.status_code == 200, answer.get_json()
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    assert body["token_type"] == "Bearer"  # noqa: S105
    assert body["patient"] == PATIENT
    assert body["need_patient_banner"] is True
    assert body["smart_style_url"] == URLS.style_url
    assert body["fhirUser"] == FHIR_USER
    assert body["expires_in"] == 3600
    assert body["refresh_token"]
    assert "appContext" not in body
    granted = body["scope"].split()
    assert "openid" not in granted  # no id_token is issued
    assert {"launch", "fhirUser", "online_access", "patient/Observation.rs"} <= set(granted)
    # the token reads its patient's data and nobody else's
    fhir = client.get(f"/sandbox/fhir/Patient/{PATIENT}", headers=bearer(body["access_token"]))
    assert fhir.status_code == 200
    other = client.get(f"/sandbox/fhir/Patient/{OTHER}", headers=bearer(body["access_token"]))
    assert other.status_code == 404


def test_app_context_passes_through(app: Flask, client: FlaskClient) -> None:
    context = json.dumps({"finding": "interaction-cyp1a2-inhibitor", "patient": PATIENT})
    query = authorize_query(launch(app, app_context=context))
    code = code_from(client.get(AUTHORIZE, query_string=query).headers["Location"])
    body = exchange(client, code).get_json()
    assert body["appContext"] == context


@pytest.mark.parametrize(
    "changes",
    [
        {"code_verifier": "<omit>"},
        {"code_verifier": "w" * 43},
        {"code_verifier": "short"},
        {"redirect_uri": f"{URLS.origin}/other"},
    ],
)
def test_pkce_and_redirect_are_enforced(
    app: Flask, client: FlaskClient, changes: dict[str, str]
) -> None:
    answer = exchange(client, get_code(app, client), **changes)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_grant"
    assert "access_token" not in answer.get_json()


def test_a_code_is_single_use_even_after_a_failed_try(app: Flask, client: FlaskClient) -> None:
    code = get_code(app, client)
    assert exchange(client, code).status_code == 200
    assert exchange(client, code).get_json()["error"] == "invalid_grant"
    wrong_first = get_code(app, client)
    assert exchange(client, wrong_first, code_verifier="x" * 43).status_code == 400
    assert exchange(client, wrong_first).get_json()["error"] == "invalid_grant"


def test_a_code_expires(app: Flask, client: FlaskClient) -> None:
    auth = state(app).auth
    code = get_code(app, client)
    real = auth.clock
    auth.clock = lambda: real() + 121
    try:
        assert exchange(client, code).get_json()["error"] == "invalid_grant"
    finally:
        auth.clock = real


@pytest.mark.parametrize("client_id", ["someone-else", "<omit>"])
def test_the_client_must_be_the_registered_one(
    app: Flask, client: FlaskClient, client_id: str
) -> None:
    answer = exchange(client, get_code(app, client), client_id=client_id)
    assert answer.status_code == 401
    assert answer.get_json()["error"] == "invalid_client"


def test_a_public_client_sends_no_secret(app: Flask, client: FlaskClient) -> None:
    code = get_code(app, client)
    answer = client.post(
        TOKEN,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
              "client_id": CLIENT_ID, "code_verifier": VERIFIER},
        headers={"Authorization": "Basic c21hcnRhcHA6c2VjcmV0"},
    )  # fmt: skip
    assert answer.status_code == 401


def test_refresh_rotates_and_is_single_use(app: Flask, client: FlaskClient) -> None:
    first = exchange(client, get_code(app, client)).get_json()
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
            "client_id": CLIENT_ID}  # fmt: skip
    second = client.post(TOKEN, data=form)
    assert second.status_code == 200
    body = second.get_json()
    assert body["patient"] == PATIENT
    assert body["refresh_token"] != first["refresh_token"]
    assert body["access_token"] != first["access_token"]
    fhir = client.get(f"/sandbox/fhir/Patient/{PATIENT}", headers=bearer(body["access_token"]))
    assert fhir.status_code == 200
    replay = client.post(TOKEN, data=form)
    assert replay.status_code == 400
    assert replay.get_json()["error"] == "invalid_grant"


def test_unknown_grant_type(app: Flask, client: FlaskClient) -> None:
    answer = client.post(TOKEN, data={"grant_type": "password", "client_id": CLIENT_ID})
    assert answer.get_json()["error"] == "unsupported_grant_type"


def test_the_token_endpoint_needs_no_csrf_token(app: Flask, client: FlaskClient) -> None:
    """It is called by the app's server, which holds no session cookie of ours."""
    answer = exchange(client, get_code(app, client))
    assert answer.status_code == 200


def test_style_values(client: FlaskClient) -> None:
    style = client.get("/sandbox/auth/style.json").get_json()
    assert style["color_background"] == "#ffffff"
    assert style["color_highlight"] == "#0b5394"
    # every value passes the app's own checks, so the app uses all of them
    assert sanitize(style) == style


def test_granted_scopes() -> None:
    requested = (
        "launch openid fhirUser online_access patient/Observation.rs user/Observation.rs "
        "system/*.rs launch/patient patient/Condition.read nonsense patient/Observation.rs"
    )
    assert granted_scopes(requested) == (
        "launch", "fhirUser", "online_access", "patient/Observation.rs", "patient/Condition.read"
    )  # fmt: skip


def test_tokens_issued_for_the_cds_client(app: Flask) -> None:
    issued = state(app).auth.issue_token(OTHER, "patient/Observation.rs launch")
    assert issued.patient == OTHER
    assert issued.scope == "patient/Observation.rs launch"
    grant = state(app).auth.check(issued.access_token)
    assert grant is not None and grant.patient == OTHER
    assert state(app).auth.check("nope") is None
