"""FhirClient against a mocked FHIR server (responses): paging, _include, query encoding,
retries and their limits, every FhirError kind, the token kept on the base, run_parallel."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from smartapp.fhir_client import FhirClient, FhirError, make_session, retry_after_s, run_parallel

BASE = "https://ehr.example/fhir/r4"
TOKEN = "s3cret-token-value"  # noqa: S105 - a test token
LOINC_ANC = "http://loinc.org|751-8"


def obs(oid: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "status": "final"}


def page(
    *resources: dict[str, Any], next_url: str | None = None, modes: tuple[str, ...] = ()
) -> dict[str, Any]:
    entries = [
        {"resource": r, "search": {"mode": modes[i] if i < len(modes) else "match"}}
        for i, r in enumerate(resources)
    ]
    links = [{"relation": "self", "url": f"{BASE}/x"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


def outcome(diagnostics: str, severity: str = "error") -> dict[str, Any]:
    issue = {"severity": severity, "code": "processing", "diagnostics": diagnostics}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


class Sleeps:
    """Records the client's pauses instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(sleeps: Sleeps) -> FhirClient:
    fhir = FhirClient(BASE, TOKEN, timeout=2.0, retries=2, backoff_s=0.1)
    fhir.sleep = sleeps
    return fhir


def query(call: Any) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(call.request.url).query)


def kind_of(excinfo: pytest.ExceptionInfo[FhirError]) -> str:
    return excinfo.value.kind


# -- searching and paging -------------------------------------------------------------------
@responses.activate
def test_search_follows_three_pages_in_order_with_the_token(client: FhirClient) -> None:
    responses.get(f"{BASE}/Observation", json=page(obs("a"), obs("b"), next_url=f"{BASE}/p2"))
    responses.get(f"{BASE}/p2", json=page(obs("c"), next_url=f"{BASE}/p3?page=3"))
    responses.get(f"{BASE}/p3", json=page(obs("d")))
    found = client.search("Observation", {"patient": "p1", "code": LOINC_ANC, "_count": "2"})
    assert [r["id"] for r in found] == ["a", "b", "c", "d"]
    assert len(responses.calls) == 3
    for call in responses.calls:
        assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert call.request.headers["Accept"] == "application/fhir+json"
    assert ("page", "3") in query(responses.calls[2])


@responses.activate
def test_include_keeps_included_resources_in_server_order(client: FhirClient) -> None:
    order = {"resourceType": "MedicationRequest", "id": "m1"}
    med = {"resourceType": "Medication", "id": "med1"}
    responses.get(f"{BASE}/MedicationRequest", json=page(order, med, modes=("match", "include")))
    found = client.search(
        "MedicationRequest", {"patient": "p1", "_include": "MedicationRequest:medication"}
    )
    assert [(r["resourceType"], r["id"]) for r in found] == [
        ("MedicationRequest", "m1"),
        ("Medication", "med1"),
    ]
    assert "_include=MedicationRequest:medication" in str(responses.calls[0].request.url)


@responses.activate
def test_query_encoding_system_code_lists_commas_and_date_offsets(client: FhirClient) -> None:
    responses.get(f"{BASE}/Observation", json=page())
    client.search(
        "Observation",
        {
            "code": [LOINC_ANC, "http://loinc.org|26499-4,http://loinc.org|751-8"],
            "date": "ge2024-01-01T00:00:00+01:00",
            "subject": "Patient/p 1",
        },
    )
    url = responses.calls[0].request.url
    raw = urlsplit(url).query
    assert "code=http://loinc.org%7C751-8&code=" in raw  # a list repeats the parameter
    assert "%7C26499-4,http://loinc.org%7C751-8" in raw  # the caller's comma is kept (OR)
    assert "date=ge2024-01-01T00:00:00%2B01:00" in raw  # "+" would arrive as a space
    assert query(responses.calls[0]) == [
        ("code", LOINC_ANC),
        ("code", "http://loinc.org|26499-4,http://loinc.org|751-8"),
        ("date", "ge2024-01-01T00:00:00+01:00"),
        ("subject", "Patient/p 1"),
    ]


def test_an_empty_value_list_is_refused_not_dropped(client: FhirClient) -> None:
    with pytest.raises(ValueError, match="'code' has no values"):
        client.search("Observation", {"patient": "p1", "code": []})


@pytest.mark.parametrize("bad", ["observation", "Observation/../admin", "", "Obs?x=1"])
def test_search_refuses_a_bad_resource_type(client: FhirClient, bad: str) -> None:
    with pytest.raises(ValueError, match="not a FHIR resource type"):
        client.search(bad, {})


