"""Assemble one patient's ``PatientRecord`` from FHIR R4 JSON.

Input is a Bundle (collection, searchset, batch, transaction, or their responses; Bundles
nested in entries are flattened) or a list of resources (NDJSON). A search that failed shows up
as an OperationOutcome (a searchset entry with ``search.mode`` ``outcome``, or an error-level
OperationOutcome entry): it is recorded in ``PatientRecord.unavailable``, never skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from fhir_mappings import json_text
from fhir_mappings.conditions import map_condition_into
from fhir_mappings.mapped import Mapped
from fhir_mappings.medications import map_medication_into
from fhir_mappings.observations import map_diagnostic_report_into, map_observation_into
from smartapp.domain import ClinicianStatement, PatientRecord

Resource = dict[str, Any]

BUNDLE_TYPES = frozenset(
    {"collection", "searchset", "batch", "transaction", "batch-response",
     "transaction-response", "document", "message", "history"}
)  # fmt: skip
MEDICATION_TYPES = frozenset(
    {"MedicationRequest", "MedicationDispense", "MedicationAdministration"}
)
PATIENT_FIELDS = ("subject", "patient")
FAILED_SEVERITIES = frozenset({"error", "fatal"})


class InputError(ValueError):
    """The input cannot be evaluated; the message is one line, fit for a CLI or an HTTP 4xx."""


@dataclass
class _Collected:
    resources: list[Resource] = field(default_factory=list)
    by_ref: dict[str, Resource] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    #: by_ref keys other than a resource's own ``Type/id`` (its fullUrl) -> that ``Type/id``
    aliases: dict[str, str] = field(default_factory=dict)

    def add_key(self, key: str, resource: Resource, own: str) -> None:
        self.by_ref[key] = resource
        if key != own:
            self.aliases[key] = own


def resource_ref(resource: Resource, full_url: str | None = None) -> str:
    """``Type/id``, or the entry's fullUrl for a resource without an id."""
    rtype, rid = resource.get("resourceType"), resource.get("id")
    if isinstance(rtype, str) and isinstance(rid, str) and rid:
        return f"{rtype}/{rid}"
    return full_url or f"{rtype}/(no id)"


def _outcome_text(outcome: Resource) -> str:
    issues = outcome.get("issue")
    if not isinstance(issues, list):
        return "query failed"
    texts = []
    for issue in issues:
        if isinstance(issue, dict):
            details = issue.get("details")
            text = issue.get("diagnostics") or (
                details.get("text") if isinstance(details, dict) else None
            )
            texts.append(str(text or issue.get("code") or "error"))
    return "; ".join(texts) or "query failed"


def _is_failure(outcome: Resource, search_mode: str | None) -> bool:
    if search_mode == "outcome":
        return True
    issues = outcome.get("issue")
    return isinstance(issues, list) and any(
        isinstance(i, dict) and i.get("severity") in FAILED_SEVERITIES for i in issues
    )


def _walk(bundle: Resource, out: _Collected, depth: int = 0) -> None:
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise InputError("Bundle.entry is not a list")
    for entry in entries:
        if not isinstance(entry, dict):
            raise InputError("a Bundle entry is not an object")
        resource = entry.get("resource")
        response = entry.get("response")
        if resource is None and isinstance(response, dict):
            resource = response.get("outcome")
        if not isinstance(resource, dict):
            continue
        search = entry.get("search")
        mode = search.get("mode") if isinstance(search, dict) else None
        _collect(resource, out, entry.get("fullUrl"), mode, depth)


def _collect(
    resource: Resource, out: _Collected, full_url: Any, mode: str | None, depth: int
) -> None:
    rtype = resource.get("resourceType")
    if rtype == "Bundle" and depth < 3:
        _walk(resource, out, depth + 1)
        return
    if rtype == "OperationOutcome":
        if _is_failure(resource, mode):
            out.failures.append(_outcome_text(resource))
        return
    if not resource.get("id") and isinstance(full_url, str) and full_url.startswith("urn:uuid:"):
        resource = {**resource, "id": full_url.removeprefix("urn:uuid:")}
    own = resource_ref(resource)
    url = full_url if isinstance(full_url, str) else None
    ref = resource_ref(resource, url) if url else own
    if ref in out.by_ref:
        return
    out.add_key(ref, resource, own)
    if url is not None and url not in out.by_ref:
        out.add_key(url, resource, own)
    out.resources.append(resource)


def collect(data: Any) -> _Collected:
    """Flatten a Bundle (or a list of resources) into unique resources and failed queries."""
    out = _Collected()
    if isinstance(data, list):
        for item in data:
            if not isinstance(item, dict) or not isinstance(item.get("resourceType"), str):
                raise InputError("an NDJSON line is not a FHIR resource")
            _collect(item, out, None, None, 0)
        return out
    if not isinstance(data, dict) or "resourceType" not in data:
        raise InputError("input is not a FHIR resource")
    if data.get("resourceType") != "Bundle":
        raise InputError(f"input is a {data.get('resourceType')}, not a Bundle")
    if data.get("type") not in BUNDLE_TYPES:
        raise InputError(f"unsupported Bundle type {data.get('type')!r}")
    _walk(data, out)
    return out


