"""Fetching the launched patient's data: the CDS prefetch queries, in parallel, only for the
resource types granted; failures become unavailable lines, 401 one refresh, 403 an error."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
import responses

from smartapp.cds_hooks import discovery
from smartapp.dashboard.data import (
    AccessDenied,
    AuthorizationExpired,
    NoPatient,
    fetch_patient_data,
    queries,
)
from smartapp.fhir_client import FhirClient
from tests.cds_hooks.requests_builder import FHIR_BASE, Failure, FakeFhir, patient

NAME = "clozapine-week10-mild"


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def client(token: str = "t-1") -> FhirClient:  # noqa: S107 - test token
    return FhirClient(FHIR_BASE, token, backoff_s=0)


def everything(_: str) -> bool:
    return True


def test_queries_are_the_prefetch_templates_for_the_patient() -> None:
    found = queries("p-9")
    assert [q.key for q in found] == list(discovery.PREFETCH)
    by_key = {q.key: q for q in found}
    assert by_key["patient"].url == "Patient/p-9"
    assert by_key["patient"].resource_type == "Patient"
    assert by_key["conditions"].url == "Condition?patient=p-9&_count=1000"
    assert {q.resource_type for q in found} == {
        "Patient",
        "MedicationRequest",
        "MedicationDispense",
        "MedicationAdministration",
        "Observation",
        "DiagnosticReport",
        "Condition",
    }
    assert by_key["labs"].label == "lab results"


@pytest.mark.parametrize("bad", [None, "", "p/../x", "a&b=c"])
def test_no_usable_patient_is_refused(bad: str | None) -> None:
    with pytest.raises(NoPatient):
        queries(bad)


def test_everything_fetched(rsps: responses.RequestsMock) -> None:
    p = patient(NAME)
    fake = FakeFhir(p)
    fake.install(rsps)
    data = fetch_patient_data(client(), p.patient_id, everything, workers=4)
    assert data.unavailable == [] and data.refused == []
    assert data.patient is not None and data.patient["id"] == p.patient_id
    expected = sum(len(v) for v in p.split.values())
    assert len(data.resources) == expected
    assert len(fake.calls) == len(discovery.PREFETCH)
    assert set(fake.tokens) == {"Bearer t-1"}


def test_refused_scope_is_not_queried_and_is_named(rsps: responses.RequestsMock) -> None:
    p = patient(NAME)
    fake = FakeFhir(p)
    fake.install(rsps)
    data = fetch_patient_data(client(), p.patient_id, lambda t: t != "Observation", workers=4)
    assert data.refused == ["Observation"]
    assert not any("/Observation" in url for url in fake.calls)
    lab_keys = [k for k in discovery.PREFETCH if k.startswith("labs")]
    assert data.unavailable[: len(lab_keys)] == [
        f"lab results{'' if k == 'labs' else f' (part {k[4:]})'}: not shown, no read access to "
        "Observation"
        for k in lab_keys
    ]
    assert data.unavailable[-1] == "rating scales: not shown, no read access to Observation"
    assert not any(r["resourceType"] == "Observation" for r in data.resources)


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        ("500", "lab results: FHIR server answered with an error (HTTP 500)"),
        ("timeout", "lab results: FHIR server timed out"),
        ("outcome", "lab results: FHIR server reported an error"),
        ("malformed", "lab results: FHIR server sent something that is not the FHIR JSON expected"),
    ],
)
def test_failed_query_is_unavailable_and_the_rest_is_kept(
    rsps: responses.RequestsMock, failure: Failure, words: str
) -> None:
    p = patient(NAME)
    FakeFhir(p, failures={"labs": failure}).install(rsps)
    data = fetch_patient_data(client(), p.patient_id, everything, workers=4)
    assert data.unavailable == [words]
    assert data.patient is not None
    assert any(r["resourceType"] == "MedicationRequest" for r in data.resources)


def test_paged_results_are_all_fetched(rsps: responses.RequestsMock) -> None:
    p = patient(NAME)
    fake = FakeFhir(p, page_size=2)
    fake.install(rsps)
    data = fetch_patient_data(client(), p.patient_id, everything, workers=4)
    assert len(data.resources) == sum(len(v) for v in p.split.values())
    assert any("/_page" in url for url in fake.calls)


def token_checking(fake: FakeFhir, good: str, rsps: responses.RequestsMock) -> None:
    """401 for any token but ``good``; otherwise the fake server answers."""

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if request.headers.get("Authorization") != f"Bearer {good}":
            return 401, {}, '{"resourceType": "OperationOutcome", "issue": []}'
        return fake._answer(request)

    rsps.add_callback(responses.GET, re.compile(re.escape(FHIR_BASE) + r"/.*"), callback=answer)


def test_401_is_retried_once_with_a_refreshed_token(rsps: responses.RequestsMock) -> None:
    p = patient(NAME)
    fake = FakeFhir(p)
    token_checking(fake, "fresh", rsps)
    refreshed: list[str] = []

    def refresh() -> FhirClient:
        refreshed.append("yes")
        return client("fresh")

    data = fetch_patient_data(client("stale"), p.patient_id, everything, workers=4, refresh=refresh)
    assert refreshed == ["yes"]
    assert data.unavailable == []
    assert data.patient is not None


def test_401_after_the_refresh_asks_for_a_relaunch(rsps: responses.RequestsMock) -> None:
    p = patient(NAME)
    token_checking(FakeFhir(p), "never", rsps)
    with pytest.raises(AuthorizationExpired):
        fetch_patient_data(
            client("stale"), p.patient_id, everything, workers=4, refresh=lambda: client("other")
        )
    with pytest.raises(AuthorizationExpired):
        fetch_patient_data(client("stale"), p.patient_id, everything, workers=4)


def test_403_names_the_resource_type(rsps: responses.RequestsMock) -> None:
    p = patient(NAME)
    fake = FakeFhir(p)
    rsps.get(
        f"{FHIR_BASE}/Condition",
        status=403,
        json={"resourceType": "OperationOutcome", "issue": []},
    )
    fake.install(rsps)
    with pytest.raises(AccessDenied) as raised:
        fetch_patient_data(client(), p.patient_id, everything, workers=4)
    assert raised.value.resource_type == "Condition"
    assert str(raised.value) == "the FHIR server refused access to Condition (HTTP 403)"
