"""The CDS Hooks endpoints over HTTP (design.md Contract 2): discovery, each hook on the
synthetic patients, card field rules, prefetch present / missing / null, 412, audit, logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient

from smartapp.cds_hooks import discovery
from smartapp.cds_hooks.views import origin
from smartapp.persistence import store
from tests.cds_hooks import requests_builder as rb

SERVICE = "/cds-services/clozapine-{hook}"


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return rb.make_app(tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def fhir() -> Iterator[responses.RequestsMock]:
    """Every outbound HTTP call is mocked; an unexpected one fails the request."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def call(client: FlaskClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(SERVICE.format(hook=body["hook"]), json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.json is not None
    return response.json


def topics(cards: dict[str, Any]) -> dict[str, str]:
    """finding code (card source.topic.code) -> indicator."""
    return {c["source"]["topic"]["code"]: c["indicator"] for c in cards["cards"]}


# --- discovery -----------------------------------------------------------------------------


def test_discovery_lists_the_three_services(client: FlaskClient) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.json == discovery.discovery_document()
    services = {s["id"]: s["hook"] for s in response.json["services"]}
    assert services == {
        "clozapine-patient-view": "patient-view",
        "clozapine-order-select": "order-select",
        "clozapine-order-sign": "order-sign",
    }


def test_unknown_service_is_404_operation_outcome(client: FlaskClient) -> None:
    response = client.post("/cds-services/nope", json=rb.hook_body("trs-not-met"))
    assert response.status_code == 404
    assert response.json is not None
    assert response.json["resourceType"] == "OperationOutcome"
    assert response.json["issue"][0]["code"] == "not-found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/cds-services"),
        ("delete", "/cds-services"),
        ("get", "/cds-services/clozapine-order-sign"),
        ("put", "/cds-services/clozapine-order-sign"),
        ("get", "/cds-services/clozapine-order-sign/feedback"),
    ],
)
def test_wrong_method_is_405(client: FlaskClient, method: str, path: str) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert response.json is not None and response.json["resourceType"] == "OperationOutcome"
    assert "OPTIONS" in response.headers["Allow"]


# --- hooks on the synthetic patients -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "hook", "expected"),
    [
        ("ciprofloxacin-order-sign", "order-sign", {"interaction-cyp1a2-inhibitor": "warning"}),
        ("ciprofloxacin-order-sign", "order-select", {"interaction-cyp1a2-inhibitor": "warning"}),
        ("trs-met-third-antipsychotic", "order-sign", {"trs-met": "warning"}),
        ("new-start-baseline-missing", "order-sign", {"anc-baseline-missing": "critical"}),
        ("new-start-baseline-missing", "order-select", {"anc-baseline-missing": "critical"}),
        ("clozapine-week9-severe", "patient-view", {"anc-severe": "critical"}),
        ("myocarditis-day15-stop", "patient-view", {"myocarditis-stop": "critical"}),
        ("levels-alert-seizure-risk", "patient-view", {"level-alert": "critical"}),
    ],
)
def test_hooks_answer_with_the_findings_as_cards(
    client: FlaskClient,
    fhir: responses.RequestsMock,
    name: str,
    hook: str,
    expected: dict[str, str],
) -> None:
    found = topics(call(client, rb.hook_body(name, hook)))
    assert expected.items() <= found.items()
    assert len(fhir.calls) == 0  # full prefetch: the FHIR server is never called


def test_trs_not_met_gets_empty_advice(client: FlaskClient, fhir: responses.RequestsMock) -> None:
    assert call(client, rb.hook_body("trs-not-met", "order-sign")) == {"cards": []}


def test_uk_profile_from_configuration(tmp_path: Path, fhir: responses.RequestsMock) -> None:
    app = rb.make_app(tmp_path, PROFILE="uk-mhra")
    found = topics(call(app.test_client(), rb.hook_body("uk-red", "patient-view")))
    assert found.get("fbc-red") == "critical"
    assert not found.keys() & {"anc-normal", "anc-mild", "anc-moderate", "anc-severe"}


# --- card field rules ----------------------------------------------------------------------

CARD_PATIENTS = [
    ("new-start-baseline-missing", "order-sign"),
    ("ciprofloxacin-order-sign", "order-sign"),
    ("trs-met-third-antipsychotic", "order-select"),
    ("myocarditis-day10-watch", "patient-view"),
    ("levels-high-fluvoxamine", "patient-view"),
    ("clozapine-year3-overdue", "patient-view"),
    ("unknown-unit-data-unmapped", "patient-view"),
]


