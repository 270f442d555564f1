"""The sandbox FHIR API: discovery, bearer token and patient scope, the searches the app and
the CDS service send (every prefetch template), paging, _include, and the app's own data fetch
finding the same findings as the synthetic bundle evaluated directly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient

from fhir_mappings.record import build_record
from smartapp.cds_hooks.discovery import PREFETCH, expand
from smartapp.dashboard.data import fetch_patient_data
from smartapp.fhir_client import FhirClient
from smartapp.rules.evaluate import evaluate
from smartapp.rules.ruleset import Profile
from smartapp.sandbox import fhir_api
from smartapp.synthetic.scenarios import all_scenarios, get
from tests.sandbox.sandbox_app import (
    URLS,
    bearer,
    make_sandbox_app,
    route_to,
    state,
    token_for,
)

MILD = "clozapine-week10-mild"
SEARCHSET = "stable-monthly-searchset"
TIMEOUT = "data-unavailable-observation-timeout"
FHIR = "/sandbox/fhir"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return make_sandbox_app(tmp_path_factory.mktemp("sandbox-fhir"))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def bundle_of(name: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in get(name).bundle()["entry"]]


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == mode
    ]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle["link"] if x["relation"] == relation), None)


# Discovery ---------------------------------------------------------------------------------


def test_discovery_documents_need_no_token(client: FlaskClient) -> None:
    smart = client.get(f"{FHIR}/.well-known/smart-configuration")
    assert smart.status_code == 200
    doc = smart.get_json()
    assert doc["authorization_endpoint"] == URLS.authorize_url
    assert doc["token_endpoint"] == URLS.token_url
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["token_endpoint_auth_methods_supported"] == ["none"]
    assert {"launch-ehr", "context-ehr-patient", "permission-v2"} <= set(doc["capabilities"])
    assert "sso-openid-connect" not in doc["capabilities"]  # no id_token is issued

    meta = client.get(f"{FHIR}/metadata")
    assert meta.status_code == 200
    assert meta.mimetype == "application/fhir+json"
    cap = meta.get_json()
    assert cap["resourceType"] == "CapabilityStatement" and cap["fhirVersion"] == "4.0.1"
    oauth = cap["rest"][0]["security"]["extension"][0]["extension"]
    assert {e["url"]: e["valueUri"] for e in oauth} == {
        "authorize": URLS.authorize_url,
        "token": URLS.token_url,
    }
    observation = next(r for r in cap["rest"][0]["resource"] if r["type"] == "Observation")
    names = {p["name"] for p in observation["searchParam"]}
    assert {"patient", "code", "category", "date", "_id"} <= names


# Token and scope -------------------------------------------------------------------------


def test_no_or_unknown_token_is_401(client: FlaskClient) -> None:
    for headers in ({}, bearer("made-up"), {"Authorization": "Basic abc"}):
        answer = client.get(f"{FHIR}/Patient/{MILD}", headers=headers)
        assert answer.status_code == 401
        assert "invalid_token" in answer.headers["WWW-Authenticate"]
        assert answer.get_json()["resourceType"] == "OperationOutcome"


def test_expired_token_is_401(app: Flask, client: FlaskClient) -> None:
    auth = state(app).auth
    token = token_for(app, MILD)
    assert client.get(f"{FHIR}/Patient/{MILD}", headers=bearer(token)).status_code == 200
    real = auth.clock
    auth.clock = lambda: real() + 3601
    try:
        assert client.get(f"{FHIR}/Patient/{MILD}", headers=bearer(token)).status_code == 401
    finally:
        auth.clock = real


def test_scope_must_allow_the_type_and_the_interaction(app: Flask, client: FlaskClient) -> None:
    token = token_for(app, MILD, "launch patient/Patient.rs patient/Observation.r")
    assert client.get(f"{FHIR}/Patient/{MILD}", headers=bearer(token)).status_code == 200
    refused = client.get(f"{FHIR}/Condition?patient={MILD}", headers=bearer(token))
    assert refused.status_code == 403
    assert refused.get_json()["issue"][0]["code"] == "forbidden"
    # .r without .s: a read is allowed, a search is not
    assert (
        client.get(f"{FHIR}/Observation?patient={MILD}", headers=bearer(token)).status_code == 403
    )
    v1 = token_for(app, MILD, "launch patient/*.read")
    assert client.get(f"{FHIR}/Condition?patient={MILD}", headers=bearer(v1)).status_code == 200


def test_granular_scope_does_not_count(app: Flask, client: FlaskClient) -> None:
    token = token_for(app, MILD, "patient/Observation.rs?category=laboratory")
    answer = client.get(f"{FHIR}/Observation?patient={MILD}", headers=bearer(token))
    assert answer.status_code == 403


def test_a_token_sees_only_its_patient(app: Flask, client: FlaskClient) -> None:
    token = bearer(token_for(app, MILD))
    assert client.get(f"{FHIR}/Patient/{SEARCHSET}", headers=token).status_code == 404
    other_obs = next(r for r in bundle_of(SEARCHSET) if r["resourceType"] == "Observation")
    assert client.get(f"{FHIR}/Observation/{other_obs['id']}", headers=token).status_code == 404
    for query in (f"patient={SEARCHSET}", f"subject=Patient/{SEARCHSET}", f"patient={MILD},x"):
        assert client.get(f"{FHIR}/Observation?{query}", headers=token).status_code == 403
    # no patient parameter: still only the token's patient
    everything = client.get(f"{FHIR}/Observation?_count=1000", headers=token).get_json()
    own = [r for r in bundle_of(MILD) if r["resourceType"] == "Observation"]
    assert everything["total"] == len(own)
    assert all(e["resource"]["subject"]["reference"] == f"Patient/{MILD}"
               for e in everything["entry"])  # fmt: skip


def test_shared_medication_is_readable(app: Flask, client: FlaskClient) -> None:
    medication = next(r for r in bundle_of(SEARCHSET) if r["resourceType"] == "Medication")
    answer = client.get(
        f"{FHIR}/Medication/{medication['id']}", headers=bearer(token_for(app, MILD))
    )
    assert answer.status_code == 200
    assert answer.get_json() == medication


# Searches --------------------------------------------------------------------------------


def test_read_patient(app: Flask, client: FlaskClient) -> None:
    answer = client.get(f"{FHIR}/Patient/{MILD}", headers=bearer(token_for(app, MILD)))
    assert answer.status_code == 200
    assert answer.get_json() == bundle_of(MILD)[0]


def test_every_prefetch_template_is_answered(app: Flask, client: FlaskClient) -> None:
    token = bearer(token_for(app, MILD))
    seen: set[str] = set()
    for key, template in PREFETCH.items():
        url = expand(template, {"patientId": MILD}, None)
        answer = client.get(f"{FHIR}/{url}", headers=token)
        assert answer.status_code == 200, (key, answer.get_json())
        body = answer.get_json()
        if body["resourceType"] == "Bundle":
            assert body["type"] == "searchset"
            assert link(body, "next") is None  # _count=1000 holds the whole chart
            assert body["total"] == len(ids(body))
            found = ids(body)
            assert not seen & set(found), f"{key} repeats resources of another key"
            seen.update(found)
        else:
            seen.add(f"Patient/{body['id']}")
    # every resource of the chart is found by exactly one key
    chart = {f"{r['resourceType']}/{r['id']}" for r in bundle_of(MILD)}
    assert seen == chart


def test_code_category_and_token_forms(app: Flask, client: FlaskClient) -> None:
    token = bearer(token_for(app, MILD))
    anc = [
        r
        for r in bundle_of(MILD)
        if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "751-8"
    ]
    assert anc
    for code in ("http://loinc.org|751-8", "751-8", "http://loinc.org|751-8,http://x|nothing"):
        body = client.get(
            f"{FHIR}/Observation?patient={MILD}&code={code}", headers=token
        ).get_json()
        assert body is not None and body["total"] == len(anc), code
    for code in ("http://snomed.info/sct|751-8", "|751-8", "http://loinc.org|1-1"):
        body = client.get(
            f"{FHIR}/Observation?patient={MILD}&code={code}", headers=token
        ).get_json()
        assert body is not None and body["total"] == 0, code
    # system| alone: every LOINC-coded observation
    loinc = client.get(f"{FHIR}/Observation?patient={MILD}&code=http://loinc.org|", headers=token)
    assert loinc.get_json()["total"] == sum(
        1 for r in bundle_of(MILD) if r["resourceType"] == "Observation"
    )
    # two code parameters: AND
    both = client.get(
        f"{FHIR}/Observation?patient={MILD}&code=751-8&code=http://loinc.org|", headers=token
    )
    assert both.get_json()["total"] == len(anc)


def test_date_prefixes(app: Flask, client: FlaskClient) -> None:
    token = bearer(token_for(app, MILD))
    dates = sorted(
        r["effectiveDateTime"] for r in bundle_of(MILD) if r["resourceType"] == "Observation"
    )
    last_day = dates[-1][:10]

    def total(query: str) -> int:
        answer = client.get(f"{FHIR}/Observation?patient={MILD}&{query}", headers=token)
        assert answer.status_code == 200, answer.get_json()
        count: int = answer.get_json()["total"]
        return count

    on_last_day = sum(1 for d in dates if d.startswith(last_day))
    assert total(f"date={last_day}") == on_last_day
    assert total(f"date=eq{last_day}") == on_last_day
    assert total(f"date=ge{last_day}") == on_last_day
    assert total(f"date=lt{last_day}") == len(dates) - on_last_day
    assert total(f"date=gt{last_day}") == 0
    assert total(f"date=ge{dates[0][:4]}&date=le{last_day}") == len(dates)
    assert total(f"date=ne{last_day}") == len(dates) - on_last_day


def test_paging_with_absolute_next_links(app: Flask, client: FlaskClient) -> None:
    token = bearer(token_for(app, MILD))
    whole = client.get(f"{FHIR}/Observation?patient={MILD}&_count=1000", headers=token).get_json()
    url: str | None = f"{URLS.fhir_base}/Observation?patient={MILD}&_count=7"
    pages: list[dict[str, Any]] = []
    while url is not None:
        assert url.startswith(URLS.fhir_base + "/Observation?")
        answer = client.get(url.removeprefix(URLS.origin), headers=token)
        assert answer.status_code == 200
        pages.append(answer.get_json())
        url = link(pages[-1], "next")
        assert len(pages) < 20
    collected = [i for p in pages for i in ids(p)]
    assert collected == ids(whole)
    assert len(pages) == -(-whole["total"] // 7)
    assert all(p["total"] == whole["total"] for p in pages)
    assert all(len(ids(p)) == 7 for p in pages[:-1])


def test_count_is_capped_and_checked(app: Flask, client: FlaskClient) -> None:
    token = bearer(token_for(app, MILD))
    big = client.get(f"{FHIR}/Observation?patient={MILD}&_count=5000", headers=token)
    assert big.status_code == 200
    assert link(big.get_json(), "self") is not None
    assert client.get(f"{FHIR}/Observation?_count=ten", headers=token).status_code == 400
    zero = client.get(f"{FHIR}/Observation?_count=0", headers=token).get_json()
    assert zero["total"] > 0 and ids(zero) == [] and link(zero, "next") is None


def test_include_medication_once_per_page(app: Flask, client: FlaskClient) -> None:
    token = bearer(token_for(app, SEARCHSET))
    requests_ = [r for r in bundle_of(SEARCHSET) if r["resourceType"] == "MedicationRequest"]
    referencing = [r for r in requests_ if "medicationReference" in r]
    assert referencing, "the searchset scenario orders by Medication reference"
    query = f"patient={SEARCHSET}&_include=MedicationRequest:medication"
    body = client.get(f"{FHIR}/MedicationRequest?{query}", headers=token).get_json()
    assert len(ids(body)) == len(requests_)
    assert ids(body, "include") == [referencing[0]["medicationReference"]["reference"]]
    plain = client.get(f"{FHIR}/MedicationRequest?patient={SEARCHSET}", headers=token).get_json()
    assert ids(plain, "include") == []
    # without Medication access nothing is included
    narrow = bearer(token_for(app, SEARCHSET, "patient/MedicationRequest.rs"))
    body = client.get(f"{FHIR}/MedicationRequest?{query}", headers=narrow).get_json()
    assert ids(body, "include") == []


@pytest.mark.parametrize(
    "query",
    [
        "Observation?patient=x&code:text=anc",
        "Observation?patient=x&value-quantity=5",
        "Observation?patient=x&date=ap2026-01-01",
        "Observation?patient=x&date=yesterday",
        "Observation?patient=x&_sort=date",
        "Observation?_include=Observation:performer",
        "MedicationRequest?_include=Observation:patient",
        "Observation?_format=xml",
        "Encounter?patient=x",
    ],
)
def test_what_the_sandbox_cannot_answer_is_refused(
    app: Flask, client: FlaskClient, query: str
) -> None:
    url = f"{FHIR}/{query.replace('patient=x', f'patient={MILD}')}"
    answer = client.get(url, headers=bearer(token_for(app, MILD, "patient/*.rs")))
    assert answer.status_code == 400, query
    assert answer.get_json()["issue"][0]["code"] == "not-supported"


def test_a_failed_search_of_the_story_is_kept(app: Flask, client: FlaskClient) -> None:
    token = bearer(token_for(app, TIMEOUT))
    body = client.get(f"{FHIR}/Observation?patient={TIMEOUT}", headers=token).get_json()
    assert [e["search"]["mode"] for e in body["entry"]] == ["outcome"]
    assert body["entry"][0]["resource"]["issue"][0]["code"] == "timeout"
    orders = client.get(f"{FHIR}/MedicationRequest?patient={TIMEOUT}", headers=token).get_json()
    assert orders["total"] == 4


def test_get_answers_as_the_http_api_does(app: Flask) -> None:
    store = state(app).store
    body = fhir_api.get(store, URLS.fhir_base, f"Condition?patient={MILD}", MILD)
    assert body["total"] == 1
    assert fhir_api.get(store, URLS.fhir_base, f"Patient/{MILD}", MILD)["id"] == MILD
    with pytest.raises(fhir_api.FhirApiError) as refused:
        fhir_api.get(store, URLS.fhir_base, f"Patient/{SEARCHSET}", MILD)
    assert refused.value.status == 404
    with pytest.raises(fhir_api.FhirApiError):
        fhir_api.get(store, URLS.fhir_base, "Patient/a/b", MILD)


# The app's own fetch, end to end through FhirClient ---------------------------------------


@pytest.fixture
def routed(client: FlaskClient) -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        route_to(client, mock)
        yield mock


def codes_of(data: Any, name: str, unavailable: list[str] | None = None) -> set[str]:
    scenario = get(name)
    profile: Profile = "uk-mhra" if scenario.profile == "uk-mhra" else "us-fda"
    record = build_record(data, unavailable=unavailable or [])
    return {f.code for f in evaluate(record, scenario.as_of, profile).findings}


@pytest.mark.parametrize("name", [s.name for s in all_scenarios()])
def test_the_app_fetch_finds_what_the_bundle_holds(
    app: Flask, routed: responses.RequestsMock, name: str
) -> None:
    """Through the sandbox, with the dashboard's own queries over HTTP, every patient gives
    the same findings as its bundle evaluated directly, and each resource comes once."""
    with FhirClient(URLS.fhir_base, token_for(app, name), max_pages=200) as fhir:
        data = fetch_patient_data(fhir, name, lambda _t: True, workers=1)
    direct = codes_of(get(name).bundle(), name)
    assert codes_of(data.resources, name, data.unavailable) == direct
    assert set(get(name).expected_codes) <= direct
    keys = [f"{r['resourceType']}/{r['id']}" for r in data.resources]
    assert len(keys) == len(set(keys))
