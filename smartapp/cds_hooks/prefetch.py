"""Prefetch resolution with FHIR fallback (CDS Hooks 2.0 §Prefetch, §FHIR resource access;
standards-checklist.md, CDS Hooks ★ prefetch items; design.md Contract 2).

For each prefetch template of the service:

- key present with a resource: used as is. A single resource is one item; a Bundle gives its
  entries and its ``next`` links are followed on ``fhirServer``; an OperationOutcome, or a
  Bundle holding an error outcome, means the EHR's query failed: the key is fetched again from
  ``fhirServer`` when possible, else it is unavailable.
- key present as ``null``: the EHR says there is no data. Nothing is fetched.
- key absent: fetched from ``fhirServer`` with the bearer token; all such keys in parallel,
  each request with a timeout, following paging.

Whatever could not be had is listed in ``PatientData.unavailable`` as ``"<key>: <why>"`` in
plain words (it becomes the ``data-unavailable`` card); the access token never appears in any
message. When a later page of a search fails, the first page is kept and the key is listed
as incomplete: a partial list is flagged, never passed off as complete.

Only ``fhirServer`` is called, over HTTPS: plain ``http`` is accepted for loopback addresses
(127.0.0.1, localhost, ::1: a server on the same machine) and otherwise only when
``allow_http`` is set, for development.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests

from smartapp.cds_hooks.discovery import (
    LAB_KEYS,
    MEDICATION_REQUEST_KEYS,
    PrefetchError,
    expand,
    prefetch_templates,
)
from smartapp.fhir_client import FhirClient, FhirError, run_parallel
from smartapp.fhir_search import next_link, page_resources

log = logging.getLogger(__name__)

Resource = dict[str, Any]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
FAILURE_WORDS = {
    "timeout": "FHIR server timed out",
    "connection": "FHIR server could not be reached",
    "outcome": "FHIR server reported an error",
    "malformed": "FHIR server sent something that is not the FHIR JSON expected",
    "offsite": "a link pointed away from the FHIR server and was not followed",
    "truncated": "more pages of results than the page limit",
}
PREFETCH_FAILED = "the EHR's prefetch query failed"
PREFETCH_MALFORMED = "the EHR's prefetch was not usable FHIR"


@dataclass
class PatientData:
    """What ``gather`` obtained. ``resources``: unique resources from prefetch and the FHIR
    server; ``unavailable``: ``"<key>: <why>"`` for each key that failed in whole or in part;
    ``fetched``: keys whose data came, at least in part, from the FHIR server; ``usable``:
    False when neither medication requests nor labs could be had, or nothing at all (the
    endpoint answers 412)."""

    resources: list[Resource]
    unavailable: list[str]
    fetched: list[str]
    usable: bool


@dataclass
class _Key:
    """What is known about one prefetch key. ``failed``: no data at all could be had."""

    name: str
    resources: list[Resource] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    failed: bool = False
    fetched: bool = False
    # Why the EHR's prefetch could not be used; worth saying only if fetching failed too.
    note: str | None = None

    def line(self) -> str | None:
        parts = ([self.note] if self.note and self.failed else []) + self.problems
        return f"{self.name}: {'; '.join(parts)}" if parts else None

    def fail(self, why: str) -> None:
        self.failed = True
        self.problems.append(why)


def failure_words(error: FhirError) -> str:
    """A FHIR client error in plain words: its kind and HTTP status, never its URL or token."""
    status = f" (HTTP {error.status})" if error.status is not None else ""
    if error.kind == "auth":
        return f"FHIR server refused access{status}"
    if error.kind == "http":
        return f"FHIR server answered with an error{status}"
    return FAILURE_WORDS.get(error.kind, "FHIR query failed")


def server_problem(fhir_server: str | None, allow_http: bool = False) -> str | None:
    """Why ``fhir_server`` must not be called, or None when it may be."""
    if not fhir_server:
        return "no FHIR server was given to fetch it from"
    try:
        parts = urlsplit(fhir_server)
        host, _ = parts.hostname, parts.port
    except ValueError:
        return "the FHIR server address is not a valid URL"
    if parts.scheme not in ("https", "http") or not host:
        return "the FHIR server address is not an absolute https URL"
    if parts.username or parts.password or parts.query or parts.fragment:
        return "the FHIR server address is not a plain base URL"
    if parts.scheme == "http" and not allow_http and host not in LOOPBACK_HOSTS:
        return "the FHIR server is not on HTTPS"
    return None


def _pages(client: FhirClient, bundle: Resource, key: _Key) -> _Key:
    """The resources of ``bundle`` and of its ``next`` pages. ``key`` holds the first page
    already; if a later page fails, that is kept and the key is marked incomplete."""
    try:
        key.resources = client.follow(bundle)
        key.fetched = True
    except FhirError as error:
        key.problems.append(f"more pages could not be fetched: {failure_words(error)}")
    return key


def _fetch(client: FhirClient, query: str, key: _Key) -> _Key:
    """Run one prefetch query on the FHIR server: a read gives one resource, a search its
    Bundle's resources and those of every next page."""
    try:
        document = client.get(query)
        if isinstance(document, dict) and document.get("resourceType") == "Bundle":
            key.resources = page_resources(document, key.name)
            key.fetched = True
            return _pages(client, document, key) if next_link(document, key.name) else key
    except FhirError as error:
        key.fail(failure_words(error))
        return key
    if not isinstance(document, dict) or not isinstance(document.get("resourceType"), str):
        key.fail(FAILURE_WORDS["malformed"])
    elif document["resourceType"] == "OperationOutcome":
        key.fail(FAILURE_WORDS["outcome"])
    else:
        key.resources, key.fetched = [document], True
    return key


