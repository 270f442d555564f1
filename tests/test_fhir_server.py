"""The test FHIR server (tests/fhir_server) behaves as the integration tests need: idempotent
transaction loads, searches by patient/code/date, working paging links on our base, _include,
FHIR errors, bearer-token enforcement and the slow-EHR delay."""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from tests.fhir_server_fixture import FhirServer, ServerFactory

pytest_plugins = ["tests.fhir_server_fixture"]

LOINC = "http://loinc.org"
ANC = "751-8"
WBC = "6690-2"
TIMEOUT = 30
PID = "tx-patient"
BEARER = secrets.token_hex(8)


def observation(key: str, when: str, value: float, code: str = ANC) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": "urn:test:lab", "value": key}],
        "subject": {"reference": f"Patient/{PID}"},
        "effectiveDateTime": when,
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": {
            "value": value,
            "unit": "10*9/L",
            "system": "http://unitsofmeasure.org",
            "code": "10*9/L",
        },
    }


def put(resource: dict[str, Any], url: str) -> dict[str, Any]:
    return {"resource": resource, "request": {"method": "PUT", "url": url}}


def transaction() -> dict[str, Any]:
    """Patient, Medication, a MedicationRequest referencing it (PUT with ids) and three ANC
    results (conditional PUT on their lab identifier)."""
    med = {
        "resourceType": "Medication",
        "id": "clz-100",
        "code": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197535"}]
        },
    }
    order = {
        "resourceType": "MedicationRequest",
        "id": "clz-order",
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{PID}"},
        "medicationReference": {"reference": "Medication/clz-100"},
    }
    obs = [
        observation("anc-1", "2024-01-01T09:00:00Z", 3.1),
        observation("anc-2", "2024-01-08T09:00:00Z", 2.4),
        observation("anc-3", "2024-01-15T09:00:00Z", 1.9),
    ]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            put(
                {"resourceType": "Patient", "id": PID, "birthDate": "1990-05-01"}, f"Patient/{PID}"
            ),
            put(med, "Medication/clz-100"),
            put(order, "MedicationRequest/clz-order"),
            *(
                put(o, f"Observation?identifier=urn:test:lab|{o['identifier'][0]['value']}")
                for o in obs
            ),
        ],
    }


def call(server: FhirServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    url = path if path.startswith("http") else f"{server.base}/{path}"
    return requests.request(method, url, headers=server.headers(), timeout=TIMEOUT, **kwargs)


def search(server: FhirServer, path: str) -> dict[str, Any]:
    response = call(server, "GET", path)
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    return bundle


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle.get("link", []) if x["relation"] == relation), None)


