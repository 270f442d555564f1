"""FhirClient and load_bundle against the real test FHIR server (tests/fhir_server: Medplum's
fhir-router, base with a path): a synthetic patient loaded idempotently, paged searches,
_include, bearer-token enforcement and timeouts."""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from smartapp.fhir_client import FhirClient, FhirError
from smartapp.fhir_load import load_bundle
from smartapp.synthetic import scenarios

if TYPE_CHECKING:
    from tests.fhir_server_fixture import FhirServer, ServerFactory

pytest_plugins = ["tests.fhir_server_fixture"]

SCENARIO = "clozapine-week10-mild"
LOINC = "http://loinc.org"
ANC = "751-8"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def anc_ids(bundle: dict[str, Any]) -> list[str]:
    return [
        e["resource"]["id"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and any(
            c.get("system") == LOINC and c.get("code") == ANC
            for c in e["resource"]["code"]["coding"]
        )
    ]


def counts(client: FhirClient, pid: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for rtype in ("Observation", "MedicationRequest", "Condition"):
        found[rtype] = len(client.search(rtype, {"patient": pid, "_count": "7"}))
    found["Patient"] = len(client.search("Patient", {"_id": pid}))
    return found


def referenced_medication(pid: str) -> dict[str, Any]:
    """A Medication and an order that references it (the scenario codes its orders inline)."""
    med = {
        "resourceType": "Medication",
        "id": "int-clz-100",
        "code": {"coding": [{"system": RXNORM, "code": "197535"}]},
    }
    order = {
        "resourceType": "MedicationRequest",
        "id": "int-clz-order",
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "medicationReference": {"reference": "urn:uuid:6f1e0000-0000-4000-8000-00000000c100"},
    }
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:6f1e0000-0000-4000-8000-00000000c100", "resource": med},
            {"resource": order},
        ],
    }


@pytest.fixture
def bundle() -> dict[str, Any]:
    return scenarios.get(SCENARIO).bundle()


@pytest.fixture
def loaded(fhir_server: FhirServer, bundle: dict[str, Any]) -> FhirClient:
    fhir_server.reset()
    client = FhirClient(fhir_server.base)
    assert load_bundle(client, bundle) == len(bundle["entry"])
    return client


def test_loading_twice_changes_no_counts(loaded: FhirClient, bundle: dict[str, Any]) -> None:
    expected = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
    assert len(bundle["entry"]) > 40  # more than one transaction at the default batch size
    first = counts(loaded, SCENARIO)
    assert first == expected
    assert load_bundle(loaded, bundle, batch_size=7) == len(bundle["entry"])
    assert counts(loaded, SCENARIO) == first


def test_a_paged_code_search_brings_every_page(
    loaded: FhirClient, bundle: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    expected = anc_ids(bundle)
    assert len(expected) == 11  # three pages of five
    with caplog.at_level(logging.DEBUG, logger="smartapp.fhir_client"):
        found = loaded.search(
            "Observation",
            {"patient": SCENARIO, "code": f"{LOINC}|{ANC}", "_count": "5", "_sort": "date"},
        )
    pages = [r for r in caplog.records if "/fhir/Observation -> 200" in r.getMessage()]
    assert len(pages) == 3
    assert sorted(r["id"] for r in found) == sorted(expected)
    assert len(found) == len(expected)  # nothing repeated across pages
    dates = [r["effectiveDateTime"] for r in found]
    assert dates == sorted(dates)


def test_a_search_page_with_the_limit_one_short_is_truncated(fhir_server: FhirServer) -> None:
    fhir_server.reset()
    client = FhirClient(fhir_server.base)
    load_bundle(client, scenarios.get(SCENARIO).bundle())
    short = FhirClient(fhir_server.base, max_pages=2)
    with pytest.raises(FhirError) as excinfo:
        short.search("Observation", {"patient": SCENARIO, "code": f"{LOINC}|{ANC}", "_count": "5"})
    assert excinfo.value.kind == "truncated"


def test_include_brings_the_referenced_medication(loaded: FhirClient) -> None:
    assert load_bundle(loaded, referenced_medication(SCENARIO)) == 2
    found = loaded.search(
        "MedicationRequest",
        {"patient": SCENARIO, "_include": "MedicationRequest:medication", "_count": "3"},
    )
    orders = [r for r in found if r["resourceType"] == "MedicationRequest"]
    meds = [r for r in found if r["resourceType"] == "Medication"]
    assert len(orders) == 5
    assert [m["id"] for m in meds] == ["int-clz-100"]
    linked = next(o for o in orders if o["id"] == "int-clz-order")
    assert linked["medicationReference"]["reference"] == "Medication/int-clz-100"


def test_read_and_a_server_error(loaded: FhirClient) -> None:
    assert loaded.read("Patient", SCENARIO)["id"] == SCENARIO
    with pytest.raises(FhirError) as excinfo:
        loaded.read("Patient", "nobody")
    assert (excinfo.value.kind, excinfo.value.status) == ("http", 404)
    assert "Not found" in str(excinfo.value)
    with pytest.raises(FhirError) as excinfo:
        loaded.search("Observation", {"no-such-param": "1"})
    assert (excinfo.value.kind, excinfo.value.status) == ("http", 400)
    assert "Unknown search parameter" in str(excinfo.value)


def test_a_server_wanting_a_token_refuses_a_client_without_it(
    fhir_server_factory: ServerFactory,
) -> None:
    secure = fhir_server_factory(token="t")  # noqa: S106 - a test server's token
    with pytest.raises(FhirError) as excinfo:
        FhirClient(secure.base).search("Patient", {"_count": "1"})
    assert (excinfo.value.kind, excinfo.value.status) == ("auth", 401)
    with pytest.raises(FhirError) as excinfo:
        FhirClient(secure.base, "wrong").search("Patient", {})
    assert excinfo.value.kind == "auth"
    with FhirClient(secure.base, "t") as client:
        assert load_bundle(client, referenced_medication("p1")) == 2
        assert [r["id"] for r in client.search("Medication", {})] == ["int-clz-100"]


def test_a_slow_server_times_out(fhir_server_factory: ServerFactory) -> None:
    slow = fhir_server_factory(delay_ms=200)
    with pytest.raises(FhirError) as excinfo:
        FhirClient(slow.base, timeout=0.1).search("Patient", {})
    assert excinfo.value.kind == "timeout"
    assert FhirClient(slow.base, timeout=5).search("Patient", {}) == []