def _patient_refs(resource: Resource, aliases: dict[str, str]) -> Iterator[str]:
    if resource.get("resourceType") == "Patient":
        yield resource_ref(resource)
        return
    for name in PATIENT_FIELDS:
        value = resource.get(name)
        ref = value.get("reference") if isinstance(value, dict) else None
        if isinstance(ref, str):
            ref = aliases.get(ref, ref)
            if ref.startswith("Patient/") or "/Patient/" in ref:
                yield "Patient/" + ref.rsplit("/", 1)[-1]


def single_patient(resources: list[Resource], aliases: dict[str, str]) -> str | None:
    """The one patient the data is about; two or more is an input error. ``aliases`` map
    fullUrls to ``Type/id`` (``collect`` records them)."""
    patients = sorted({p for r in resources for p in _patient_refs(r, aliases)})
    if len(patients) > 1:
        shown = ", ".join(patients[:3])
        raise InputError(f"input holds data for {len(patients)} patients ({shown}); give one")
    return patients[0] if patients else None


def _reports_by_result(
    resources: Iterable[Resource], by_ref: dict[str, Resource]
) -> dict[int, Resource]:
    """Observation (by object id) -> the DiagnosticReport listing it in ``result``: results often
    carry no time of their own and take the report's."""
    reports: dict[int, Resource] = {}
    for report in resources:
        if report.get("resourceType") != "DiagnosticReport":
            continue
        results = report.get("result")
        for item in results if isinstance(results, list) else ():
            ref = item.get("reference") if isinstance(item, dict) else None
            target = by_ref.get(ref) if isinstance(ref, str) else None
            if target is not None:
                reports.setdefault(id(target), report)
    return reports


def map_resources(resources: Iterable[Resource], by_ref: dict[str, Resource]) -> Mapped:
    """Map every resource of a kind we read; others are ignored."""
    resources = list(resources)
    reports = _reports_by_result(resources, by_ref)
    mapped = Mapped()
    for resource in resources:
        rtype = resource.get("resourceType")
        if rtype == "Observation":
            map_observation_into(resource, mapped, report=reports.get(id(resource)))
        elif rtype in MEDICATION_TYPES:
            map_medication_into(resource, by_ref.get, mapped)
        elif rtype == "DiagnosticReport":
            map_diagnostic_report_into(resource, mapped)
        elif rtype == "Condition":
            map_condition_into(resource, mapped)
    return mapped


def build_record(
    data: Any,
    statements: Iterable[ClinicianStatement] = (),
    unavailable: Iterable[str] = (),
) -> PatientRecord:
    """FHIR JSON (a Bundle or a list of resources) -> ``PatientRecord``.

    Raises ``InputError`` for input that is not FHIR, holds more than one patient, or holds
    nothing about any patient."""
    collected = collect(data)
    patient = single_patient(collected.resources, collected.aliases)
    clinical = [r for r in collected.resources if r.get("resourceType") != "Patient"]
    if patient is None and not clinical and not collected.failures:
        raise InputError("input holds no patient data (empty Bundle)")
    mapped = map_resources(clinical, collected.by_ref)
    birth = _birth_date(collected.by_ref.get(patient or ""))
    return PatientRecord(
        patient=patient,
        medications=tuple(mapped.medications),
        labs=tuple(mapped.labs),
        smoking=tuple(mapped.smoking),
        conditions=tuple(mapped.conditions),
        ratings=tuple(mapped.ratings),
        statements=tuple(statements),
        data_issues=tuple(mapped.issues),
        unavailable=(*unavailable, *collected.failures),
        unmapped=tuple(dict.fromkeys(mapped.unmapped)),
        birth_date=birth,
    )


def _birth_date(patient: Resource | None) -> date | None:
    value = patient.get("birthDate") if patient else None
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _ndjson(path: Path, lines: list[str]) -> list[Any]:
    items = []
    for number, line in enumerate(lines, start=1):
        try:
            items.append(json_text.loads(line))
        except json.JSONDecodeError:
            raise InputError(f"{path}: not JSON or NDJSON (record {number})") from None
    return items


def load_json_input(path: Path) -> Any:
    """Read a Bundle (JSON) or NDJSON file. Raises ``InputError`` with a one-line message."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    stripped = text.strip()
    if not stripped:
        raise InputError(f"{path}: file is empty")
    try:
        return json_text.loads(stripped)
    except json.JSONDecodeError as first:
        lines = [line for line in stripped.splitlines() if line.strip()]
        if len(lines) > 1 and stripped.startswith("{"):
            return _ndjson(path, lines)
        raise InputError(f"{path}: not JSON (line {first.lineno}, column {first.colno})") from None
