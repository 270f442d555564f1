"""The app with the dashboard, a launch put in place through the view's seams, and the
patient's FHIR server mocked with ``responses`` (tests/cds_hooks/requests_builder.FakeFhir)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient

from smartapp.app import create_app
from smartapp.dashboard import views
from smartapp.fhir_client import FhirClient
from smartapp.smart.client_auth import _generated_jwks
from smartapp.smart.context import LaunchContext, LaunchExpired
from tests.cds_hooks.requests_builder import (
    AS_OF,
    FHIR_BASE,
    FakeFhir,
    Patient,
    _normalised,
    patient,
)

ALL_SCOPES = (
    "launch", "openid", "fhirUser", "patient/Patient.rs", "patient/MedicationRequest.rs",
    "patient/MedicationDispense.rs", "patient/MedicationAdministration.rs",
    "patient/Medication.rs", "patient/Observation.rs", "patient/Condition.rs",
    "patient/DiagnosticReport.rs",
)  # fmt: skip
USER = "Practitioner/dr-okafor"


def make_app(tmp_path: Path) -> Flask:
    jwks = tmp_path / "private_jwks.json"
    jwks.write_bytes(_generated_jwks())
    app = create_app({
        "DATABASE_URL": f"sqlite:///{tmp_path}/app.db",
        "CDS_VERIFY_JWT": False,
        "SECRET_KEY": "dashboard-test-secret",
        "TOKEN_KEY": Fernet.generate_key().decode(),
        "SMART_PRIVATE_JWKS_PATH": str(jwks),
    })  # fmt: skip
    app.testing = True
    app.extensions["smartapp.today"] = lambda: AS_OF
    return app


def launch_for(p: Patient, **changes: Any) -> LaunchContext:
    base = LaunchContext(
        session_id="session-1", fhir_base=FHIR_BASE, patient_id=p.patient_id, encounter_id=None,
        fhir_user=USER, need_patient_banner=True, smart_style_url=None,
        granted_scopes=ALL_SCOPES, app_context=None, intent=None, fhir_context=(),
    )  # fmt: skip
    return replace(base, **changes)


@dataclass
class Ehr:
    """The launch in place and the patient's FHIR server: ``tokens`` are the bearer tokens the
    server accepts; the view's client uses ``stale`` until it asks for a refresh."""

    app: Flask
    client: FlaskClient
    rsps: responses.RequestsMock
    p: Patient | None = None
    launch: LaunchContext | None = None
    fake: FakeFhir | None = None
    accepted: set[str] = field(default_factory=lambda: {"token-1"})
    token: str = "token-1"  # noqa: S105 - test token
    refreshed_token: str = "token-2"  # noqa: S105 - test token
    refreshes: int = 0
    refresh_fails: bool = False
    forbidden: set[str] = field(default_factory=set)  # prefetch keys answered with 403

    def open(self, name: str, **changes: Any) -> Ehr:
        self.p = patient(name)
        self.launch = launch_for(self.p, **changes)
        self.fake = FakeFhir(self.p)
        self.rsps.add_callback(
            responses.GET, re.compile(re.escape(FHIR_BASE) + r"/.*"), callback=self._answer
        )
        return self

    def _answer(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        assert self.fake is not None
        sent = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
        if sent not in self.accepted:
            self.fake.calls.append(str(request.url))
            return 401, {}, '{"resourceType": "OperationOutcome", "issue": []}'
        path, query = _normalised(str(request.url))
        if self.fake.queries().get((path, query)) in self.forbidden:
            self.fake.calls.append(str(request.url))
            return 403, {}, '{"resourceType": "OperationOutcome", "issue": []}'
        return self.fake._answer(request)

    def relaunch(self, **changes: Any) -> None:
        """The same launch with some context changed (banner, appContext...)."""
        assert self.launch is not None
        self.launch = replace(self.launch, **changes)

    def fhir_client(self, launch: LaunchContext, force_refresh: bool) -> FhirClient:
        if force_refresh:
            self.refreshes += 1
            if self.refresh_fails:
                raise LaunchExpired("refresh refused")
            self.token = self.refreshed_token
        return FhirClient(launch.fhir_base, self.token, backoff_s=0)

    def get(self, path: str = "/app") -> Page:
        response = self.client.get(path)
        return Page(response.status_code, response.get_data(as_text=True), response.headers)


@dataclass
class Page:
    status: int
    html: str
    headers: Any

    def elements(self) -> list[tuple[str, dict[str, str]]]:
        collector = _Collector()
        collector.feed(self.html)
        return collector.found

    def by_id(self, element_id: str) -> dict[str, str] | None:
        return next((a for _, a in self.elements() if a.get("id") == element_id), None)

    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.elements() if "id" in a}

    def with_class(self, cls: str) -> list[dict[str, str]]:
        return [a for _, a in self.elements() if cls in a.get("class", "").split()]

    def csrf(self) -> str:
        match = re.search(r'name="csrf_token" value="([^"]+)"', self.html)
        assert match, "no CSRF token on the page"
        return match.group(1)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))


@pytest.fixture
def ehr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ehr]:
    app = make_app(tmp_path)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        state = Ehr(app, app.test_client(), rsps)
        monkeypatch.setattr(views, "launch_provider", lambda: state.launch)
        monkeypatch.setattr(views, "client_provider", state.fhir_client)
        yield state