@responses.activate
def test_follow_pages_on_from_a_prefetched_bundle(client: FhirClient) -> None:
    responses.get(f"{BASE}/Observation", json=page(obs("c")))
    prefetched = page(obs("a"), obs("b"), next_url=f"{BASE}/Observation?_page=2")
    assert [r["id"] for r in client.follow(prefetched)] == ["a", "b", "c"]


@responses.activate
def test_a_relative_next_link_resolves_under_the_base(client: FhirClient) -> None:
    responses.get(f"{BASE}/Observation", json=page(obs("b")))
    first = page(obs("a"), next_url="Observation?_page=2")
    assert [r["id"] for r in client.follow(first)] == ["a", "b"]
    assert responses.calls[0].request.url == f"{BASE}/Observation?_page=2"


@responses.activate
def test_more_than_max_pages_is_truncated_not_silently_cut(sleeps: Sleeps) -> None:
    short = FhirClient(BASE, max_pages=3)
    for n in range(1, 5):
        responses.get(f"{BASE}/p{n}", json=page(obs(str(n)), next_url=f"{BASE}/p{n + 1}"))
    with pytest.raises(FhirError) as excinfo:
        short.follow(page(obs("0"), next_url=f"{BASE}/p1"))
    assert kind_of(excinfo) == "truncated"
    assert "more than 3 pages" in str(excinfo.value)
    assert len(responses.calls) == 2  # pages 2 and 3; the 4th is never asked for
    exact = FhirClient(BASE, max_pages=3)
    last = page(obs("x"))
    responses.replace(responses.GET, f"{BASE}/p2", json=last)
    assert [r["id"] for r in exact.follow(page(obs("0"), next_url=f"{BASE}/p1"))] == [
        "0",
        "1",
        "x",
    ]


@responses.activate
def test_a_next_link_loop_is_malformed(client: FhirClient) -> None:
    responses.get(f"{BASE}/p2", json=page(obs("b"), next_url=f"{BASE}/p2"))
    with pytest.raises(FhirError) as excinfo:
        client.follow(page(obs("a"), next_url=f"{BASE}/p2"))
    assert kind_of(excinfo) == "malformed"
    assert "loop" in str(excinfo.value)


# -- the token stays on the base ------------------------------------------------------------
@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/fhir/r4/Observation?page=2",
        "http://ehr.example/fhir/r4/Observation?page=2",  # https -> http
        "https://ehr.example:8443/fhir/r4/Observation?page=2",
        "https://ehr.example/fhir/other/Observation",
        "https://ehr.example/fhir/r4x/Observation",
        "https://ehr.example/fhir/r4/%2e%2e/admin",
        "//evil.example/fhir/r4/Observation",
        "/admin/reset",
    ],
)
@responses.activate
def test_an_offsite_next_link_is_refused_and_nothing_is_sent(
    client: FhirClient, next_url: str
) -> None:
    with pytest.raises(FhirError) as excinfo:
        client.follow(page(obs("a"), next_url=next_url))
    assert kind_of(excinfo) == "offsite"
    assert len(responses.calls) == 0
    assert TOKEN not in str(excinfo.value)
    assert "?" not in str(excinfo.value)


@responses.activate
def test_absolute_urls_under_the_base_get_the_token(client: FhirClient) -> None:
    responses.get("https://EHR.example:443/fhir/r4/Patient/p1", json={"resourceType": "Patient"})
    client.get("https://EHR.example:443/fhir/r4/Patient/p1")
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