def empties(value: Any, path: str = "$") -> Iterator[str]:
    """Paths of null, empty-string, empty-array or empty-object members."""
    if value is None or value in ("", [], {}):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from empties(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from empties(item, f"{path}[{i}]")


@pytest.mark.parametrize(("name", "hook"), CARD_PATIENTS)
def test_cards_follow_the_field_rules(
    client: FlaskClient, fhir: responses.RequestsMock, name: str, hook: str
) -> None:
    cards = call(client, rb.hook_body(name, hook))["cards"]
    assert cards
    for card in cards:
        assert list(empties(card)) == []
        assert len(card["summary"]) < 140
        assert card["indicator"] in ("info", "warning", "critical")
        assert card["source"]["label"] and card["source"]["url"].startswith("https://")
        assert card["source"]["topic"]["code"]
        assert len(card["uuid"]) == 36
        if "suggestions" in card:
            assert card["selectionBehavior"] in ("at-most-one", "any")
        for reason in card.get("overrideReasons", []):
            assert reason["code"] and reason["display"]
        for link in card.get("links", []):
            assert link["type"] in ("absolute", "smart")
            assert "appContext" not in link or link["type"] == "smart"


def test_every_card_has_a_fresh_uuid(client: FlaskClient, fhir: responses.RequestsMock) -> None:
    body = rb.hook_body("levels-high-fluvoxamine", "patient-view")
    first = [c["uuid"] for c in call(client, body)["cards"]]
    second = [c["uuid"] for c in call(client, body)["cards"]]
    assert len(set(first + second)) == len(first) + len(second)


# --- prefetch present / missing / null -----------------------------------------------------

NAME = "clozapine-week10-mild"


def test_prefetch_missing_is_fetched_from_the_fhir_server(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    ehr = rb.FakeFhir(rb.patient(NAME))
    ehr.install(fhir)
    full = topics(call(client, rb.hook_body(NAME, "patient-view")))
    fetched = topics(call(client, rb.hook_body(NAME, "patient-view", "missing")))
    assert fetched == full
    assert {"anc-mild", "anc-repeat-needed"} <= set(fetched)
    assert len(ehr.calls) == len(discovery.PREFETCH)
    assert set(ehr.tokens) == {f"Bearer {rb.TOKEN}"}


def test_paged_searchsets_are_followed(client: FlaskClient, fhir: responses.RequestsMock) -> None:
    ehr = rb.FakeFhir(rb.patient(NAME), page_size=5)
    ehr.install(fhir)
    fetched = topics(call(client, rb.hook_body(NAME, "patient-view", "missing")))
    assert {"anc-mild", "anc-repeat-needed"} <= set(fetched)
    assert "data-unavailable" not in fetched
    split = rb.patient(NAME).split
    follow_ups = sum(-(-len(split.get(key, [])) // 5) - 1 for key in discovery.LAB_KEYS)
    assert follow_ups >= 3  # the lab results span several pages of 5
    assert sum("_page" in url for url in ehr.calls) >= follow_ups


def test_a_missing_key_is_fetched_and_the_others_are_not(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    ehr = rb.FakeFhir(rb.patient(NAME))
    ehr.install(fhir)
    found = topics(call(client, rb.hook_body(NAME, "patient-view", omit=["labs"])))
    assert {"anc-mild", "anc-repeat-needed"} <= set(found)
    assert len(ehr.calls) == 1 and "Observation" in ehr.calls[0]


def test_null_keys_mean_no_data_and_are_not_fetched(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    ehr = rb.FakeFhir(rb.patient(NAME))
    ehr.install(fhir)
    found = topics(call(client, rb.hook_body(NAME, "patient-view", null=["labs"])))
    assert "anc-missing" in found
    assert "data-unavailable" not in found
    assert ehr.calls == []


def test_all_null_prefetch_evaluates_a_patient_without_data(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    assert call(client, rb.hook_body(NAME, "patient-view", "null")) == {"cards": []}
    assert len(fhir.calls) == 0


@pytest.mark.parametrize("failure", ["401", "500", "timeout", "malformed", "outcome"])
def test_a_failed_lab_query_gives_a_data_unavailable_card(
    client: FlaskClient, fhir: responses.RequestsMock, failure: rb.Failure
) -> None:
    ehr = rb.FakeFhir(rb.patient(NAME), failures={"labs": failure})
    ehr.install(fhir)
    cards = call(client, rb.hook_body(NAME, "patient-view", omit=["labs"]))["cards"]
    found = topics({"cards": cards})
    assert "data-unavailable" in found
    assert "anc-mild" not in found  # the labs are missing: never a silent all clear
    detail = next(c["detail"] for c in cards if c["source"]["topic"]["code"] == "data-unavailable")
    assert "labs" in detail
    assert rb.TOKEN not in detail


def test_nothing_usable_is_412(client: FlaskClient, fhir: responses.RequestsMock) -> None:
    ehr = rb.FakeFhir(rb.patient(NAME), failures=dict.fromkeys(discovery.PREFETCH, "500"))
    ehr.install(fhir)
    response = client.post(
        SERVICE.format(hook="patient-view"), json=rb.hook_body(NAME, "patient-view", "missing")
    )
    assert response.status_code == 412
    assert response.json is not None
    assert response.json["resourceType"] == "OperationOutcome"
    assert "could not be obtained" in response.json["issue"][0]["diagnostics"]


def test_missing_prefetch_without_fhir_server_is_412(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    body = rb.hook_body(NAME, "patient-view", "missing", fhir_server=None)
    response = client.post(SERVICE.format(hook="patient-view"), json=body)
    assert response.status_code == 412


def test_the_fhir_server_is_called_without_a_token_when_none_is_given(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    ehr = rb.FakeFhir(rb.patient(NAME))
    ehr.install(fhir)
    call(client, rb.hook_body(NAME, "patient-view", omit=["conditions"], token=None))
    assert ehr.tokens == [None]


# --- audit and logs ------------------------------------------------------------------------


def test_each_hook_call_leaves_one_audit_event(
    app: Flask, client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    body = rb.hook_body("ciprofloxacin-order-sign", "order-sign")
    call(client, body)
    bad = {**body, "context": {**body["context"], "patientId": 5}}
    assert client.post(SERVICE.format(hook="order-sign"), json=bad).status_code == 400
    events = store.list_audit(app.extensions["smartapp.db"])
    assert [(e.status, e.patient_id) for e in events] == [(400, None), (200, rb.patient(
        "ciprofloxacin-order-sign").patient_id)]  # fmt: skip
    ok = events[1]
    assert ok.service_id == "clozapine-order-sign" and ok.hook == "order-sign"
    assert ok.hook_instance == body["hookInstance"]
    assert ok.finding_codes == ("interaction-cyp1a2-inhibitor",)
    assert ok.fhir_server == "https://ehr.example.org"
    assert ok.latency_ms > 0


def test_an_unknown_service_call_is_audited_too(app: Flask, client: FlaskClient) -> None:
    client.post("/cds-services/nope", json={})
    (event,) = store.list_audit(app.extensions["smartapp.db"])
    assert (event.service_id, event.status, event.hook) == ("nope", 404, "")


def test_tokens_and_clinical_data_never_reach_the_logs(
    client: FlaskClient, fhir: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    ehr = rb.FakeFhir(rb.patient(NAME), failures={"labs": "401"})
    ehr.install(fhir)
    caplog.set_level(logging.DEBUG)
    call(client, rb.hook_body(NAME, "patient-view", "missing"))
    call(client, rb.hook_body("ciprofloxacin-order-sign", "order-sign"))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert rb.patient(NAME).patient_id in text  # the audit line names the patient id
    assert rb.TOKEN not in text
    assert "Bearer" not in text
    assert "Ciprofloxacin 500 mg" not in text
    assert "1,200" not in text and "751-8" not in text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://ehr.example.org/fhir/r4", "https://ehr.example.org"),
        ("http://localhost:8080/fhir", "http://localhost:8080"),
        ("https://user:pw@ehr.example.org:8443/fhir", "https://ehr.example.org:8443"),
        ("https://[ehr", None),
        ("ehr.example.org", None),
        (5, None),
    ],
)
def test_the_audit_keeps_only_the_fhir_server_origin(url: Any, expected: str | None) -> None:
    assert origin(url) == expected


def test_an_unparseable_fhir_server_is_400_not_500(app: Flask, client: FlaskClient) -> None:
    body = rb.hook_body(NAME, "patient-view", fhir_server="https://[ehr.example.org/fhir")
    response = client.post(SERVICE.format(hook="patient-view"), json=body)
    assert response.status_code == 400
    (event,) = store.list_audit(app.extensions["smartapp.db"])
    assert event.status == 400 and event.fhir_server is None
