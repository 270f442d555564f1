"""Tokens on the server: refresh before expiry with rotation, forced refresh after a 401,
"please relaunch" when refresh fails, and reading token responses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient

from smartapp.smart.context import LaunchExpired, can_read, current_launch, fhir_client
from smartapp.smart.tokens import TokenResponseError, read_token_response
from tests.smart import flow
from tests.smart.flow import ISS, TOKEN

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OTHER = {"access_token": "at-other", "refresh_token": "rt-other"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(app: Flask) -> Clock:
    clock = Clock()
    app.extensions["smartapp.smart"].clock = clock
    return clock


def _patient_token(client: FlaskClient, rsps: responses.RequestsMock, **kw: bool) -> str:
    """The bearer token the app's FHIR client sends, after a fhir_client() call."""
    rsps.get(f"{ISS}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    with client:
        client.get("/healthz")
        launch = current_launch()
        assert launch is not None
        fhir_client(launch, **kw).read("Patient", "p1")
    return rsps.calls[-1].request.headers["Authorization"]


def _refresh_bodies(rsps: responses.RequestsMock) -> list[dict[str, str]]:
    return [b for b in flow.token_requests(rsps) if b["grant_type"] == "refresh_token"]


def test_a_token_is_refreshed_before_expiry_and_a_rotated_refresh_token_replaces_the_old(
    app: Flask, rsps: responses.RequestsMock, clock: Clock
) -> None:
    client = app.test_client()
    flow.launch(client, rsps, flow.token_body(expires_in=3600))
    assert _patient_token(client, rsps) == f"Bearer {flow.ACCESS}"  # an hour left: as is
    assert _refresh_bodies(rsps) == []
    clock.now += timedelta(seconds=3600 - 59)  # inside the 60 s margin
    rsps.post(TOKEN, json={"access_token": "at-2", "token_type": "bearer", "expires_in": 3600,
                           "refresh_token": "rt-2"})  # fmt: skip
    assert _patient_token(client, rsps) == "Bearer at-2"
    clock.now += timedelta(seconds=3600)
    rsps.post(TOKEN, json={"access_token": "at-3", "token_type": "Bearer", "expires_in": 3600})
    assert _patient_token(client, rsps) == "Bearer at-3"
    refreshes = _refresh_bodies(rsps)
    assert [b["refresh_token"] for b in refreshes] == [flow.REFRESH, "rt-2"]
    assert all(b["client_id"] == flow.CLIENT_ID for b in refreshes)  # public client
    clock.now += timedelta(seconds=3600)
    rsps.post(TOKEN, json={"access_token": "at-4", "token_type": "Bearer", "expires_in": 3600})
    assert _patient_token(client, rsps) == "Bearer at-4"
    # The server sent no new refresh token the last time: the current one is kept.
    assert _refresh_bodies(rsps)[-1]["refresh_token"] == "rt-2"  # noqa: S105 - test data


def test_force_refresh_after_a_401_refreshes_even_a_fresh_token(
    app: Flask, rsps: responses.RequestsMock, clock: Clock
) -> None:
    client = app.test_client()
    flow.launch(client, rsps)
    rsps.post(TOKEN, json={"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600})
    assert _patient_token(client, rsps, force_refresh=True) == "Bearer at-2"
    assert len(_refresh_bodies(rsps)) == 1


def test_a_refused_refresh_asks_for_a_relaunch(
    app: Flask, rsps: responses.RequestsMock, clock: Clock
) -> None:
    client = app.test_client()
    flow.launch(client, rsps, flow.token_body(expires_in=30))
    rsps.post(TOKEN, status=400, json={"error": "invalid_grant"})
    with client:
        client.get("/healthz")
        launch = current_launch()
        assert launch is not None
        with pytest.raises(LaunchExpired):
            fhir_client(launch)


def test_an_expiring_token_without_refresh_token_asks_for_a_relaunch(
    app: Flask, rsps: responses.RequestsMock, clock: Clock
) -> None:
    client = app.test_client()
    flow.launch(client, rsps, flow.token_body(expires_in=30, refresh_token=None))
    with client:
        client.get("/healthz")
        launch = current_launch()
        assert launch is not None
        with pytest.raises(LaunchExpired):
            fhir_client(launch)
    assert _refresh_bodies(rsps) == []


def test_launch_expired_in_a_page_renders_the_relaunch_page(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    def page() -> str:
        launch = current_launch()
        assert launch is not None
        fhir_client(launch, force_refresh=True)
        return "unreachable"

    app.add_url_rule("/test-page", "test_page", page)
    client = app.test_client()
    flow.launch(client, rsps, flow.token_body(refresh_token=None))
    response = client.get("/test-page")
    assert response.status_code == 401
    assert response.mimetype == "text/html"
    assert "launch the app again" in response.get_data(as_text=True).lower()


def test_logout_ends_the_server_side_session(app: Flask, rsps: responses.RequestsMock) -> None:
    client = app.test_client()
    flow.launch(client, rsps)
    with client:
        client.get("/healthz")
        launch = current_launch()
        from smartapp.smart.security import csrf_token

        token = csrf_token()
    assert launch is not None
    assert client.post("/logout", data={"csrf_token": token}).status_code == 200
    with client:
        client.get("/healthz")
        assert current_launch() is None
        with pytest.raises(LaunchExpired):
            fhir_client(launch)


def test_a_refresh_that_narrows_scope_narrows_can_read(
    app: Flask, rsps: responses.RequestsMock, clock: Clock
) -> None:
    client = app.test_client()
    flow.launch(client, rsps)
    rsps.post(TOKEN, json={"access_token": "at-2", "token_type": "Bearer", "expires_in": 60,
                           "scope": "patient/Patient.rs"})  # fmt: skip
    _patient_token(client, rsps, force_refresh=True)
    with client:
        client.get("/healthz")
        launch = current_launch()
    assert launch is not None
    assert can_read(launch, "Patient") and not can_read(launch, "Observation")


def test_scope_downgrade_at_launch_is_seen_by_can_read(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    vital_signs = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"
    granted = " ".join([
        "launch", "openid", "patient/Patient.rs", "patient/MedicationRequest.read",
        f"patient/Observation.rs?category={vital_signs}",
    ])  # fmt: skip
    client = app.test_client()
    flow.launch(client, rsps, flow.token_body(scope=granted))
    with client:
        client.get("/healthz")
        launch = current_launch()
    assert launch is not None
    assert can_read(launch, "Patient") and can_read(launch, "MedicationRequest")
    assert not can_read(launch, "Observation")  # only a granular scope
    assert not can_read(launch, "Condition")  # refused


def _read(body: dict[str, Any], **kw: Any) -> Any:
    options = {"requested": "patient/Observation.rs", "now": NOW,
               "missing_scope_is_requested": False} | kw  # fmt: skip
    return read_token_response(body, **options)


@pytest.mark.parametrize(
    ("expires_in", "expected"),
    [(3600, NOW + timedelta(hours=1)), ("300", NOW + timedelta(minutes=5)), (None, None),
     (-5, None), ("soon", None), (True, None)],
)  # fmt: skip
def test_expires_in_is_read_or_left_unknown(expires_in: Any, expected: datetime | None) -> None:
    tokens, _ = _read(flow.token_body(expires_in=expires_in))
    assert tokens.expires_at == expected


@pytest.mark.parametrize(
    "changes",
    [{"access_token": ""}, {"token_type": None}, {"token_type": "DPoP"}, {"scope": ["a"]},
     {"patient": 7}, {"encounter": "a/b"}, {"refresh_token": 5}],
)  # fmt: skip
def test_malformed_token_responses_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(TokenResponseError):
        _read({**flow.token_body(), **changes})


def test_app_context_objects_are_kept_as_json_text() -> None:
    _, params = _read(flow.token_body(appContext={"finding": "anc-mild"}))
    assert params.app_context == '{"finding": "anc-mild"}'


def test_a_tampered_stored_session_reads_as_no_launch(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    client = app.test_client()
    flow.launch(client, rsps)
    with app.app_context():
        engine = app.extensions["smartapp.db"].engine
        with engine.begin() as conn:
            conn.exec_driver_sql("update server_session set data = X'00'")
    with client:
        client.get("/healthz")
        assert current_launch() is None


def test_tokens_are_unreadable_with_another_key(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    first = flow.make_app(tmp_path)
    client = first.test_client()
    flow.launch(client, rsps)
    cookie = client.get_cookie("__Host-smartapp")
    assert cookie is not None
    second = flow.make_app(tmp_path)  # same database and SECRET_KEY, new TOKEN_KEY
    for app, readable in ((first, True), (second, False)):
        with app.test_client() as other:
            other.set_cookie("__Host-smartapp", cookie.value)
            other.get("/healthz")
            assert (current_launch() is not None) is readable


def test_a_state_claimed_concurrently_by_another_process_is_refused(app: Flask) -> None:
    from smartapp.persistence import store
    from smartapp.smart.tokens import STATE_ISSUER, PendingLaunch, StateError, state_digest

    rt = app.extensions["smartapp.smart"]
    pending = PendingLaunch(ISS, "L", "v" * 43, "launch", TOKEN, None, None)
    expires = datetime.now(UTC) + timedelta(minutes=5)
    rt.store.put_pending("state-1", pending, expires)
    rt.store.put_pending("state-2", pending, expires)
    # The other process read the pending launch too and claimed the state first.
    assert store.remember_jti(rt.store.db, STATE_ISSUER, state_digest("state-1"), expires)
    with pytest.raises(StateError, match="already used"):
        rt.store.take_pending("state-1", expires)
    assert rt.store.take_pending("state-2", expires) == pending


def test_a_refresh_lost_to_another_process_adopts_that_process_tokens(
    app: Flask, rsps: responses.RequestsMock, clock: Clock
) -> None:
    from dataclasses import replace

    client = app.test_client()
    flow.launch(client, rsps, flow.token_body(expires_in=30))
    with client:
        client.get("/healthz")
        launch = current_launch()
    assert launch is not None
    rt = app.extensions["smartapp.smart"]

    def other_process_wins(request: Any) -> tuple[int, dict[str, str], str]:
        # Another worker refreshed with the same refresh token a moment earlier and stored
        # the rotated tokens; the server now refuses the old refresh token.
        record = rt.store.load(launch.session_id)
        rotated = replace(record.tokens, **OTHER, expires_at=clock.now + timedelta(hours=1))
        rt.store.save(launch.session_id, replace(record, tokens=rotated))
        return 400, {"Content-Type": "application/json"}, '{"error": "invalid_grant"}'

    rsps.add_callback(responses.POST, TOKEN, callback=other_process_wins)
    assert _patient_token(client, rsps) == "Bearer at-other"
    assert [b["refresh_token"] for b in _refresh_bodies(rsps)] == [flow.REFRESH]


def test_concurrent_forced_refreshes_of_one_session_refresh_once(
    app: Flask, rsps: responses.RequestsMock, clock: Clock
) -> None:
    from smartapp.smart.context import _refreshed

    client = app.test_client()
    flow.launch(client, rsps)
    rt = app.extensions["smartapp.smart"]
    with client:
        client.get("/healthz")
        launch = current_launch()
    assert launch is not None
    seen = rt.store.load(launch.session_id)  # what two requests that both got a 401 had read
    rsps.post(TOKEN, json={"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
                           "refresh_token": "rt-2"})  # fmt: skip
    with app.app_context():
        first = _refreshed(rt, launch.session_id, seen, force=True)
        second = _refreshed(rt, launch.session_id, seen, force=True)
    assert first.tokens.access_token == second.tokens.access_token == "at-2"  # noqa: S105 - test data
    assert [b["refresh_token"] for b in _refresh_bodies(rsps)] == [flow.REFRESH]
