"""What the launch takes from the EHR besides tokens: the user's identity (a validated
id_token's fhirUser) and the EHR's style (sanitised, served from our origin)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import responses
from flask import Flask
from joserfc import jwt
from joserfc.jwk import RSAKey

from smartapp.smart.context import current_launch
from smartapp.smart.style import css, sanitize
from tests.smart import flow

EHR_KEY = RSAKey.generate_key(2048, parameters={"kid": "ehr-1"}, private=True)
USER = "https://ehr.example/fhir/r4/Practitioner/9"
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "ehr-1"}, private=True)


def id_token(key: RSAKey = EHR_KEY, **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": flow.ISSUER, "aud": flow.CLIENT_ID, "sub": "u9", "iat": now,
              "exp": now + 300, "fhirUser": USER}  # fmt: skip
    claims.update(changes)
    return jwt.encode({"alg": "RS256", "kid": "ehr-1"}, claims, key, algorithms=["RS256"])


def _user_after_launch(app: Flask, rsps: responses.RequestsMock, **body: Any) -> str | None:
    rsps.get(flow.JWKS, json={"keys": [EHR_KEY.as_dict(private=False)]})
    client = app.test_client()
    assert flow.launch(client, rsps, flow.token_body(**body)).status_code == 302
    with client:
        client.get("/healthz")
        launch = current_launch()
    assert launch is not None
    return launch.fhir_user


def test_fhir_user_comes_from_a_validated_id_token(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    user = _user_after_launch(app, rsps, id_token=id_token())
    assert user == USER


@pytest.mark.parametrize(
    "token",
    [
        id_token(OTHER_KEY),  # not signed by the EHR's key
        id_token(aud="someone-else"),
        id_token(iss="https://attacker.example"),
        id_token(exp=int(time.time()) - 3600),
    ],
)
def test_claims_of_an_invalid_id_token_are_not_used(
    app: Flask, rsps: responses.RequestsMock, token: str
) -> None:
    assert _user_after_launch(app, rsps, id_token=token) is None
    assert _user_after_launch(app, rsps, id_token=token, fhirUser="Practitioner/7") == (
        "Practitioner/7"  # the token response's own member, sent directly over TLS
    )


def test_smart_style_values_are_checked_and_served_from_our_origin(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    style_url = "https://ehr.example/styles/v1.json"
    rsps.get(style_url, json={
        "color_background": "#edeae3", "color_text": "red;}body{background:url(//x)",
        "font_family_body": "Georgia, 'Times New Roman', serif", "dim_font_size": "13px",
        "color_error": "expression(alert(1))", "unknown": "#000"})  # fmt: skip
    client = app.test_client()
    flow.launch(client, rsps, flow.token_body(smart_style_url=style_url))
    response = client.get("/smart/style.css")
    sheet = response.get_data(as_text=True)
    assert response.mimetype == "text/css"
    assert "--smart-color-background: #edeae3;" in sheet
    assert "--smart-font-family-body: Georgia, 'Times New Roman', serif;" in sheet
    assert "--smart-dim-font-size: 13px;" in sheet
    assert "url(" not in sheet and "expression" not in sheet and "unknown" not in sheet


def test_a_failing_style_url_leaves_the_app_style(app: Flask, rsps: responses.RequestsMock) -> None:
    rsps.get("https://ehr.example/style.json", status=500)
    client = app.test_client()
    response = flow.launch(
        client, rsps, flow.token_body(smart_style_url="https://ehr.example/style.json")
    )
    assert response.status_code == 302
    assert client.get("/smart/style.css").get_data(as_text=True) == ":root {\n\n}\n"


@pytest.mark.parametrize(
    ("value", "kept"),
    [("#fff", True), ("rgba(0, 0, 0, 0.5)", True), ("#fff;}", False), ("Arial\"", False),
     ("'Open Sans', sans-serif", True), ("1.5em", True), ("12px; x", False)],
)  # fmt: skip
def test_style_value_patterns(value: str, kept: bool) -> None:
    key = "font_family_body" if "'" in value or "Arial" in value else (
        "dim_spacing_size" if value[0].isdigit() else "color_text")  # fmt: skip
    assert (key in sanitize({key: value})) is kept
    assert css({}) == ":root {\n\n}\n"