def outcome_text(response: requests.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return " ".join(i.get("details", {}).get("text", "") for i in body["issue"])


@pytest.fixture
def server(fhir_server: FhirServer) -> FhirServer:
    fhir_server.reset()
    return fhir_server


@pytest.fixture
def loaded(server: FhirServer) -> FhirServer:
    response = call(server, "POST", "", json=transaction())
    assert response.status_code == 200, response.text
    return server


def test_base_url_has_a_path_on_loopback(server: FhirServer) -> None:
    assert server.base.startswith("http://127.0.0.1:")
    assert server.base.endswith("/fhir")


def test_transaction_loaded_twice_duplicates_nothing(loaded: FhirServer) -> None:
    again = call(loaded, "POST", "", json=transaction())
    assert again.status_code == 200, again.text
    result = again.json()
    assert result["type"] == "transaction-response"
    assert [e["response"]["status"][:3] for e in result["entry"]] == ["200"] * 6
    assert all(e["fullUrl"].startswith(f"{loaded.base}/") for e in result["entry"])
    for path, expected in [
        (f"Patient?_id={PID}", 1),
        ("Medication", 1),
        ("MedicationRequest", 1),
        ("Observation", 3),
    ]:
        assert search(loaded, path)["total"] == expected, path


def test_first_load_creates_the_conditional_entries(server: FhirServer) -> None:
    result = call(server, "POST", "", json=transaction()).json()
    assert [e["response"]["status"][:3] for e in result["entry"]] == ["200"] * 3 + ["201"] * 3


def test_search_by_patient_and_loinc_code(loaded: FhirServer) -> None:
    wbc = observation("wbc-1", "2024-01-01T09:00:00Z", 5.0, code=WBC) | {"id": "wbc-1"}
    assert call(loaded, "PUT", "Observation/wbc-1", json=wbc).status_code in (200, 201)
    for patient in (PID, f"Patient/{PID}"):
        bundle = search(loaded, f"Observation?patient={patient}&code={LOINC}|{ANC}")
        assert bundle["total"] == 3
        assert {e["resource"]["code"]["coding"][0]["code"] for e in bundle["entry"]} == {ANC}
    assert search(loaded, f"Observation?subject=Patient/{PID}&code={LOINC}|{WBC}")["total"] == 1
    assert search(loaded, f"Observation?patient=other&code={LOINC}|{ANC}")["total"] == 0


def test_search_by_date_and_sort(loaded: FhirServer) -> None:
    bundle = search(loaded, f"Observation?patient={PID}&date=ge2024-01-08&_sort=-date")
    values = [e["resource"]["valueQuantity"]["value"] for e in bundle["entry"]]
    assert values == [1.9, 2.4]
    bundle = search(loaded, f"Observation?patient={PID}&date=lt2024-01-08&_sort=date")
    assert [e["resource"]["valueQuantity"]["value"] for e in bundle["entry"]] == [3.1]


def test_sort_keys_apply_in_priority_order(loaded: FhirServer) -> None:
    for key, when in [("amended-1", "2023-11-01T09:00:00Z"), ("amended-2", "2023-12-01T09:00:00Z")]:
        amended = observation(key, when, 2.0) | {"status": "amended"}
        url = f"Observation?identifier=urn:test:lab|{key}"
        assert call(loaded, "PUT", url, json=amended).status_code in (200, 201)
    bundle = search(loaded, "Observation?_sort=status,-date")
    order = [
        (e["resource"]["status"], e["resource"]["effectiveDateTime"][:10]) for e in bundle["entry"]
    ]
    assert order == [
        ("amended", "2023-12-01"),
        ("amended", "2023-11-01"),
        ("final", "2024-01-15"),
        ("final", "2024-01-08"),
        ("final", "2024-01-01"),
    ]


def test_count_gives_a_working_next_link_on_our_base(loaded: FhirServer) -> None:
    first = search(loaded, f"Observation?patient={PID}&code={LOINC}|{ANC}&_count=2&_sort=date")
    assert first["total"] == 3
    assert len(first["entry"]) == 2
    next_url = link(first, "next")
    assert next_url is not None
    assert next_url.startswith(f"{loaded.base}/Observation?")
    assert all(e["fullUrl"].startswith(f"{loaded.base}/Observation/") for e in first["entry"])
    second = search(loaded, next_url)
    assert len(second["entry"]) == 1
    assert link(second, "next") is None
    assert link(second, "previous") is not None
    values = [e["resource"]["valueQuantity"]["value"] for e in first["entry"] + second["entry"]]
    assert values == [3.1, 2.4, 1.9]


def test_default_page_size_pages_too(fhir_server_factory: ServerFactory) -> None:
    small = fhir_server_factory(page_size=2)
    assert call(small, "POST", "", json=transaction()).status_code == 200
    first = search(small, "Observation")
    assert len(first["entry"]) == 2
    assert link(first, "next") is not None


def test_include_medication(loaded: FhirServer) -> None:
    bundle = search(
        loaded, f"MedicationRequest?patient={PID}&_include=MedicationRequest:medication"
    )
    assert ids(bundle) == ["clz-order"]
    assert ids(bundle, "include") == ["clz-100"]
    plain = search(loaded, f"MedicationRequest?patient={PID}")
    assert (ids(plain), ids(plain, "include")) == (["clz-order"], [])


def test_single_resource_create_read_update_delete(server: FhirServer) -> None:
    created = call(server, "POST", "Patient", json={"resourceType": "Patient", "gender": "male"})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    assert created.headers["Location"].startswith(f"{server.base}/Patient/{pid}/_history/")
    updated = call(
        server,
        "PUT",
        f"Patient/{pid}",
        json={"resourceType": "Patient", "id": pid, "gender": "female"},
    )
    assert updated.status_code == 200
    assert call(server, "GET", f"Patient/{pid}").json()["gender"] == "female"
    assert call(server, "DELETE", f"Patient/{pid}").status_code == 200
    gone = call(server, "GET", f"Patient/{pid}")
    assert gone.status_code == 404
    assert "Not found" in outcome_text(gone)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "text"),
    [
        ("GET", "Observation?no-such-param=1", None, 400, "Unknown search parameter"),
        ("GET", "Observation?patient.name=x", None, 400, "Unknown search parameter"),
        ("POST", "Patient", b"{not json", 400, "not valid JSON"),
        ("POST", "Patient", b'{"resourceType": "Patient", "colour": "blue"}', 400, "colour"),
        (
            "POST",
            "Observation",
            b'{"resourceType": "Observation", "status": "final"}',
            400,
            "Missing required property",
        ),
        (
            "PUT",
            "Patient/a",
            b'{"resourceType": "Patient", "id": "b"}',
            400,
            "Incorrect resource ID",
        ),
        ("GET", "Patient/missing", None, 404, "Not found"),
    ],
)
def test_errors_are_operation_outcomes(
    server: FhirServer, method: str, path: str, body: bytes | None, status: int, text: str
) -> None:
    response = call(server, method, path, data=body)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    assert text in outcome_text(response)


