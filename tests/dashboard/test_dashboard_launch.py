"""The dashboard behind a real SMART launch (smartapp.smart with the EHR mocked by
``responses``; tests/smart/flow.py): the session cookie, the granted scopes, the launch's
appContext and a forced token refresh reach the page without any seam."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import responses
from flask import Flask

from smartapp.cds_hooks.discovery import PREFETCH
from tests.cds_hooks.requests_builder import AS_OF, FakeFhir, patient
from tests.smart import flow

NAME = "clozapine-week10-mild"


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    app = flow.make_app(tmp_path)
    app.extensions["smartapp.today"] = lambda: AS_OF
    return app


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def serve_patient(rsps: responses.RequestsMock, accepted: set[str]) -> FakeFhir:
    fake = FakeFhir(patient(NAME), base=flow.ISS)

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in accepted:
            return 401, {}, '{"resourceType": "OperationOutcome", "issue": []}'
        return fake._answer(request)

    pattern = re.compile(re.escape(flow.ISS) + r"/(?!\.well-known).*")
    rsps.add_callback(responses.GET, pattern, callback=answer)
    return fake


def test_launch_lands_on_the_card_finding_and_shows_it(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    fake = serve_patient(rsps, {flow.ACCESS})
    client = app.test_client()
    context = json.dumps({"finding": "anc-mild", "patient": fake.p.patient_id})
    body = flow.token_body(patient=fake.p.patient_id, appContext=context, fhirUser="Practitioner/7")
    landed = flow.launch(client, rsps, body)
    assert landed.status_code == 302 and landed.headers["Location"] == "/app#anc-mild"
    page = client.get("/app")
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html
    assert 'id="anc-mild" class="finding severity-warning highlighted"' in html
    # flow's scopes grant no MedicationDispense/Administration or DiagnosticReport
    for refused in ("MedicationDispense", "MedicationAdministration", "DiagnosticReport"):
        assert f"did not grant read access to {refused}." in html
    assert not any("MedicationDispense" in url for url in fake.calls)
    assert len(fake.calls) == len(PREFETCH) - 3
    assert 'id="data-unavailable"' in html


def test_a_401_refreshes_the_token_once_and_the_page_renders(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    fake = serve_patient(rsps, {"at-2"})
    client = app.test_client()
    flow.launch(client, rsps, flow.token_body(patient=fake.p.patient_id))
    refreshed = flow.token_body(access_token="at-2", refresh_token="rt-2")  # noqa: S106 - test data
    rsps.post(flow.TOKEN, json=refreshed)
    page = client.get("/app")
    assert page.status_code == 200
    refreshes = [b for b in flow.token_requests(rsps) if b["grant_type"] == "refresh_token"]
    assert [b["refresh_token"] for b in refreshes] == [flow.REFRESH]
    assert 'id="anc-mild"' in page.get_data(as_text=True)


def test_a_statement_is_recorded_with_the_launch_user(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    fake = serve_patient(rsps, {flow.ACCESS})
    client = app.test_client()
    flow.launch(client, rsps, flow.token_body(patient=fake.p.patient_id, fhirUser="Practitioner/7"))
    html = client.get("/app").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token is not None
    posted = client.post(
        "/app/statements",
        data={"csrf_token": token.group(1), "kind": "ben-confirmed", "ben": "true"},
    )
    assert posted.status_code == 303
    after = client.get("/app").get_data(as_text=True)
    assert "<td>confirmed</td><td>Practitioner/7</td>" in after
    assert 'id="anc-normal"' in after and 'id="anc-mild"' not in after


def test_without_a_launch_the_page_asks_for_one(app: Flask) -> None:
    page = app.test_client().get("/app")
    assert page.status_code == 401
    assert "No patient open" in page.get_data(as_text=True)
