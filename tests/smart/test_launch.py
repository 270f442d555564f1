"""The launch flow (issue 4 "Tests that must exist"; standards-checklist.md SMART app): the
authorize redirect, the callback's state handling, and the token response read in full."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import responses
from flask import Flask

from smartapp.smart.context import current_launch, runtime
from tests.smart import flow
from tests.smart.flow import ISS, TOKEN


def test_authorize_redirect_has_pkce_s256_fresh_state_aud_and_launch(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    flow.mock_discovery(rsps)
    params = flow.authorize_params(app.test_client(), iss=ISS, launch="launch-123")
    assert params["response_type"] == "code"
    assert params["client_id"] == flow.CLIENT_ID
    assert params["redirect_uri"] == flow.REDIRECT
    assert params["aud"] == ISS
    assert params["launch"] == "launch-123"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43  # SHA-256, base64url without padding
    assert len(params["state"]) >= 43  # >= 256 bits of randomness, base64url
    scopes = params["scope"].split()
    assert scopes[0] == "launch" and "launch/patient" not in scopes
    assert {"openid", "fhirUser", "offline_access", "patient/Observation.rs"} <= set(scopes)
    assert "online_access" not in scopes  # offline_access requested instead (launch.json)


def test_pkce_challenge_is_the_sha256_of_the_verifier_sent_to_the_token_endpoint(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    client = app.test_client()
    flow.mock_discovery(rsps)
    rsps.post(TOKEN, json=flow.token_body())
    params = flow.authorize_params(client, iss=ISS, launch="L")
    assert flow.callback(client, params).status_code == 302
    [sent] = flow.token_requests(rsps)
    verifier = sent["code_verifier"]
    assert 43 <= len(verifier) <= 128
    assert flow.s256(verifier) == params["code_challenge"]
    assert sent["grant_type"] == "authorization_code"
    assert sent["code"] == "code-1"
    assert sent["redirect_uri"] == flow.REDIRECT


def test_every_launch_gets_its_own_state_and_verifier(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    flow.mock_discovery(rsps)
    client = app.test_client()
    first = flow.authorize_params(client, iss=ISS, launch="L")
    second = flow.authorize_params(client, iss=ISS, launch="L")
    assert first["state"] != second["state"]
    assert first["code_challenge"] != second["code_challenge"]


def test_public_client_sends_client_id_and_no_secret(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    assert flow.launch(app.test_client(), rsps).status_code == 302
    call = next(c for c in rsps.calls if c.request.url == TOKEN)
    assert flow.form(call.request.body)["client_id"] == flow.CLIENT_ID
    assert "client_secret" not in flow.form(call.request.body)
    assert "Authorization" not in call.request.headers


def test_a_state_is_used_once(app: Flask, rsps: responses.RequestsMock) -> None:
    client = app.test_client()
    flow.mock_discovery(rsps)
    rsps.post(TOKEN, json=flow.token_body())
    params = flow.authorize_params(client, iss=ISS, launch="L")
    assert flow.callback(client, params).status_code == 302
    again = flow.callback(client, params, code="code-2")
    assert again.status_code == 400
    assert "expired" in again.get_data(as_text=True)
    assert len(flow.token_requests(rsps)) == 1  # the second code was never exchanged
    with app.app_context():
        engine = app.extensions["smartapp.db"].engine
        with engine.connect() as conn:
            ids = [r[0] for r in conn.exec_driver_sql("select id from server_session")]
    assert len(ids) == 1 and ids[0].startswith("smart-launch:")  # the pending state is gone


def test_unknown_or_missing_state_is_refused(app: Flask, rsps: responses.RequestsMock) -> None:
    client = app.test_client()
    flow.mock_discovery(rsps)
    flow.authorize_params(client, iss=ISS, launch="L")
    wrong = client.get("/callback", query_string={"code": "c", "state": "forged-state"})
    missing = client.get("/callback", query_string={"code": "c"})
    assert wrong.status_code == 400 and missing.status_code == 400
    assert "no state" in missing.get_data(as_text=True)
    assert flow.token_requests(rsps) == []


def test_an_expired_state_is_refused(app: Flask, rsps: responses.RequestsMock) -> None:
    client = app.test_client()
    flow.mock_discovery(rsps)
    rt = app.extensions["smartapp.smart"]
    rt.clock = lambda: datetime.now(UTC) - rt.state_ttl - timedelta(seconds=1)
    params = flow.authorize_params(client, iss=ISS, launch="L")
    rt.clock = lambda: datetime.now(UTC)
    assert flow.callback(client, params).status_code == 400
    assert flow.token_requests(rsps) == []


def test_a_callback_started_by_another_browser_is_refused(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    flow.mock_discovery(rsps)
    rsps.post(TOKEN, json=flow.token_body())
    victim, attacker = app.test_client(), app.test_client()
    flow.authorize_params(victim, iss=ISS, launch="L")  # the victim's cookie lists its own state
    planted = flow.authorize_params(attacker, iss=ISS, launch="L")
    response = flow.callback(victim, planted)
    assert response.status_code == 400
    assert "did not start" in response.get_data(as_text=True)
    assert flow.token_requests(rsps) == []


def test_a_browser_that_dropped_the_cookie_still_completes_the_launch(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    flow.mock_discovery(rsps)
    rsps.post(TOKEN, json=flow.token_body())
    params = flow.authorize_params(app.test_client(), iss=ISS, launch="L")
    iframe = app.test_client()  # no cookie: a third-party iframe that drops them
    assert flow.callback(iframe, params).status_code == 302


def test_standalone_launch_uses_the_default_server_and_launch_patient(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    flow.mock_discovery(rsps)
    params = flow.authorize_params(app.test_client())
    assert params["aud"] == ISS
    assert "launch" not in params
    scopes = params["scope"].split()
    assert "launch/patient" in scopes and "launch" not in scopes


def test_iss_not_on_the_allow_list_is_refused_before_any_request(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    for iss in ("https://evil.example/fhir", f"{ISS}/../other", ISS + "x"):
        response = app.test_client().get("/launch", query_string={"iss": iss, "launch": "L"})
        assert response.status_code == 403
        assert "not registered" in response.get_data(as_text=True)
    assert len(rsps.calls) == 0


def test_wildcard_allow_list_entry_matches_paths_below_it(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    sim = "https://launcher.example/v/r4/sim/eyJhIjoxfQ/fhir"
    app = flow.make_app(tmp_path, flow.registration(
        allowed_fhir_servers=["https://launcher.example/v/r4/sim/*"]))  # fmt: skip
    flow.mock_discovery(rsps, iss=sim)
    assert flow.authorize_params(app.test_client(), iss=sim, launch="L")["aud"] == sim
    other = app.test_client().get(
        "/launch", query_string={"iss": "https://launcher.example/v/r4/fhir"}
    )
    assert other.status_code == 403


def test_launch_without_iss_is_refused(app: Flask) -> None:
    response = app.test_client().get("/launch", query_string={"launch": "L"})
    assert response.status_code == 400
    assert response.mimetype == "text/html"


def test_oauth_error_redirect_shows_a_page_and_consumes_the_state(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    client = app.test_client()
    flow.mock_discovery(rsps)
    params = flow.authorize_params(client, iss=ISS, launch="L")
    answer = {"error": "access_denied", "error_description": "User said no"}
    denied = client.get("/callback", query_string={**answer, "state": params["state"]})
    page = denied.get_data(as_text=True)
    assert denied.status_code == 403 and "Location" not in denied.headers
    assert "declined" in page and "User said no" in page and "access_denied" in page
    assert flow.callback(client, params).status_code == 400  # the state is gone
    scope = client.get("/callback", query_string={"error": "invalid_scope"})
    assert scope.status_code == 403 and "registration" in scope.get_data(as_text=True)


def test_token_endpoint_error_shows_a_page_and_starts_no_session(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    client = app.test_client()
    flow.mock_discovery(rsps)
    rsps.post(TOKEN, status=400, json={"error": "invalid_grant"})
    params = flow.authorize_params(client, iss=ISS, launch="L")
    response = flow.callback(client, params)
    assert response.status_code == 502
    assert "invalid_grant" in response.get_data(as_text=True)
    with client:
        client.get("/healthz")
        assert current_launch() is None


@pytest.mark.parametrize(
    ("reply", "shown"),
    [
        ({"status": 500, "body": "<html>down</html>"}, "no usable answer"),
        ({"json": flow.token_body(access_token=None)}, "no access_token"),
        ({"json": flow.token_body(token_type="mac")}, "not Bearer"),  # noqa: S106 - test data
        ({"json": flow.token_body(patient="../Patient/2")}, "not a FHIR id"),
    ],
)
def test_unusable_token_answers_show_a_page(
    app: Flask, rsps: responses.RequestsMock, reply: dict[str, object], shown: str
) -> None:
    client = app.test_client()
    flow.mock_discovery(rsps)
    rsps.post(TOKEN, **reply)  # type: ignore[arg-type]
    response = flow.callback(client, flow.authorize_params(client, iss=ISS, launch="L"))
    assert response.status_code == 502
    assert shown in response.get_data(as_text=True)


def test_the_whole_token_response_is_read(app: Flask, rsps: responses.RequestsMock) -> None:
    body = flow.token_body(
        token_type="bEaReR",  # noqa: S106 - test data
        scope="launch openid patient/Observation.rs patient/Condition.read",
        encounter="e7",
        fhirUser="Practitioner/9",
        need_patient_banner=False,
        intent="reconcile-medications",
        fhirContext=[{"reference": "Encounter/e7"}, "junk"],
        appContext='{"finding": "anc-mild", "patient": "p1"}',
        unknown_member={"ignored": True},
    )
    client = app.test_client()
    response = flow.launch(client, rsps, body)
    assert response.headers["Location"] == "/app#anc-mild"
    with client:
        client.get("/healthz")
        launch = current_launch()
    assert launch is not None
    assert (launch.fhir_base, launch.patient_id, launch.encounter_id) == (ISS, "p1", "e7")
    assert launch.fhir_user == "Practitioner/9"
    assert launch.need_patient_banner is False
    assert launch.intent == "reconcile-medications"
    assert launch.fhir_context == ({"reference": "Encounter/e7"},)
    assert launch.granted_scopes == (
        "launch", "openid", "patient/Observation.rs", "patient/Condition.read")  # fmt: skip


def test_banner_is_shown_when_the_ehr_does_not_say(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    client = app.test_client()
    flow.launch(client, rsps, flow.token_body(need_patient_banner=None))
    with client:
        client.get("/healthz")
        launch = current_launch()
    assert launch is not None and launch.need_patient_banner is True


@pytest.mark.parametrize(
    ("app_context", "landing"),
    [
        (None, "/app"),
        ('{"finding": "level-high", "patient": "p1"}', "/app#level-high"),
        ('{"finding": "level-high"}', "/app#level-high"),
        ('{"finding": "no-such-code", "patient": "p1"}', "/app"),
        ('{"finding": "level-high", "patient": "p2"}', "/app"),  # another patient: not followed
        ('"><script>', "/app"),
    ],
)
def test_callback_lands_on_the_finding_a_card_named(
    app: Flask, rsps: responses.RequestsMock, app_context: str | None, landing: str
) -> None:
    response = flow.launch(app.test_client(), rsps, flow.token_body(appContext=app_context))
    assert response.headers["Location"] == landing


def test_tokens_never_reach_the_browser_or_the_log(
    app: Flask, rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    caplog.set_level(logging.DEBUG)
    flow.mock_discovery(rsps)
    rsps.post(TOKEN, json=flow.token_body())
    params = flow.authorize_params(client, iss=ISS, launch="L")
    response = flow.callback(client, params, code="code-secret-77")
    secrets = [flow.ACCESS, flow.REFRESH, "code-secret-77", params["state"]]
    [sent] = flow.token_requests(rsps)
    secrets.append(sent["code_verifier"])
    cookies = response.headers.getlist("Set-Cookie")
    assert cookies
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    value = cookies[0].split(";", 1)[0].split("=", 1)[1]
    decoded = serializer.loads(value)
    assert set(decoded) == {"sid", "csrf"}
    for secret in secrets:
        assert all(secret not in c for c in cookies)
        assert secret not in str(decoded)
        assert not any(secret in r.getMessage() for r in caplog.records)
    with app.app_context():
        raw = runtime().store.db.engine.raw_connection()
        try:
            stored = b"".join(row[0] for row in raw.execute("select data from server_session"))
        finally:
            raw.close()
    assert flow.ACCESS.encode() not in stored and flow.REFRESH.encode() not in stored


def test_discovery_failure_shows_a_page(app: Flask, rsps: responses.RequestsMock) -> None:
    rsps.get(f"{ISS}/.well-known/smart-configuration", status=404)
    rsps.get(f"{ISS}/metadata", status=503)
    response = app.test_client().get("/launch", query_string={"iss": ISS, "launch": "L"})
    assert response.status_code == 502
    assert "could not be found" in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_missing_token_scope_grants_nothing_unless_the_policy_says_otherwise(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    (tmp_path / "a").mkdir()
    strict = flow.make_app(tmp_path / "a")
    client = strict.test_client()
    flow.launch(client, rsps, flow.token_body(scope=None))
    with client:
        client.get("/healthz")
        assert current_launch().granted_scopes == ()  # type: ignore[union-attr]
    (tmp_path / "b").mkdir()
    lenient = flow.make_app(tmp_path / "b", SMART_MISSING_SCOPE_IS_REQUESTED=True)
    client = lenient.test_client()
    flow.launch(client, rsps, flow.token_body(scope=None))
    with client:
        client.get("/healthz")
        assert "patient/Observation.rs" in current_launch().granted_scopes  # type: ignore[union-attr]