def test_failed_transaction_leaves_nothing_behind(server: FhirServer) -> None:
    bundle = transaction()
    bundle["entry"].append(put({"resourceType": "Observation", "id": "bad"}, "Observation/bad"))
    response = call(server, "POST", "", json=bundle)
    assert response.status_code == 400
    assert search(server, "Patient")["total"] == 0
    assert search(server, "Observation")["total"] == 0


def test_paths_outside_the_base_are_404(server: FhirServer) -> None:
    response = requests.get(f"{server.origin}/Patient", timeout=TIMEOUT)
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_metadata(server: FhirServer) -> None:
    capability = call(server, "GET", "metadata").json()
    assert capability["resourceType"] == "CapabilityStatement"
    assert capability["fhirVersion"] == "4.0.1"
    types = {r["type"] for r in capability["rest"][0]["resource"]}
    assert {"Patient", "Observation", "MedicationRequest", "Medication"} <= types


def test_reset_empties_the_repository(loaded: FhirServer) -> None:
    loaded.reset()
    assert search(loaded, "Observation")["total"] == 0


def test_bearer_token_enforced(fhir_server_factory: ServerFactory) -> None:
    secure = fhir_server_factory(token=BEARER)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": BEARER}):
        response = requests.get(f"{secure.base}/Patient", headers=headers, timeout=TIMEOUT)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Unauthorized" in outcome_text(response)
    ok = requests.get(
        f"{secure.base}/Patient", timeout=TIMEOUT, headers={"Authorization": f"Bearer {BEARER}"}
    )
    assert ok.status_code == 200
    assert requests.get(f"{secure.base}/metadata", timeout=TIMEOUT).status_code == 200


def test_delay_adds_latency(fhir_server_factory: ServerFactory) -> None:
    slow = fhir_server_factory(delay_ms=300)
    for path, status in [("Patient", 200), ("Patient/missing", 404)]:
        started = time.monotonic()
        assert call(slow, "GET", path).status_code == status
        assert time.monotonic() - started >= 0.3, path


def test_sigterm_exits_cleanly(fhir_server_factory: ServerFactory) -> None:
    other = fhir_server_factory()
    other.stop()
    assert other.process.returncode == 0


def test_missing_node_fails_rather_than_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests import fhir_server_fixture

    monkeypatch.setattr("shutil.which", lambda _tool: None)
    with pytest.raises(pytest.fail.Exception, match="npm is required"):
        fhir_server_fixture.start_fhir_server()