@responses.activate
def test_no_token_no_authorization_header() -> None:
    responses.get(f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    FhirClient(BASE).read("Patient", "p1")
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_redirects_are_followed_only_under_the_base(client: FhirClient) -> None:
    responses.get(f"{BASE}/Patient/p1", status=302, headers={"Location": f"{BASE}/Patient/p2"})
    responses.get(f"{BASE}/Patient/p2", json={"resourceType": "Patient", "id": "p2"})
    assert client.read("Patient", "p1")["id"] == "p2"
    assert responses.calls[1].request.headers["Authorization"] == f"Bearer {TOKEN}"
    responses.get(f"{BASE}/Patient/p3", status=307, headers={"Location": "https://evil.example/"})
    evil = responses.get("https://evil.example/", json={})
    with pytest.raises(FhirError) as excinfo:
        client.read("Patient", "p3")
    assert kind_of(excinfo) == "offsite"
    assert evil.call_count == 0


@responses.activate
def test_a_token_echoed_by_the_server_never_reaches_the_message(client: FhirClient) -> None:
    responses.get(f"{BASE}/Patient/p1", status=500, json=outcome(f"bad token {TOKEN}"))
    with pytest.raises(FhirError) as excinfo:
        client.read("Patient", "p1")
    assert TOKEN not in str(excinfo.value)
    assert "bad token [token]" in str(excinfo.value)
    assert TOKEN not in repr(client)


@responses.activate
def test_debug_log_has_no_token_and_no_query(
    client: FhirClient, caplog: pytest.LogCaptureFixture
) -> None:
    responses.get(f"{BASE}/Observation", json=page(obs("a")))
    with caplog.at_level(logging.DEBUG, logger="smartapp.fhir_client"):
        client.search("Observation", {"patient": "secret-patient"})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"GET {BASE}/Observation -> 200" in logged
    assert TOKEN not in logged
    assert "secret-patient" not in logged


# -- retries ---------------------------------------------------------------------------------
@responses.activate
def test_429_is_retried_after_retry_after_seconds(client: FhirClient, sleeps: Sleeps) -> None:
    responses.get(f"{BASE}/Patient/p1", status=429, headers={"Retry-After": "2"})
    responses.get(f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    assert client.read("Patient", "p1")["id"] == "p1"
    assert sleeps.delays == [2.0]
    assert len(responses.calls) == 2


def test_retry_after_is_capped_and_dates_fall_back_to_backoff() -> None:
    assert retry_after_s("3") == 3.0
    assert retry_after_s(" 120 ") == 5.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert retry_after_s("-1") is None
    assert retry_after_s(None) is None


@responses.activate
def test_503_then_success_backs_off_with_jitter(client: FhirClient, sleeps: Sleeps) -> None:
    responses.get(f"{BASE}/Patient/p1", status=503)
    responses.get(f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    assert client.read("Patient", "p1")["id"] == "p1"
    assert len(sleeps.delays) == 1
    assert 0.1 <= sleeps.delays[0] <= 0.2


@responses.activate
def test_gives_up_after_retries_with_exponential_backoff(
    client: FhirClient, sleeps: Sleeps
) -> None:
    responses.get(f"{BASE}/Patient/p1", status=503, json=outcome("overloaded"))
    with pytest.raises(FhirError) as excinfo:
        client.read("Patient", "p1")
    assert (excinfo.value.kind, excinfo.value.status) == ("http", 503)
    assert "overloaded" in str(excinfo.value)
    assert len(responses.calls) == 3  # one try and two retries
    first, second = sleeps.delays
    assert 0.1 <= first <= 0.2
    assert 0.2 <= second <= 0.3


@responses.activate
def test_retries_zero_means_one_try(sleeps: Sleeps) -> None:
    once = FhirClient(BASE, retries=0)
    once.sleep = sleeps
    responses.get(f"{BASE}/Patient/p1", status=429)
    with pytest.raises(FhirError) as excinfo:
        once.read("Patient", "p1")
    assert (excinfo.value.kind, excinfo.value.status, len(responses.calls)) == ("http", 429, 1)
    assert sleeps.delays == []


@pytest.mark.parametrize("status", [400, 404, 409, 422, 500, 502])
@responses.activate
def test_other_errors_are_not_retried(client: FhirClient, sleeps: Sleeps, status: int) -> None:
    responses.get(f"{BASE}/Observation", status=status, json=outcome("Unknown search parameter"))
    with pytest.raises(FhirError) as excinfo:
        client.search("Observation", {"colour": "blue"})
    assert (excinfo.value.kind, excinfo.value.status) == ("http", status)
    assert f"HTTP {status}: Unknown search parameter" in str(excinfo.value)
    assert len(responses.calls) == 1
    assert sleeps.delays == []


@responses.activate
def test_connection_errors_are_retried_for_gets(client: FhirClient, sleeps: Sleeps) -> None:
    responses.get(f"{BASE}/Patient/p1", body=requests.exceptions.ConnectionError("reset"))
    responses.get(f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    assert client.read("Patient", "p1")["id"] == "p1"
    assert len(sleeps.delays) == 1


@responses.activate
def test_connection_errors_give_up_as_connection(client: FhirClient) -> None:
    responses.get(f"{BASE}/Patient/p1", body=requests.exceptions.ConnectionError("refused"))
    with pytest.raises(FhirError) as excinfo:
        client.read("Patient", "p1")
    assert (excinfo.value.kind, excinfo.value.status) == ("connection", None)
    assert len(responses.calls) == 3


@responses.activate
def test_a_post_transaction_is_not_retried_on_503_or_lost_connection(
    client: FhirClient,
) -> None:
    create = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": obs("a"), "request": {"method": "POST", "url": "Observation"}}],
    }
    responses.post(f"{BASE}/", status=503)
    with pytest.raises(FhirError) as excinfo:
        client.transaction(create)
    assert (excinfo.value.kind, len(responses.calls)) == ("http", 1)
    responses.replace(responses.POST, f"{BASE}/", body=requests.exceptions.ConnectionError())
    with pytest.raises(FhirError) as excinfo:
        client.transaction(create)
    assert (excinfo.value.kind, len(responses.calls)) == ("connection", 2)


# -- failures ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "timeout", [requests.exceptions.ReadTimeout(), requests.exceptions.ConnectTimeout()]
)
@responses.activate
def test_timeouts_are_timeout_and_not_retried(
    client: FhirClient, timeout: requests.RequestException
) -> None:
    responses.get(f"{BASE}/Observation", body=timeout)
    with pytest.raises(FhirError) as excinfo:
        client.search("Observation", {"patient": "p1"})
    assert kind_of(excinfo) == "timeout"
    assert "no answer within 2 s" in str(excinfo.value)
    assert len(responses.calls) == 1


@pytest.mark.parametrize("status", [401, 403])
@responses.activate
def test_401_and_403_are_auth(client: FhirClient, status: int) -> None:
    responses.get(f"{BASE}/Patient/p1", status=status, json=outcome("Unauthorized"))
    with pytest.raises(FhirError) as excinfo:
        client.read("Patient", "p1")
    assert (excinfo.value.kind, excinfo.value.status) == ("auth", status)
    assert len(responses.calls) == 1


@responses.activate
def test_500_message_carries_the_outcome_diagnostics_on_one_line(client: FhirClient) -> None:
    responses.get(f"{BASE}/Observation", status=500, json=outcome("database\n  unavailable"))
    with pytest.raises(FhirError) as excinfo:
        client.search("Observation", {"patient": "p1"})
    message = str(excinfo.value)
    assert message == f"GET {BASE}/Observation: HTTP 500: database unavailable"
    assert excinfo.value.status == 500


@responses.activate
def test_an_error_body_that_is_not_an_outcome_gives_just_the_status(client: FhirClient) -> None:
    responses.get(f"{BASE}/Patient/p1", status=502, body="<html>Bad gateway</html>")
    with pytest.raises(FhirError) as excinfo:
        client.read("Patient", "p1")
    assert str(excinfo.value) == f"GET {BASE}/Patient/p1: HTTP 502"


@pytest.mark.parametrize("body", ["{not json", "", "[" * 100_000])
@responses.activate
def test_a_body_that_is_not_json_is_malformed(client: FhirClient, body: str) -> None:
    responses.get(f"{BASE}/Observation", body=body, content_type="application/fhir+json")
    with pytest.raises(FhirError) as excinfo:
        client.search("Observation", {"patient": "p1"})
    assert (excinfo.value.kind, excinfo.value.status) == ("malformed", 200)


@pytest.mark.parametrize(
    "answer",
    [
        {"resourceType": "Patient", "id": "p1"},
        [1, 2],
        {"resourceType": "Bundle", "entry": {"resource": {}}},
        {"resourceType": "Bundle", "entry": [{"fullUrl": "x"}]},
        {"resourceType": "Bundle", "entry": [], "link": "next"},
        {"resourceType": "Bundle", "link": [{"relation": "next"}]},
    ],
)
@responses.activate
def test_a_search_answer_that_is_not_a_usable_bundle_is_malformed(
    client: FhirClient, answer: Any
) -> None:
    responses.get(f"{BASE}/Observation", json=answer)
    with pytest.raises(FhirError) as excinfo:
        client.search("Observation", {"patient": "p1"})
    assert kind_of(excinfo) == "malformed"


@responses.activate
def test_an_outcome_page_raises_outcome(client: FhirClient) -> None:
    responses.get(f"{BASE}/p2", json=outcome("too costly"))
    with pytest.raises(FhirError) as excinfo:
        client.follow(page(obs("a"), next_url=f"{BASE}/p2"))
    assert kind_of(excinfo) == "outcome"
    assert "too costly" in str(excinfo.value)


@responses.activate
def test_outcome_entries_raise_on_errors_and_drop_warnings(client: FhirClient) -> None:
    warning = outcome("some results hidden", severity="warning")
    responses.get(f"{BASE}/Observation", json=page(obs("a"), warning, modes=("match", "outcome")))
    assert [r["id"] for r in client.search("Observation", {"patient": "p1"})] == ["a"]
    failing = page(obs("a"), outcome("index offline"), modes=("match", "outcome"))
    responses.replace(responses.GET, f"{BASE}/Observation", json=failing)
    with pytest.raises(FhirError) as excinfo:
        client.search("Observation", {"patient": "p1"})
    assert kind_of(excinfo) == "outcome"
    assert "index offline" in str(excinfo.value)
    no_severity = {"resourceType": "OperationOutcome", "issue": [{"code": "exception"}]}
    responses.replace(responses.GET, f"{BASE}/Observation", json=page(no_severity))
    with pytest.raises(FhirError):
        client.search("Observation", {"patient": "p1"})


@responses.activate
def test_read_checks_the_resource_type(client: FhirClient) -> None:
    responses.get(f"{BASE}/Patient/p1", json={"resourceType": "Observation", "id": "p1"})
    with pytest.raises(FhirError) as excinfo:
        client.read("Patient", "p1")
    assert kind_of(excinfo) == "malformed"
    responses.replace(responses.GET, f"{BASE}/Patient/p1", json=outcome("gone"))
    with pytest.raises(FhirError) as excinfo:
        client.read("Patient", "p1")
    assert kind_of(excinfo) == "outcome"


@pytest.mark.parametrize("bad", ["", "a/b", "../x", "x" * 65, "p 1"])
def test_read_refuses_an_id_that_is_not_a_fhir_id(client: FhirClient, bad: str) -> None:
    with pytest.raises(ValueError, match="not a FHIR resource id"):
        client.read("Patient", bad)


@pytest.mark.parametrize(
    "base", ["ftp://ehr.example/fhir", "ehr.example/fhir", "https:///fhir", "https://e/f?x=1"]
)
def test_a_base_that_is_not_an_http_url_is_refused(base: str) -> None:
    with pytest.raises(ValueError):
        FhirClient(base)


@responses.activate
def test_transaction_reports_a_failed_entry(client: FhirClient) -> None:
    answer = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [{"response": {"status": "201 Created"}}, {"response": {"status": "400"}}],
    }
    responses.post(f"{BASE}/", json=answer)
    batch = {"resourceType": "Bundle", "type": "batch", "entry": []}
    with pytest.raises(FhirError) as excinfo:
        client.transaction(batch)
    assert kind_of(excinfo) == "outcome"
    assert "entry 1 failed (400)" in str(excinfo.value)
    sent = responses.calls[0].request
    assert sent.headers["Content-Type"] == "application/fhir+json"
    assert json.loads(sent.body or b"") == batch


# -- sessions --------------------------------------------------------------------------------
@responses.activate
def test_the_clients_session_keeps_no_cookies() -> None:
    responses.get(
        f"{BASE}/Patient/p1",
        json={"resourceType": "Patient", "id": "p1"},
        headers={"Set-Cookie": "sticky=1; Path=/"},
    )
    fhir = FhirClient(BASE, TOKEN)
    fhir.read("Patient", "p1")
    assert len(fhir.session.cookies) == 0


def test_close_leaves_a_shared_session_open() -> None:
    shared = make_session()
    closed: list[bool] = []
    shared.close = lambda: closed.append(True)  # type: ignore[method-assign]
    with FhirClient(BASE, session=shared):
        pass
    assert closed == []
    own = FhirClient(BASE)
    own.session.close = lambda: closed.append(True)  # type: ignore[method-assign]
    own.close()
    assert closed == [True]


# -- run_parallel ----------------------------------------------------------------------------
def test_run_parallel_runs_tasks_at_the_same_time() -> None:
    def nap() -> str:
        time.sleep(0.2)
        return threading.current_thread().name

    started = time.monotonic()
    results = run_parallel({f"t{i}": nap for i in range(4)}, max_workers=4)
    elapsed = time.monotonic() - started
    assert elapsed < 0.7
    assert list(results) == ["t0", "t1", "t2", "t3"]
    assert len(set(results.values())) == 4  # four different threads


def test_run_parallel_reports_each_tasks_fhir_error() -> None:
    def fails() -> int:
        raise FhirError("timeout", "slow")

    results = run_parallel({"ok": lambda: 1, "bad": fails, "also": lambda: 3}, max_workers=2)
    assert results["ok"] == 1
    assert results["also"] == 3
    error = results["bad"]
    assert isinstance(error, FhirError)
    assert (error.kind, str(error)) == ("timeout", "slow")


def test_run_parallel_lets_bugs_propagate() -> None:
    def bug() -> int:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        run_parallel({"bug": bug, "ok": lambda: 1}, max_workers=2)


def test_run_parallel_limits() -> None:
    assert run_parallel({}, max_workers=4) == {}
    with pytest.raises(ValueError):
        run_parallel({"a": lambda: 1}, max_workers=0)
    assert run_parallel({"a": lambda: 1}, max_workers=1) == {"a": 1}
