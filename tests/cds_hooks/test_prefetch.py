"""Prefetch resolution against a mocked EHR (responses): present, missing (fetched in parallel),
null, OperationOutcome, paged, every failure kind, usability, https only, the token kept safe
(CDS Hooks 2.0 §Prefetch; standards-checklist.md ★ prefetch items)."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from smartapp.cds_hooks import discovery
from smartapp.cds_hooks.discovery import expand, prefetch_templates
from smartapp.cds_hooks.prefetch import PatientData, gather, server_problem
from tests.conftest import anc, clozapine_order, patient

BASE = "https://ehr.example/fhir/r4"
TOKEN = "tok-ZX81-very-secret"  # noqa: S105 - a test token
SERVICE = "clozapine-order-sign"
CONTEXT: dict[str, Any] = {"userId": "Practitioner/dr-1", "patientId": "p1", "draftOrders": {}}
TEMPLATES = prefetch_templates(SERVICE) or {}
KEYS = list(TEMPLATES)

Json = dict[str, Any]
Answer = tuple[int, Any] | Exception | Callable[[requests.PreparedRequest], Any]


def condition(cid: str) -> Json:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "58214004"}]},
    }


def medication(mid: str) -> Json:
    return {"resourceType": "Medication", "id": mid}


def searchset(*resources: Json, next_url: str | None = None) -> Json:
    links = [{"relation": "self", "url": f"{BASE}/search"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [{"fullUrl": f"{BASE}/x/{i}", "resource": r} for i, r in enumerate(resources)],
    }


def outcome(severity: str = "error", text: str = "query failed") -> Json:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": "processing", "diagnostics": text}],
    }


DATA: dict[str, list[Json]] = {
    "patient": [patient("p1")],
    "medicationRequests": [clozapine_order("m1", "2025-06-01"), medication("med1")],
    "labs": [anc("o1", "2026-02-01", 2.1), anc("o2", "2026-02-22", 2.3)],
    "conditions": [condition("c1")],
    "assessments": [],
    "medicationDispenses": [],
    "medicationAdministrations": [],
    "labReports": [],
}


def prefetched(key: str) -> Json:
    """What an EHR would send for ``key``: the resource for a read, a searchset for a search."""
    return DATA[key][0] if key == "patient" else searchset(*DATA.get(key, []))


def full_prefetch() -> dict[str, Any]:
    return {key: prefetched(key) for key in KEYS}


def ids(data: PatientData) -> list[str]:
    return sorted(f"{r['resourceType']}/{r['id']}" for r in data.resources)


ALL_IDS = sorted(f"{r['resourceType']}/{r['id']}" for rs in DATA.values() for r in rs)


class FakeEhr:
    """A FHIR server behind ``responses``: answers each prefetch query (recognised by path and
    query parameters) or an exact URL, records every request and the most at once."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.answers: dict[str, Answer] = {}
        self.calls: list[requests.PreparedRequest] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()
        mock.add_callback(responses.GET, re.compile(re.escape(BASE) + r"/.*"), self.handle)

    def key_of(self, url: str) -> str:
        parts = urlsplit(url)
        for key, template in TEMPLATES.items():
            want = urlsplit(f"{BASE}/{expand(template, CONTEXT, None)}")
            if want.path == parts.path and parse_qs(want.query) == parse_qs(parts.query):
                return key
        raise AssertionError(f"unexpected request {url}")

    def handle(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        with self.lock:
            self.calls.append(request)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            url = str(request.url)
            name = url if url in self.answers else self.key_of(url)
            answer = self.answers.get(name) or (200, prefetched(name))
            if callable(answer):
                answer = answer(request)
            if isinstance(answer, Exception):
                raise answer
            status, body = answer
            text = body if isinstance(body, str) else json.dumps(body)
            return status, {"Content-Type": "application/fhir+json"}, text
        finally:
            with self.lock:
                self.in_flight -= 1

    def urls(self) -> list[str]:
        return [str(c.url) for c in self.calls]


@pytest.fixture
def ehr() -> Iterator[FakeEhr]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeEhr(mock)


def run(
    prefetch: dict[str, Any], server: str | None = BASE, token: str | None = TOKEN, **kw: Any
) -> PatientData:
    options: dict[str, Any] = {"timeout": 2.0, "max_pages": 5, "max_workers": 8}
    options.update(kw)
    return gather(SERVICE, CONTEXT, prefetch, server, token, user_id=CONTEXT["userId"], **options)


# -- present, null, absent ---------------------------------------------------------------


def test_prefetch_present_is_used_as_is_without_any_request(ehr: FakeEhr) -> None:
    data = run(full_prefetch())
    assert ehr.calls == []
    assert ids(data) == ALL_IDS
    assert data.unavailable == [] and data.fetched == [] and data.usable


def test_a_single_resource_prefetch_is_that_resource(ehr: FakeEhr) -> None:
    data = run({**{k: None for k in KEYS}, "patient": patient("p1")})
    assert [r["id"] for r in data.resources] == ["p1"]


def test_null_means_no_data_and_nothing_is_fetched(ehr: FakeEhr) -> None:
    data = run(dict.fromkeys(KEYS))
    assert ehr.calls == []
    assert data.resources == [] and data.unavailable == [] and data.usable


def test_null_key_beside_present_ones(ehr: FakeEhr) -> None:
    data = run({**full_prefetch(), "labs": None})
    assert ehr.calls == []
    assert "Observation/o1" not in ids(data) and data.unavailable == []


def test_missing_keys_are_fetched_with_the_bearer_token(ehr: FakeEhr) -> None:
    data = run({})
    assert sorted(ehr.key_of(u) for u in ehr.urls()) == sorted(KEYS)
    assert all(c.headers["Authorization"] == f"Bearer {TOKEN}" for c in ehr.calls)
    assert ids(data) == ALL_IDS
    assert data.fetched == KEYS and data.unavailable == [] and data.usable


def test_only_the_missing_key_is_fetched(ehr: FakeEhr) -> None:
    prefetch = full_prefetch()
    del prefetch["labs"]
    data = run(prefetch)
    assert [ehr.key_of(u) for u in ehr.urls()] == ["labs"]
    lab_query = parse_qs(urlsplit(ehr.urls()[0]).query)
    assert lab_query["patient"] == ["p1"] and "http://loinc.org|751-8" in lab_query["code"][0]
    assert data.fetched == ["labs"] and ids(data) == ALL_IDS


def test_missing_keys_are_fetched_in_parallel(ehr: FakeEhr) -> None:
    missing = ["medicationRequests", "labs", "conditions"]
    meeting = threading.Barrier(len(missing), timeout=10)

    def wait_for_the_others(request: requests.PreparedRequest) -> tuple[int, Json]:
        meeting.wait()  # breaks (and the test fails) unless all three are in flight together
        return 200, prefetched(ehr.key_of(str(request.url)))

    for key in missing:
        ehr.answers[key] = wait_for_the_others
    prefetch = {k: v for k, v in full_prefetch().items() if k not in missing}
    data = run(prefetch)
    assert ehr.most_in_flight == len(missing)
    assert data.unavailable == [] and ids(data) == ALL_IDS


def test_one_worker_still_fetches_everything(ehr: FakeEhr) -> None:
    data = run({}, max_workers=1)
    assert ehr.most_in_flight == 1 and ids(data) == ALL_IDS


def test_included_resources_repeated_across_keys_appear_once(ehr: FakeEhr) -> None:
    prefetch = full_prefetch()
    prefetch["medicationDispenses"] = searchset(medication("med1"))
    data = run(prefetch)
    assert ids(data).count("Medication/med1") == 1


def test_keys_the_service_did_not_ask_for_are_ignored(ehr: FakeEhr) -> None:
    data = run({**full_prefetch(), "other": searchset(condition("c9"))})
    assert "Condition/c9" not in ids(data)


# -- OperationOutcome and malformed prefetch ----------------------------------------------


@pytest.mark.parametrize(
    "failed",
    [
        outcome(),
        searchset(anc("o9", "2026-01-01", 1.0), outcome()),
        {"resourceType": "Bundle", "type": "searchset", "entry": {"not": "a list"}},
        ["not", "a", "resource"],
        "text",
    ],
    ids=["outcome", "bundle-with-error-outcome", "bundle-entry-not-list", "list", "string"],
)
def test_failed_prefetch_is_fetched_again(ehr: FakeEhr, failed: Any) -> None:
    data = run({**full_prefetch(), "labs": failed})
    assert [ehr.key_of(u) for u in ehr.urls()] == ["labs"]
    assert "Observation/o9" not in ids(data) and ids(data) == ALL_IDS
    assert data.unavailable == [] and data.fetched == ["labs"]


def test_failed_prefetch_without_fhir_server_is_unavailable(ehr: FakeEhr) -> None:
    data = run({**full_prefetch(), "labs": outcome()}, server=None)
    assert data.unavailable == [
        "labs: the EHR's prefetch query failed; no FHIR server was given to fetch it from"
    ]
    assert "Observation/o1" not in ids(data) and data.usable and ehr.calls == []


def test_failed_prefetch_whose_fetch_fails_says_both(ehr: FakeEhr) -> None:
    ehr.answers["labs"] = (500, outcome())
    data = run({**full_prefetch(), "labs": outcome()})
    assert data.unavailable == [
        "labs: the EHR's prefetch query failed; FHIR server answered with an error (HTTP 500)"
    ]


def test_warning_outcome_in_a_prefetch_bundle_is_not_a_failure(ehr: FakeEhr) -> None:
    labs = searchset(*DATA["labs"], outcome("warning", "results limited"))
    labs["entry"][-1]["search"] = {"mode": "outcome"}
    data = run({**full_prefetch(), "labs": labs})
    assert ehr.calls == [] and data.unavailable == []
    assert "OperationOutcome" not in {r["resourceType"] for r in data.resources}


# -- paging -------------------------------------------------------------------------------


def test_paged_prefetch_bundle_is_followed_on_the_fhir_server(ehr: FakeEhr) -> None:
    page2, page3 = f"{BASE}/Observation?_page=2", f"{BASE}/Observation?_page=3"
    ehr.answers[page2] = (200, searchset(anc("o3", "2026-02-25", 2.0), next_url=page3))
    ehr.answers[page3] = (200, searchset(anc("o4", "2026-02-28", 1.9)))
    data = run({**full_prefetch(), "labs": searchset(*DATA["labs"], next_url=page2)})
    assert ehr.urls() == [page2, page3]
    assert all(c.headers["Authorization"] == f"Bearer {TOKEN}" for c in ehr.calls)
    assert {"Observation/o3", "Observation/o4"} <= set(ids(data))
    assert data.unavailable == [] and data.fetched == ["labs"]


def test_paged_prefetch_without_fhir_server_keeps_the_first_page(ehr: FakeEhr) -> None:
    page2 = f"{BASE}/Observation?_page=2"
    data = run({**full_prefetch(), "labs": searchset(*DATA["labs"], next_url=page2)}, server=None)
    assert ehr.calls == [] and ids(data) == ALL_IDS
    assert data.unavailable == [
        "labs: more pages not retrievable: no FHIR server was given to fetch it from"
    ]
    assert data.usable


def test_fetched_search_follows_its_pages(ehr: FakeEhr) -> None:
    page2 = f"{BASE}/Observation?_page=2"
    ehr.answers["labs"] = (200, searchset(DATA["labs"][0], next_url=page2))
    ehr.answers[page2] = (200, searchset(DATA["labs"][1]))
    data = run({k: v for k, v in full_prefetch().items() if k != "labs"})
    assert ids(data) == ALL_IDS and data.unavailable == []


def test_a_later_page_failing_keeps_the_pages_read(ehr: FakeEhr) -> None:
    page2 = f"{BASE}/Observation?_page=2"
    ehr.answers["labs"] = (200, searchset(DATA["labs"][0], next_url=page2))
    ehr.answers[page2] = (500, outcome())
    data = run({k: v for k, v in full_prefetch().items() if k != "labs"})
    assert "Observation/o1" in ids(data) and "Observation/o2" not in ids(data)
    assert data.unavailable == [
        "labs: more pages could not be fetched: FHIR server answered with an error (HTTP 500)"
    ]
    assert data.usable and data.fetched == ["labs"]


def test_more_pages_than_the_limit(ehr: FakeEhr) -> None:
    pages = [f"{BASE}/Observation?_page={n}" for n in range(2, 5)]
    ehr.answers["labs"] = (200, searchset(DATA["labs"][0], next_url=pages[0]))
    for n, url in enumerate(pages):
        following = pages[n + 1] if n + 1 < len(pages) else None
        ehr.answers[url] = (200, searchset(anc(f"p{n}", "2026-01-01", 2), next_url=following))
    data = run({k: v for k, v in full_prefetch().items() if k != "labs"}, max_pages=2)
    assert data.unavailable == [
        "labs: more pages could not be fetched: more pages of results than the page limit"
    ]


def test_next_link_off_the_fhir_server_is_not_followed(ehr: FakeEhr) -> None:
    labs = searchset(*DATA["labs"], next_url="https://evil.example/steal?page=2")
    data = run({**full_prefetch(), "labs": labs})
    assert ehr.calls == []
    assert data.unavailable == [
        "labs: more pages could not be fetched: "
        "a link pointed away from the FHIR server and was not followed"
    ]


# -- failures of the fallback -------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (requests.exceptions.ReadTimeout("read timed out"), "FHIR server timed out"),
        (requests.exceptions.ConnectTimeout("connect timed out"), "FHIR server timed out"),
        (requests.exceptions.ConnectionError("refused"), "FHIR server could not be reached"),
        ((401, outcome(text=f"bad token {TOKEN}")), "FHIR server refused access (HTTP 401)"),
        ((403, outcome()), "FHIR server refused access (HTTP 403)"),
        ((500, outcome()), "FHIR server answered with an error (HTTP 500)"),
        ((404, "<html>not found</html>"), "FHIR server answered with an error (HTTP 404)"),
        ((200, "{not json"), "FHIR server sent something that is not the FHIR JSON expected"),
        ((200, [1, 2]), "FHIR server sent something that is not the FHIR JSON expected"),
        ((200, outcome()), "FHIR server reported an error"),
        ((200, searchset(outcome())), "FHIR server reported an error"),
    ],
    ids=[
        "read-timeout",
        "connect-timeout",
        "connection",
        "401",
        "403",
        "500",
        "404-html",
        "malformed-json",
        "json-not-fhir",
        "outcome",
        "bundle-outcome",
    ],
)
def test_fallback_failure_names_the_key_and_the_kind(
    ehr: FakeEhr, caplog: pytest.LogCaptureFixture, answer: Answer, words: str
) -> None:
    caplog.set_level(logging.DEBUG)
    ehr.answers["labs"] = answer
    data = run({k: v for k, v in full_prefetch().items() if k != "labs"})
    assert data.unavailable == [f"labs: {words}"]
    assert data.usable and "Observation/o1" not in ids(data) and "labs" not in data.fetched
    assert TOKEN not in repr(data) and TOKEN not in caplog.text


