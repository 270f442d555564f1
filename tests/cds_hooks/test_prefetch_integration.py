"""Prefetch fallback against a real FHIR server (tests/fhir_server: Medplum's fhir-router,
base URL with a path): every synthetic patient loaded, ``gather`` with no prefetch at all, and
the evaluation of what came back equal to the evaluation of the patient's own Bundle. Then a
slow server with a tiny timeout, a token-protected server, and a paged prefetch followed on
the server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from fhir_mappings.record import build_record
from smartapp.cds_hooks.discovery import PREFETCH, expand
from smartapp.cds_hooks.prefetch import PatientData, gather
from smartapp.evaluation_json import to_json
from smartapp.fhir_client import FhirClient
from smartapp.fhir_load import load_bundle
from smartapp.rules.evaluate import evaluate
from smartapp.synthetic import scenarios
from smartapp.synthetic.scenario import Scenario

if TYPE_CHECKING:
    from tests.fhir_server_fixture import FhirServer, ServerFactory

SERVICE = "clozapine-patient-view"
# Its OperationOutcome stands for a query that failed in the EHR: a FHIR server stores no such
# thing to search for, so there is nothing to compare.
NOT_A_SERVER_STORY = {"data-unavailable-observation-timeout"}
SCENARIOS = [s.name for s in scenarios.all_scenarios() if s.name not in NOT_A_SERVER_STORY]
LOAD_TIMEOUT_S = 30.0


def patient_id(bundle: dict[str, Any]) -> str:
    found = [
        e["resource"]["id"]
        for e in bundle["entry"]
        if e.get("resource", {}).get("resourceType") == "Patient"
    ]
    assert len(found) == 1
    return str(found[0])


def load(server: FhirServer, scenario: Scenario) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load the scenario's patient; returns (its Bundle, a hook context for it)."""
    bundle = scenario.bundle()
    with FhirClient(server.base, server.token, timeout=LOAD_TIMEOUT_S) as client:
        load_bundle(client, bundle)
    pid = patient_id(bundle)
    return bundle, {"userId": "Practitioner/dr-1", "patientId": pid}


def fetch(
    server: FhirServer,
    context: dict[str, Any],
    prefetch: dict[str, Any] | None = None,
    token: str | None = None,
    timeout: float = 10.0,
) -> PatientData:
    return gather(
        SERVICE,
        context,
        prefetch or {},
        server.base,
        token,
        user_id=context["userId"],
        timeout=timeout,
        max_pages=50,
        max_workers=8,
    )


def evaluation(data: Any, scenario: Scenario, unavailable: list[str] | None = None) -> Any:
    record = build_record(data, unavailable=unavailable or ())
    return to_json(evaluate(record, scenario.as_of, scenario.profile))  # type: ignore[arg-type]


def codes(evaluated: dict[str, Any]) -> list[str]:
    return sorted(f["code"] for f in evaluated["findings"])


@pytest.mark.parametrize("name", SCENARIOS)
def test_fetched_data_evaluates_like_the_patients_bundle(
    fhir_server: FhirServer, name: str
) -> None:
    scenario = scenarios.get(name)
    fhir_server.reset()
    bundle, context = load(fhir_server, scenario)
    data = fetch(fhir_server, context)
    assert data.unavailable == [] and data.usable
    assert data.fetched == list(PREFETCH)
    direct = evaluation(bundle, scenario)
    gathered = evaluation(data.resources, scenario)
    assert codes(gathered) == codes(direct)
    assert set(scenario.expected_codes) <= set(codes(gathered))
    assert gathered == direct  # same evidence, dates, categories and trials too
    loaded = {r["resource"]["resourceType"] for r in bundle["entry"]}
    assert {r["resourceType"] for r in data.resources} == loaded


def test_slow_server_and_tiny_timeout_give_unavailable_entries(
    fhir_server_factory: ServerFactory,
) -> None:
    slow = fhir_server_factory(delay_ms=400)
    scenario = scenarios.get("clozapine-week10-mild")
    bundle, context = load(slow, scenario)
    data = fetch(slow, context, timeout=0.05)
    assert data.unavailable == [f"{key}: FHIR server timed out" for key in PREFETCH]
    assert not data.usable and data.resources == []
    # With medication requests prefetched, the same failure leaves a usable, flagged record.
    orders = [e["resource"] for e in bundle["entry"]]
    given = {
        "medicationRequests": {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r} for r in orders if r["resourceType"] == "MedicationRequest"],
        }
    }
    partial = fetch(slow, context, prefetch=given, timeout=0.05)
    assert partial.usable and "labs: FHIR server timed out" in partial.unavailable
    evaluated = evaluation(partial.resources, scenario, partial.unavailable)
    assert "data-unavailable" in codes(evaluated) and "anc-normal" not in codes(evaluated)


def test_token_protected_server(fhir_server_factory: ServerFactory) -> None:
    token = "integration-token-5150"  # noqa: S105 - a test token
    guarded = fhir_server_factory(token=token)
    scenario = scenarios.get("trs-met-third-antipsychotic")
    bundle, context = load(guarded, scenario)
    data = fetch(guarded, context, token=token)
    assert data.unavailable == [] and data.usable
    assert codes(evaluation(data.resources, scenario)) == codes(evaluation(bundle, scenario))
    refused = fetch(guarded, context, token=None)
    assert not refused.usable
    assert refused.unavailable == [f"{k}: FHIR server refused access (HTTP 401)" for k in PREFETCH]
    wrong = fetch(guarded, context, token="not-" + token)
    assert not wrong.usable and token not in "\n".join(wrong.unavailable)


def test_paged_prefetch_is_followed_on_the_real_server(fhir_server: FhirServer) -> None:
    scenario = scenarios.get("clozapine-year3-overdue")
    fhir_server.reset()
    bundle, context = load(fhir_server, scenario)
    small_pages = expand(PREFETCH["labs"], context, None).replace("_count=1000", "_count=7")
    with FhirClient(fhir_server.base) as client:
        first_page = client.get(small_pages)
    assert any(link["relation"] == "next" for link in first_page["link"])
    assert urlsplit(first_page["link"][-1]["url"]).path.startswith(urlsplit(fhir_server.base).path)
    prefetch: dict[str, Any] = {key: None for key in PREFETCH}
    prefetch["labs"] = first_page
    prefetch["medicationRequests"] = None
    data = fetch(fhir_server, context, prefetch=prefetch)
    assert data.unavailable == [] and data.fetched == ["labs"]
    asked = set(parse_qs(urlsplit(PREFETCH["labs"]).query)["code"][0].split(","))
    lab_ids = {
        e["resource"]["id"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and asked & {f"{c['system']}|{c['code']}" for c in e["resource"]["code"]["coding"]}
    }
    fetched_ids = {r["id"] for r in data.resources if r["resourceType"] == "Observation"}
    assert fetched_ids == lab_ids and len(fetched_ids) > 7
