"""load_bundle against a mocked server: transactions of PUT Type/id in batches, urn:uuid
entries given ids with their references rewritten, and bundles it cannot load refused before
anything is sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses

from smartapp.fhir_client import FhirClient, FhirError
from smartapp.fhir_load import load_bundle

BASE = "http://fhir.test/fhir"
UUID = "9a1c2b3d-0000-4000-8000-000000000001"


def collection(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": list(entries)}


def observations(count: int) -> dict[str, Any]:
    return collection(
        *(
            {"resource": {"resourceType": "Observation", "id": f"o{i}", "status": "final"}}
            for i in range(count)
        )
    )


def answer_ok(request: Any) -> tuple[int, dict[str, str], str]:
    sent = json.loads(request.body)
    entries = [{"response": {"status": "200 OK"}} for _ in sent["entry"]]
    body = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
    return 200, {"Content-Type": "application/fhir+json"}, json.dumps(body)


def sent_bundles() -> list[dict[str, Any]]:
    return [json.loads(call.request.body or b"") for call in responses.calls]


@responses.activate
def test_puts_every_resource_by_type_and_id_in_batches() -> None:
    responses.add_callback(responses.POST, f"{BASE}/", callback=answer_ok)
    assert load_bundle(FhirClient(BASE), observations(43), batch_size=20) == 43
    bundles = sent_bundles()
    assert [len(b["entry"]) for b in bundles] == [20, 20, 3]
    assert {b["type"] for b in bundles} == {"transaction"}
    first = bundles[0]["entry"][0]
    assert first["request"] == {"method": "PUT", "url": "Observation/o0"}
    assert first["resource"]["id"] == "o0"
    assert bundles[2]["entry"][-1]["request"]["url"] == "Observation/o42"


@responses.activate
def test_urn_uuid_entries_get_ids_and_references_follow_them() -> None:
    responses.add_callback(responses.POST, f"{BASE}/", callback=answer_ok)
    bundle = collection(
        {"fullUrl": f"urn:uuid:{UUID}", "resource": {"resourceType": "Patient"}},
        {
            "fullUrl": "http://elsewhere.example/fhir/Observation/o1",
            "resource": {
                "resourceType": "Observation",
                "id": "o1",
                "status": "final",
                "subject": {"reference": f"urn:uuid:{UUID}"},
                "hasMember": [{"reference": "http://elsewhere.example/fhir/Observation/o1"}],
                "derivedFrom": [{"reference": "Observation/untouched"}],
            },
        },
    )
    assert load_bundle(FhirClient(BASE), bundle, batch_size=1) == 2
    patient, observation = (b["entry"][0] for b in sent_bundles())
    assert patient["request"]["url"] == f"Patient/{UUID}"
    assert patient["resource"] == {"resourceType": "Patient", "id": UUID}
    assert observation["resource"]["subject"] == {"reference": f"Patient/{UUID}"}
    assert observation["resource"]["hasMember"] == [{"reference": "Observation/o1"}]
    assert observation["resource"]["derivedFrom"] == [{"reference": "Observation/untouched"}]
    assert bundle["entry"][0]["resource"] == {"resourceType": "Patient"}  # input untouched


@responses.activate
def test_entries_without_a_resource_are_skipped() -> None:
    responses.add_callback(responses.POST, f"{BASE}/", callback=answer_ok)
    bundle = collection({"fullUrl": "urn:uuid:x"}, *observations(1)["entry"])
    assert load_bundle(FhirClient(BASE), bundle) == 1


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        ({"resourceType": "Patient"}, "not a FHIR Bundle"),
        ({"resourceType": "Bundle", "entry": {}}, "not a list"),
        (collection({"resource": {"resourceType": "Patient"}}), "entry 0: Patient has no usable"),
        (collection({"resource": {"resourceType": "Patient", "id": "a/b"}}), "no usable id"),
        (collection({"resource": {"id": "x"}}), "entry 0: not a FHIR resource"),
        (collection({"resource": {"resourceType": "../x", "id": "x"}}), "resource type"),
    ],
)
@responses.activate
def test_a_bundle_it_cannot_load_is_refused_before_sending(
    bundle: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_bundle(FhirClient(BASE), bundle)
    assert len(responses.calls) == 0


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        load_bundle(FhirClient(BASE), observations(1), batch_size=0)


@responses.activate
def test_a_refused_transaction_raises() -> None:
    refusal = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": "Missing status"}],
    }
    responses.post(f"{BASE}/", status=400, json=refusal)
    with pytest.raises(FhirError) as excinfo:
        load_bundle(FhirClient(BASE), observations(3))
    assert (excinfo.value.kind, excinfo.value.status) == ("http", 400)
    assert "Missing status" in str(excinfo.value)