def test_losing_medication_requests_and_labs_is_not_usable(ehr: FakeEhr) -> None:
    ehr.answers["medicationRequests"] = (500, outcome())
    for key in discovery.LAB_KEYS:
        ehr.answers[key] = requests.exceptions.ReadTimeout()
    lost = ("medicationRequests", *discovery.LAB_KEYS)
    data = run({k: v for k, v in full_prefetch().items() if k not in lost})
    assert data.unavailable == [
        "medicationRequests: FHIR server answered with an error (HTTP 500)",
        *(f"{key}: FHIR server timed out" for key in discovery.LAB_KEYS),
    ]
    assert not data.usable and "Condition/c1" in ids(data)


@pytest.mark.parametrize("lost", ["medicationRequests", "labs"])
def test_losing_one_core_key_is_still_usable(ehr: FakeEhr, lost: str) -> None:
    ehr.answers[lost] = (500, outcome())
    data = run({})
    assert data.usable and data.unavailable == [
        f"{lost}: FHIR server answered with an error (HTTP 500)"
    ]


def test_total_failure_is_not_usable_and_lists_every_key(
    ehr: FakeEhr, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for key in KEYS:
        ehr.answers[key] = (401, outcome(text=f"token {TOKEN} expired"))
    data = run({})
    assert not data.usable and data.resources == [] and data.fetched == []
    assert data.unavailable == [f"{k}: FHIR server refused access (HTTP 401)" for k in KEYS]
    assert TOKEN not in "\n".join(data.unavailable) and TOKEN not in caplog.text


def test_missing_patient_resource_is_not_fatal(ehr: FakeEhr) -> None:
    ehr.answers["patient"] = (404, outcome(text="no such patient"))
    data = run({k: v for k, v in full_prefetch().items() if k != "patient"})
    assert data.usable and data.unavailable == [
        "patient: FHIR server answered with an error (HTTP 404)"
    ]


# -- where we may call ----------------------------------------------------------------------


def test_no_fhir_server_makes_missing_keys_unavailable(ehr: FakeEhr) -> None:
    data = run({"patient": patient("p1"), "conditions": searchset(condition("c1"))}, server=None)
    assert ehr.calls == []
    missing = [k for k in KEYS if k not in ("patient", "conditions")]
    assert data.unavailable == [f"{k}: no FHIR server was given to fetch it from" for k in missing]
    assert not data.usable and ids(data) == ["Condition/c1", "Patient/p1"]


@pytest.mark.parametrize(
    ("server", "problem"),
    [
        ("http://ehr.example/fhir", "the FHIR server is not on HTTPS"),
        ("ftp://ehr.example/fhir", "the FHIR server address is not an absolute https URL"),
        ("ehr.example/fhir", "the FHIR server address is not an absolute https URL"),
        ("https://user:pw@ehr.example/fhir", "the FHIR server address is not a plain base URL"),
        ("https://ehr.example/fhir?x=1", "the FHIR server address is not a plain base URL"),
        ("https://ehr.example:99999/fhir", "the FHIR server address is not a valid URL"),
        ("", "no FHIR server was given to fetch it from"),
    ],
)
def test_fhir_servers_we_refuse_to_call(ehr: FakeEhr, server: str, problem: str) -> None:
    assert server_problem(server) == problem
    data = run({k: v for k, v in full_prefetch().items() if k != "labs"}, server=server)
    assert ehr.calls == [] and data.unavailable == [f"labs: {problem}"]


@pytest.mark.parametrize(
    "server",
    [
        "https://ehr.example/fhir",
        "http://127.0.0.1:8080/fhir",
        "http://localhost/fhir",
        "http://[::1]:9/fhir",
    ],
)
def test_https_and_loopback_http_are_allowed(server: str) -> None:
    assert server_problem(server) is None


def test_plain_http_allowed_only_by_setting() -> None:
    assert server_problem("http://ehr.example/fhir") == "the FHIR server is not on HTTPS"
    assert server_problem("http://ehr.example/fhir", allow_http=True) is None


def test_http_fhir_server_used_when_allowed() -> None:
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, "http://ehr.example/fhir/Patient/p1", json=patient("p1"))
        data = gather(
            SERVICE,
            CONTEXT,
            {**full_prefetch(), "patient": outcome()},
            "http://ehr.example/fhir",
            None,
            user_id=None,
            timeout=1,
            max_pages=2,
            max_workers=2,
            allow_http=True,
        )
        headers = mock.calls[0].request.headers
    assert data.unavailable == [] and data.fetched == ["patient"]
    assert "Authorization" not in headers  # no token, no header


def test_a_query_that_cannot_be_built_is_unavailable(ehr: FakeEhr) -> None:
    data = gather(
        SERVICE,
        {"userId": "Practitioner/dr-1"},
        {},
        BASE,
        TOKEN,
        user_id=None,
        timeout=1,
        max_pages=2,
        max_workers=2,
    )
    assert ehr.calls == [] and not data.usable
    assert data.unavailable[0] == (
        "patient: the query could not be built "
        "(prefetch token context.patientId has no value in the request context)"
    )


def test_unknown_service_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        gather(
            "nope", CONTEXT, {}, BASE, TOKEN, user_id=None, timeout=1, max_pages=1, max_workers=1
        )
