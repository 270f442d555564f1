"""The dashboard against the real test FHIR server (tests/fhir_server, Medplum's fhir-router):
synthetic patients loaded, the launch's client pointing at the server, real searches and
paging. The ten-year benchmark patient renders completely (its time is measured by the
end-to-end test, not asserted here)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask

from fhir_mappings.record import build_record
from smartapp.dashboard import views
from smartapp.fhir_client import FhirClient
from smartapp.fhir_load import load_bundle
from smartapp.rules.anc_values import anc_series
from smartapp.smart.context import LaunchContext
from smartapp.synthetic import longitudinal, scenarios
from tests.cds_hooks.requests_builder import AS_OF, Patient
from tests.dashboard.conftest import Page, launch_for, make_app

if TYPE_CHECKING:
    from pathlib import Path

    from tests.fhir_server_fixture import FhirServer

LOAD_TIMEOUT_S = 60.0


def load(server: FhirServer, bundle: dict[str, Any]) -> str:
    with FhirClient(server.base, server.token, timeout=LOAD_TIMEOUT_S) as client:
        load_bundle(client, bundle)
    return next(
        e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    yield make_app(tmp_path)


def show(app: Flask, server: FhirServer, pid: str, monkeypatch: pytest.MonkeyPatch) -> Page:
    launch: LaunchContext = launch_for(Patient("x", pid, {}, []), fhir_base=server.base)
    monkeypatch.setattr(views, "launch_provider", lambda: launch)
    monkeypatch.setattr(
        views, "client_provider", lambda lc, _force: FhirClient(lc.fhir_base, None, timeout=30)
    )
    response = app.test_client().get("/app")
    return Page(response.status_code, response.get_data(as_text=True), response.headers)


@pytest.mark.parametrize(
    "name", ["ben-two-baselines-neutropenia", "levels-low-ratio-low", "trs-possible-no-dispensing"]
)
def test_synthetic_patient_from_the_fhir_server(
    fhir_server: FhirServer, app: Flask, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    scenario = scenarios.get(name)
    pid = load(fhir_server, scenario.bundle())
    page = show(app, fhir_server, pid, monkeypatch)
    assert page.status == 200, page.html
    shown = {a["id"] for a in page.with_class("finding")}
    assert set(scenario.expected_codes) <= shown
    assert "data-unavailable" not in shown


def test_ten_year_patient_renders_completely(
    fhir_server: FhirServer, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = longitudinal.ten_year_bundle()
    pid = load(fhir_server, bundle)
    app.extensions["smartapp.today"] = lambda: AS_OF
    page = show(app, fhir_server, pid, monkeypatch)
    assert page.status == 200, page.html
    assert "data-unavailable" not in {a["id"] for a in page.with_class("finding")}
    assert page.by_id("anc-chart") is not None
    record = build_record(bundle)
    assert page.html.count("<title>ANC ") == len(anc_series(record, AS_OF))  # every count charted
    gaps = [a for _, a in page.elements() if "gap" in a.get("class", "").split()]
    assert [g["data-days"] for g in gaps] == ["3", "44"]  # an interruption, then a new course
