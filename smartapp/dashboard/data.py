"""The launched patient's data, fetched for the dashboard (issue 4 item 4; design.md Contract 3).

The queries are the CDS Hooks prefetch templates (``cds_hooks.discovery.PREFETCH``) expanded for
the patient in context, so the app and the cards read exactly the same data. They run in
parallel (``run_parallel``), each following its ``next`` pages.

- A query whose resource type the EHR did not grant read access to is not sent. It is listed in
  ``refused`` (the page says plainly what cannot be shown) and also in ``unavailable``, so the
  evaluation carries a ``data-unavailable`` finding: data we may not read is never read as
  "no data" (rulebook safety principle).
- A query that fails (timeout, server error, an OperationOutcome, more pages than allowed) is
  listed in ``unavailable`` as ``"<what>: <why>"``; what else was fetched is still used.
- HTTP 401: the caller's ``refresh`` gives a client with a refreshed token and the refused
  queries are tried once more; a second 401 raises ``AuthorizationExpired``.
- HTTP 403 although the scope was granted: ``AccessDenied`` naming the resource type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from smartapp.cds_hooks.discovery import PREFETCH, PrefetchError, expand
from smartapp.cds_hooks.prefetch import failure_words
from smartapp.fhir_client import FhirClient, FhirError, run_parallel

Resource = dict[str, Any]
RESOURCE_TYPE = re.compile(r"^([A-Z][A-Za-z]+)[/?]")
LABELS = {
    "patient": "patient record",
    "medicationRequests": "medication orders",
    "medicationDispenses": "dispensing records",
    "medicationAdministrations": "medication administrations",
    "labReports": "lab reports",
    "assessments": "rating scales",
    "conditions": "diagnoses",
}


class AuthorizationExpired(Exception):
    """The FHIR server refused the access token (401), also after a refresh."""


class AccessDenied(Exception):
    """The FHIR server answered 403 for a resource type whose scope was granted."""

    def __init__(self, resource_type: str) -> None:
        super().__init__(f"the FHIR server refused access to {resource_type} (HTTP 403)")
        self.resource_type = resource_type


class NoPatient(Exception):
    """The launch names no patient (or an id that is not a FHIR id)."""


@dataclass(frozen=True)
class Query:
    key: str
    resource_type: str
    url: str

    @property
    def label(self) -> str:
        if self.key.startswith("labs"):
            return "lab results" + (f" (part {self.key[4:]})" if self.key[4:] else "")
        return LABELS.get(self.key, self.key)


@dataclass
class PatientData:
    resources: list[Resource] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # resource types not granted
    patient: Resource | None = None


def queries(patient_id: str | None, templates: Mapping[str, str] = PREFETCH) -> list[Query]:
    """The prefetch templates expanded for ``patient_id``."""
    if not patient_id:
        raise NoPatient("the launch has no patient in context")
    out = []
    for key, template in templates.items():
        match = RESOURCE_TYPE.match(template)
        if match is None:
            raise ValueError(f"prefetch template {key} names no resource type")
        try:
            url = expand(template, {"patientId": patient_id}, None)
        except PrefetchError as error:
            raise NoPatient(f"the patient in context is not usable ({error})") from None
        out.append(Query(key, match.group(1), url))
    return out


def run_query(client: FhirClient, query: Query) -> list[Resource]:
    """One query: a read gives its resource, a search every page's resources."""
    document = client.get(query.url)
    if not isinstance(document, dict) or not isinstance(document.get("resourceType"), str):
        raise FhirError("malformed", f"{query.key}: not a FHIR resource")
    if document["resourceType"] == "Bundle":
        return client.follow(document)
    if document["resourceType"] == "OperationOutcome":
        raise FhirError("outcome", f"{query.key}: the server reported an error")
    return [document]


def _run_all(
    client: FhirClient, todo: list[Query], workers: int
) -> dict[str, list[Resource] | FhirError]:
    tasks = {q.key: partial(run_query, client, q) for q in todo}
    return run_parallel(tasks, max(1, workers)) if tasks else {}


def _unauthorised(results: Mapping[str, list[Resource] | FhirError]) -> list[str]:
    return [k for k, r in results.items() if isinstance(r, FhirError) and r.status == 401]


def fetch_patient_data(
    client: FhirClient,
    patient_id: str | None,
    can_read: Callable[[str], bool],
    *,
    workers: int,
    refresh: Callable[[], FhirClient] | None = None,
) -> PatientData:
    """Everything the rules read about the patient in context (see the module docstring)."""
    all_queries = queries(patient_id)
    data = PatientData()
    allowed: list[Query] = []
    for q in all_queries:
        if can_read(q.resource_type):
            allowed.append(q)
            continue
        if q.resource_type not in data.refused:
            data.refused.append(q.resource_type)
        data.unavailable.append(f"{q.label}: not shown, no read access to {q.resource_type}")
    results = _run_all(client, allowed, workers)
    retry = _unauthorised(results)
    if retry:
        if refresh is None:
            raise AuthorizationExpired("the FHIR server refused the access token")
        client = refresh()
        results.update(_run_all(client, [q for q in allowed if q.key in retry], workers))
        if _unauthorised(results):
            raise AuthorizationExpired("the FHIR server refused the refreshed access token")
    for q in allowed:
        outcome = results[q.key]
        if isinstance(outcome, FhirError):
            if outcome.status == 403:
                raise AccessDenied(q.resource_type)
            data.unavailable.append(f"{q.label}: {failure_words(outcome)}")
            continue
        data.resources.extend(outcome)
        if q.key == "patient":
            data.patient = next((r for r in outcome if r.get("resourceType") == "Patient"), None)
    return data
