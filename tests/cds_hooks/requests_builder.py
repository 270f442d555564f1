"""Hook requests built from the synthetic patients (tests/patients, smartapp.synthetic).

A scenario's Bundle is split into the prefetch keys of ``discovery.PREFETCH`` the way a FHIR
server would answer each template: the Patient under ``patient``; MedicationRequests (with the
Medications they reference) under ``medicationRequests``, and so on; Observations under the
``labs*`` key whose code list holds one of their codings, rating scales (category survey)
under ``assessments``. Draft MedicationRequests go into ``context.draftOrders`` instead.
A failed query in the scenario (an OperationOutcome) becomes the value of the ``labs`` key.

``FakeFhir`` answers the same templates over HTTP for the ``responses`` mock, so the
"prefetch missing" path fetches exactly what the "prefetch full" path was given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import requests
import responses
from flask import Flask

from smartapp.app import create_app
from smartapp.cds_hooks import discovery
from smartapp.synthetic import scenarios

Resource = dict[str, Any]
PrefetchMode = Literal["full", "missing", "null"]

FHIR_BASE = "https://ehr.example.org/fhir"
USER = "Practitioner/prescriber-1"
TOKEN = "ehr-access-token-7c1e-never-log-me"  # noqa: S105 - test data
SURVEY = "survey"
AS_OF = date(2026, 3, 1)

_MEDICATION_KEYS = {
    "MedicationRequest": "medicationRequests",
    "MedicationDispense": "medicationDispenses",
    "MedicationAdministration": "medicationAdministrations",
}
_SIMPLE_KEYS = {"DiagnosticReport": "labReports", "Condition": "conditions"}


@dataclass
class Patient:
    """One synthetic patient: its id, its resources split by prefetch key, its drafts."""

    name: str
    patient_id: str
    split: dict[str, list[Resource]]
    drafts: list[Resource]
    failed: list[Resource] = field(default_factory=list)


def _codes(resource: Resource) -> set[str]:
    code = resource.get("code")
    codings = code.get("coding", []) if isinstance(code, dict) else []
    return {f"{c.get('system')}|{c.get('code')}" for c in codings if isinstance(c, dict)}


def _is_survey(resource: Resource) -> bool:
    for category in resource.get("category", []):
        for coding in category.get("coding", []):
            if coding.get("code") == SURVEY:
                return True
    return False


def _lab_key(resource: Resource) -> str:
    codes = _codes(resource)
    for key in discovery.LAB_KEYS:
        template = discovery.PREFETCH[key]
        listed = dict(parse_qsl(urlsplit(template).query))["code"].split(",")
        if codes.intersection(listed):
            return key
    return "assessments" if _is_survey(resource) else discovery.LAB_KEYS[0]


def _medication_ref(resource: Resource) -> str | None:
    ref = resource.get("medicationReference")
    return ref.get("reference") if isinstance(ref, dict) else None


def split_resources(resources: Iterable[Resource]) -> dict[str, list[Resource]]:
    """Resources by prefetch key (every key present, possibly empty)."""
    items = list(resources)
    medications = {f"Medication/{r['id']}": r for r in items if r["resourceType"] == "Medication"}
    split: dict[str, list[Resource]] = {key: [] for key in discovery.PREFETCH}
    for resource in items:
        rtype = resource["resourceType"]
        if rtype == "Patient":
            split["patient"].append(resource)
        elif rtype in _MEDICATION_KEYS:
            key = _MEDICATION_KEYS[rtype]
            split[key].append(resource)
            included = medications.get(_medication_ref(resource) or "")
            if included is not None and included not in split[key]:
                split[key].append(included)
        elif rtype in _SIMPLE_KEYS:
            split[_SIMPLE_KEYS[rtype]].append(resource)
        elif rtype == "Observation":
            split[_lab_key(resource)].append(resource)
    return split


def patient(name: str) -> Patient:
    bundle = scenarios.get(name).bundle()
    resources = [e["resource"] for e in bundle.get("entry", [])]
    drafts = [
        r for r in resources if r["resourceType"] == "MedicationRequest" and r["status"] == "draft"
    ]
    failed = [r for r in resources if r["resourceType"] == "OperationOutcome"]
    rest = [r for r in resources if r not in drafts and r not in failed]
    pid = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    return Patient(name, pid, split_resources(rest), drafts, failed)


def searchset(resources: Iterable[Resource], links: list[Resource] | None = None) -> Resource:
    items = list(resources)
    bundle: Resource = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(items),
        "entry": [{"fullUrl": f"{FHIR_BASE}/{r['resourceType']}/{r['id']}", "resource": r,
                   "search": {"mode": "match"}} for r in items],
    }  # fmt: skip
    if links:
        bundle["link"] = links
    return bundle


def prefetch_value(p: Patient, key: str) -> Resource | None:
    if key == "patient":
        return p.split["patient"][0] if p.split["patient"] else None
    if key == discovery.LAB_KEYS[0] and p.failed:
        return p.failed[0]
    return searchset(p.split[key])


def prefetch(
    p: Patient, mode: PrefetchMode = "full", *, omit: Iterable[str] = (), null: Iterable[str] = ()
) -> dict[str, Resource | None] | None:
    """The prefetch member: every key (``full``), none (``missing``), every key null
    (``null``); ``omit`` drops keys and ``null`` sets keys to null in a ``full`` prefetch."""
    if mode == "missing":
        return None
    if mode == "null":
        return dict.fromkeys(discovery.PREFETCH)
    omitted, nulled = set(omit), set(null)
    return {
        key: None if key in nulled else prefetch_value(p, key)
        for key in discovery.PREFETCH
        if key not in omitted
    }


def draft_orders(drafts: Iterable[Resource]) -> Resource:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in drafts],
    }


def hook_body(
    name: str,
    hook: str = "order-sign",
    mode: PrefetchMode = "full",
    *,
    fhir_server: str | None = FHIR_BASE,
    token: str | None = TOKEN,
    selections: list[str] | None = None,
    drafts: list[Resource] | None = None,
    omit: Iterable[str] = (),
    null: Iterable[str] = (),
) -> dict[str, Any]:
    """A complete hook request body for scenario ``name``."""
    p = patient(name)
    context: dict[str, Any] = {"userId": USER, "patientId": p.patient_id}
    orders = p.drafts if drafts is None else drafts
    if hook != "patient-view":
        context["draftOrders"] = draft_orders(orders)
    if hook == "order-select":
        context["selections"] = (
            selections
            if selections is not None
            else [f"MedicationRequest/{r['id']}" for r in orders]
        )
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": f"instance-{name}-{hook}",
        "context": context,
    }
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
    if token is not None:
        body["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "clozapine-cds",
        }
    pre = prefetch(p, mode, omit=omit, null=null)
    if pre is not None:
        body["prefetch"] = pre
    return body


def _normalised(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    parts = urlsplit(url)
    return parts.path.rstrip("/"), tuple(sorted(parse_qsl(parts.query)))


Failure = Literal["401", "500", "timeout", "malformed", "outcome"]


@dataclass
class FakeFhir:
    """A FHIR server for ``responses`` that answers the discovery templates for one patient:
    ``page_size`` pages searchsets through ``next`` links; ``failures`` makes a key fail."""

    p: Patient
    base: str = FHIR_BASE
    page_size: int | None = None
    failures: Mapping[str, Failure] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    tokens: list[str | None] = field(default_factory=list)

    def queries(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], str]:
        context = {"patientId": self.p.patient_id, "userId": USER}
        return {
            _normalised(f"{self.base}/{discovery.expand(t, context, USER)}"): key
            for key, t in discovery.PREFETCH.items()
        }

    def install(self, mock: responses.RequestsMock) -> None:
        pattern = re.compile(re.escape(self.base) + r"/.*")
        mock.add_callback(responses.GET, pattern, callback=self._answer)

    def _answer(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        url = str(request.url)
        self.calls.append(url)
        self.tokens.append(request.headers.get("Authorization"))
        path, query = _normalised(url)
        if path.endswith("/_page"):
            key, number = dict(query)["key"], int(dict(query)["n"])
            return self._page(key, number)
        key = self.queries().get((path, query))
        if key is None:
            return 404, {}, json.dumps(_outcome("not-found", "unknown query"))
        failure = self.failures.get(key)
        if failure is not None:
            return _failure(failure)
        if key == "patient":
            return 200, {}, json.dumps(self.p.split["patient"][0])
        return self._page(key, 0)

    def _page(self, key: str, number: int) -> tuple[int, dict[str, str], str]:
        items = self.p.split[key]
        size = self.page_size or max(1, len(items))
        chunk = items[number * size : (number + 1) * size]
        links = [{"relation": "self", "url": f"{self.base}/_page?key={key}&n={number}"}]
        if (number + 1) * size < len(items):
            links.append({"relation": "next", "url": f"{self.base}/_page?key={key}&n={number + 1}"})
        return 200, {}, json.dumps(searchset(chunk, links))


def _outcome(code: str, text: str) -> Resource:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }


def _failure(kind: Failure) -> tuple[int, dict[str, str], str]:
    if kind == "401":
        return 401, {}, json.dumps(_outcome("login", "token expired"))
    if kind == "500":
        return 500, {}, json.dumps(_outcome("exception", "database down"))
    if kind == "malformed":
        return 200, {}, "<html>not json</html>"
    if kind == "outcome":
        return 200, {}, json.dumps(_outcome("too-costly", "query too broad"))
    raise requests.exceptions.ReadTimeout("simulated timeout")


def make_app(tmp_path: Path, **config: Any) -> Flask:
    """The app on a fresh SQLite file, evaluating as of the scenarios' date; JWT checks off
    unless ``CDS_VERIFY_JWT`` is given."""
    settings: dict[str, Any] = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cds.db'}",
        "CDS_VERIFY_JWT": False,
        "APP_LAUNCH_URL": "https://app.example.org/launch",
    }
    settings.update(config)
    app = create_app(settings)
    app.extensions["smartapp.today"] = lambda: AS_OF
    return app