def _from_prefetch(name: str, value: Any) -> tuple[_Key, bool, bool]:
    """(the key's state from its prefetched value, whether pages remain, whether to fetch)."""
    key = _Key(name)
    if value is None:
        return key, False, False
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        key.note = PREFETCH_MALFORMED
        return key, False, True
    if value["resourceType"] == "OperationOutcome":
        key.note = PREFETCH_FAILED
        return key, False, True
    if value["resourceType"] != "Bundle":
        key.resources = [value]
        return key, False, False
    try:
        key.resources = page_resources(value, name)
        more = next_link(value, name) is not None
    except FhirError as error:
        key.note = PREFETCH_FAILED if error.kind == "outcome" else PREFETCH_MALFORMED
        return key, False, True
    return key, more, False


@dataclass
class _Plan:
    keys: dict[str, _Key]
    pages: dict[str, Resource]  # key -> prefetched Bundle whose next pages remain
    to_fetch: list[str]  # keys absent, or whose prefetch failed


def _plan(templates: Mapping[str, str], prefetch: Mapping[str, Any]) -> _Plan:
    plan = _Plan({}, {}, [])
    for name in templates:
        if name not in prefetch:
            plan.keys[name] = _Key(name)
            plan.to_fetch.append(name)
            continue
        key, more, fetch = _from_prefetch(name, prefetch[name])
        plan.keys[name] = key
        if more:
            plan.pages[name] = prefetch[name]
        if fetch:
            plan.to_fetch.append(name)
    return plan


def _cannot_call(plan: _Plan, why: str) -> None:
    for name in plan.to_fetch:
        plan.keys[name].fail(why)
    for name in plan.pages:
        plan.keys[name].problems.append(f"more pages not retrievable: {why}")


def _tasks(
    client: FhirClient,
    plan: _Plan,
    templates: Mapping[str, str],
    context: Mapping[str, Any],
    user_id: str | None,
) -> dict[str, Callable[[], _Key]]:
    tasks: dict[str, Callable[[], _Key]] = {}
    for name, bundle in plan.pages.items():
        tasks[name] = partial(_pages, client, bundle, plan.keys[name])
    for name in plan.to_fetch:
        try:
            query = expand(templates[name], context, user_id)
        except PrefetchError as error:
            plan.keys[name].fail(f"the query could not be built ({error})")
            continue
        tasks[name] = partial(_fetch, client, query, plan.keys[name])
    return tasks


def _unique(resources: list[Resource]) -> list[Resource]:
    """One copy of each Type/id (``_include``d Medications repeat across keys and pages)."""
    seen: set[tuple[str, str]] = set()
    out: list[Resource] = []
    for resource in resources:
        rtype, rid = resource.get("resourceType"), resource.get("id")
        if isinstance(rtype, str) and isinstance(rid, str) and rid:
            if (rtype, rid) in seen:
                continue
            seen.add((rtype, rid))
        out.append(resource)
    return out


def _result(keys: Mapping[str, _Key]) -> PatientData:
    unavailable = [line for key in keys.values() if (line := key.line())]
    failed = {key.name for key in keys.values() if key.failed}
    core_lost = set(MEDICATION_REQUEST_KEYS) <= failed and set(LAB_KEYS) <= failed
    nothing = bool(keys) and failed == set(keys)
    for line in unavailable:
        log.info("patient data unavailable: %s", line)
    return PatientData(
        resources=_unique([r for key in keys.values() for r in key.resources]),
        unavailable=unavailable,
        fetched=[key.name for key in keys.values() if key.fetched],
        usable=not (core_lost or nothing),
    )


def gather(
    service_id: str,
    context: Mapping[str, Any],
    prefetch: Mapping[str, Any],
    fhir_server: str | None,
    access_token: str | None,
    *,
    user_id: str | None,
    timeout: float,
    max_pages: int,
    max_workers: int,
    session: requests.Session | None = None,
    allow_http: bool = False,
) -> PatientData:
    """The patient's data for one hook call: the prefetch where given, ``fhir_server`` (with
    ``access_token`` as Bearer) for the rest, in parallel on up to ``max_workers`` threads.

    ``timeout`` applies to each request; ``max_pages`` bounds each search. ``allow_http``:
    call a plain-http ``fhir_server`` off the loopback interface (development only). Keys the
    EHR sent that the service did not ask for are ignored. Raises ``KeyError`` for an unknown
    ``service_id``."""
    templates = prefetch_templates(service_id)
    if templates is None:
        raise KeyError(service_id)
    plan = _plan(templates, prefetch)
    if not plan.pages and not plan.to_fetch:
        return _result(plan.keys)
    why = server_problem(fhir_server, allow_http)
    if why is not None or fhir_server is None:
        _cannot_call(plan, why or "no FHIR server")
        return _result(plan.keys)
    with FhirClient(
        fhir_server, access_token, timeout=timeout, max_pages=max_pages, session=session
    ) as client:
        tasks = _tasks(client, plan, templates, context, user_id)
        if tasks:
            for name, outcome in run_parallel(tasks, max(1, max_workers)).items():
                if isinstance(outcome, FhirError):  # tasks catch their own; kept for safety
                    plan.keys[name].fail(failure_words(outcome))
    return _result(plan.keys)
