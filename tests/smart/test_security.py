"""Security headers, cookie attributes and CSRF protection for the whole app (issue 4 item 5)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import responses
from flask import Flask

from smartapp.smart.security import csrf_token
from tests.smart import flow


def test_csp_frames_only_from_the_configured_ehr_origins_and_no_x_frame_options(
    app: Flask,
) -> None:
    for path in ("/healthz", "/launch?iss=https://evil.example/fhir", "/.well-known/jwks.json"):
        headers = app.test_client().get(path).headers
        policy = headers["Content-Security-Policy"]
        directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
        assert directives["frame-ancestors"] == ["'self'", flow.EHR_ORIGIN]
        assert directives["default-src"] == ["'self'"]
        assert directives["script-src"] == ["'self'"] and directives["style-src"] == ["'self'"]
        assert "'unsafe-inline'" not in policy
        assert "X-Frame-Options" not in headers
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_x_frame_options_set_by_a_view_is_removed(app: Flask) -> None:
    app.add_url_rule("/framed", "framed", lambda: ("x", 200, {"X-Frame-Options": "DENY"}))
    assert "X-Frame-Options" not in app.test_client().get("/framed").headers


def test_html_pages_are_not_cached_but_the_jwks_is(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/launch").headers["Cache-Control"] == "no-store"
    assert "max-age=3600" in client.get("/.well-known/jwks.json").headers["Cache-Control"]


def test_session_cookie_attributes_survive_an_ehr_iframe(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    response = flow.launch(app.test_client(), rsps)
    [cookie] = response.headers.getlist("Set-Cookie")
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert cookie.startswith("__Host-smartapp=")
    assert {"secure", "httponly", "samesite", "partitioned", "path"} <= attributes
    assert "SameSite=None" in cookie and "Path=/" in cookie
    assert "domain" not in attributes


def test_the_insecure_development_switch_says_so(
    tmp_path: Path, rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        app = flow.make_app(tmp_path, INSECURE_DEV_COOKIES=True)
    assert any("INSECURE_DEV_COOKIES" in r.getMessage() for r in caplog.records)
    [cookie] = flow.launch(app.test_client(), rsps).headers.getlist("Set-Cookie")
    assert cookie.startswith("smartapp_session=")
    assert "Secure" not in cookie and "SameSite=Lax" in cookie and "HttpOnly" in cookie


def _csrf(app: Flask, client: object) -> str:
    with client:  # type: ignore[attr-defined]
        client.get("/healthz")  # type: ignore[attr-defined]
        return csrf_token()


def test_a_form_post_without_the_csrf_token_is_refused(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    client = app.test_client()
    flow.launch(client, rsps)
    token = _csrf(app, client)
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": token[:-1]}):
        response = client.post("/logout", data=data)
        assert response.status_code == 400
        assert response.mimetype == "text/html"
        assert "expired" in response.get_data(as_text=True)
    assert client.post("/logout", headers={"X-CSRF-Token": token}).status_code == 200


def test_a_form_from_an_earlier_launch_is_refused_after_a_new_launch(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    client = app.test_client()
    flow.launch(client, rsps)
    old = _csrf(app, client)
    flow.launch(client, rsps, flow.token_body(patient="p2"))
    assert client.post("/logout", data={"csrf_token": old}).status_code == 400
    assert client.post("/logout", data={"csrf_token": _csrf(app, client)}).status_code == 200


def test_cds_hooks_json_api_is_not_subject_to_csrf(app: Flask) -> None:
    response = app.test_client().post("/cds-services/clozapine-patient-view", json={})
    assert response.status_code == 400
    assert response.json is not None and response.json["resourceType"] == "OperationOutcome"


def test_unknown_routes_keep_their_json_404(app: Flask) -> None:
    response = app.test_client().post("/no-such-form", data={"a": "b"})
    assert response.status_code in {404, 405}
    assert response.json is not None
