"""FHIR R4 search over the sandbox store (FHIR R4 §3.1.1 search; issue 5 item 1): the
parameters the app and the CDS service send (``cds_hooks.discovery.PREFETCH``) and a few more.

- ``patient`` / ``subject``: the patient compartment (``Patient/x``, ``x`` or an absolute URL).
- ``_id``; tokens ``code``, ``category``, ``status``... as ``system|code``, ``|code``,
  ``system|`` or ``code``; a comma list is OR, a repeated parameter is AND.
- dates (``date`` of Observation and DiagnosticReport, ``authoredon``, ``whenhandedover``,
  ``effective-time``, ``onset-date``, ``recorded-date``) with prefixes eq, ne, gt, lt, ge, le,
  sa, eb, each value taken as the range its precision implies (2026-02 is all of February).
- ``_include`` of a reference (``MedicationRequest:medication``), ``_count``, ``_offset``.

A parameter, modifier or prefix the sandbox does not know is refused (HTTP 400), never
ignored: an ignored filter would hand back data that was not asked for, and a client could
read it as the answer to its question.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from smartapp.sandbox.store import PATIENT_REFERENCE, FhirStore, Resource

COMPARTMENT_TYPES = frozenset({
    "Patient", "Observation", "Condition", "DiagnosticReport", "MedicationRequest",
    "MedicationDispense", "MedicationAdministration",
})  # fmt: skip
SEARCHABLE_TYPES = COMPARTMENT_TYPES | {"Medication"}
MEDICATION = ("medicationCodeableConcept",)
TOKENS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "Observation": {"code": ("code",), "category": ("category",), "status": ("status",)},
    "Condition": {
        "code": ("code",), "category": ("category",), "clinical-status": ("clinicalStatus",),
    },
    "DiagnosticReport": {"code": ("code",), "category": ("category",), "status": ("status",)},
    "MedicationRequest": {
        "code": MEDICATION, "category": ("category",), "status": ("status",),
        "intent": ("intent",),
    },
    "MedicationDispense": {"code": MEDICATION, "status": ("status",)},
    "MedicationAdministration": {"code": MEDICATION, "status": ("status",)},
    "Medication": {"code": ("code",)},
}  # fmt: skip
DATES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "Observation": {"date": ("effectiveDateTime", "effectivePeriod", "effectiveInstant")},
    "DiagnosticReport": {"date": ("effectiveDateTime", "effectivePeriod")},
    "MedicationRequest": {"authoredon": ("authoredOn",)},
    "MedicationDispense": {"whenhandedover": ("whenHandedOver",)},
    "MedicationAdministration": {"effective-time": ("effectiveDateTime", "effectivePeriod")},
    "Condition": {
        "onset-date": ("onsetDateTime", "onsetPeriod"),
        "recorded-date": ("recordedDate",),
    },
}
INCLUDES: Mapping[str, str] = {
    "MedicationRequest:medication": "medicationReference",
    "MedicationDispense:medication": "medicationReference",
    "MedicationAdministration:medication": "medicationReference",
    **{
        f"{t}:{p}": "subject"
        for t in COMPARTMENT_TYPES - {"Patient"}
        for p in ("patient", "subject")
    },
}
REFERENCES = ("patient", "subject")
CONTROL = frozenset({"_count", "_offset", "_include", "_format"})
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})
PREFIXES = frozenset({"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"})
_DATE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
Range = tuple[datetime, datetime]  # half-open [start, end)
Test = Callable[[Resource], bool]


class SearchError(ValueError):
    """The search cannot be answered as asked (HTTP 400); the message says why."""


@dataclass(frozen=True)
class SearchRequest:
    resource_type: str
    filters: tuple[tuple[str, str], ...]
    includes: tuple[str, ...]
    count: int
    offset: int


def parse(
    resource_type: str, pairs: Iterable[tuple[str, str]], *, default_count: int, max_count: int
) -> SearchRequest:
    """Check every parameter of the query string and split filters from controls."""
    if resource_type not in SEARCHABLE_TYPES:
        raise SearchError(f"searching {resource_type} is not supported by the sandbox")
    filters, includes, count, offset = [], [], default_count, 0
    for name, value in pairs:
        if name == "_count":
            count = min(_natural(name, value), max_count)
        elif name == "_offset":
            offset = _natural(name, value)
        elif name == "_include":
            includes.append(_include(resource_type, value))
        elif name == "_format":
            if value not in JSON_FORMATS:
                raise SearchError("the sandbox answers in JSON only")
        else:
            _known(resource_type, name)
            filters.append((name, value))
    return SearchRequest(resource_type, tuple(filters), tuple(includes), count, offset)


def _natural(name: str, value: str) -> int:
    if not value.isdigit():
        raise SearchError(f"{name} must be a whole number, got {value[:20]!r}")
    return int(value)


def _include(resource_type: str, value: str) -> str:
    parts = value.split(":")
    key = ":".join(parts[:2])
    target_ok = len(parts) == 2 or (len(parts) == 3 and parts[2] in SEARCHABLE_TYPES)
    if not key.startswith(f"{resource_type}:") or key not in INCLUDES or not target_ok:
        raise SearchError(f"_include={value[:60]} is not supported for {resource_type}")
    return key


def _known(resource_type: str, name: str) -> None:
    if ":" in name:
        raise SearchError(f"search modifiers are not supported ({name[:60]})")
    known = {"_id", *TOKENS.get(resource_type, {}), *DATES.get(resource_type, {})}
    if resource_type in COMPARTMENT_TYPES - {"Patient"}:
        known.update(REFERENCES)
    if name not in known:
        raise SearchError(f"the search parameter {name[:60]} is not supported for {resource_type}")


def matches(store: FhirStore, request: SearchRequest, patient_id: str | None) -> list[Resource]:
    """The resources that meet every filter, in store order; only ``patient_id``'s
    compartment for compartment types (None: every patient, for trusted callers only)."""
    rtype = request.resource_type
    if rtype in COMPARTMENT_TYPES and patient_id is not None:
        candidates = store.in_compartment(patient_id, rtype)
    else:
        candidates = store.of_type(rtype)
    tests = [_test(store, rtype, name, value) for name, value in request.filters]
    return [r for r in candidates if all(test(r) for test in tests)]


def included(
    store: FhirStore, page: Sequence[Resource], includes: Sequence[str], patient_id: str | None
) -> list[Resource]:
    """The resources that ``page`` references through ``includes``, each once, never one from
    another patient's compartment."""
    out: dict[tuple[str, str], Resource] = {}
    for resource in page:
        for key in includes:
            if not key.startswith(f"{resource['resourceType']}:"):
                continue
            value = resource.get(INCLUDES[key])
            reference = value.get("reference") if isinstance(value, dict) else None
            target = _resolve(store, reference, patient_id)
            if target is not None:
                out.setdefault((target["resourceType"], target["id"]), target)
    return list(out.values())


def _resolve(store: FhirStore, reference: Any, patient_id: str | None) -> Resource | None:
    if not isinstance(reference, str) or reference.startswith("#") or reference.count("/") < 1:
        return None
    rtype, rid = reference.rstrip("/").split("/")[-2:]
    owner = store.owner(rtype, rid)
    if patient_id is not None and owner not in (None, patient_id):
        return None
    return store.read(rtype, rid)


# Filters ----------------------------------------------------------------------------------


def _test(store: FhirStore, rtype: str, name: str, value: str) -> Test:
    alternatives = [v for v in value.split(",") if v]
    if not alternatives:
        raise SearchError(f"{name} has no value")
    if name == "_id":
        return lambda r: r.get("id") in alternatives
    if name in REFERENCES:
        wanted = {_patient_id(name, v) for v in alternatives}
        return lambda r: store.owner(rtype, r["id"]) in wanted
    if name in TOKENS.get(rtype, {}):
        paths = TOKENS[rtype][name]
        return lambda r: any(_token(r.get(p), v) for p in paths for v in alternatives)
    ranges = [_date_query(v) for v in alternatives]
    paths = DATES[rtype][name]
    return lambda r: any(_date_match(r, paths, prefix, rng) for prefix, rng in ranges)


def _patient_id(name: str, value: str) -> str:
    match = PATIENT_REFERENCE.fullmatch(value)
    if match:
        return match.group(1)
    if "/" in value:
        raise SearchError(f"{name}={value[:60]} does not name a Patient")
    return value


def _token(element: Any, wanted: str) -> bool:
    system, bar, code = wanted.rpartition("|")
    if isinstance(element, list):
        return any(_token(item, wanted) for item in element)
    if isinstance(element, str):
        return element == code
    if not isinstance(element, dict):
        return False
    for coding in element.get("coding") or []:
        if not isinstance(coding, dict):
            continue
        system_ok = not bar or coding.get("system") == (system or None)
        if system_ok and (not code or coding.get("code") == code):
            return True
    return False


# Dates ------------------------------------------------------------------------------------


def date_range(text: str) -> Range:
    """The range a FHIR date, dateTime or instant covers at its precision (UTC when no zone)."""
    match = _DATE.fullmatch(text.strip())
    if match is None:
        raise SearchError(f"{text[:40]!r} is not a FHIR date")
    p = match.groupdict()
    try:
        if p["m"] is None:
            start = datetime(int(p["y"]), 1, 1, tzinfo=UTC)
            return start, start.replace(year=start.year + 1)
        if p["d"] is None:
            start = datetime(int(p["y"]), int(p["m"]), 1, tzinfo=UTC)
            return start, (start + timedelta(days=32)).replace(day=1)
        if p["H"] is None:
            start = datetime(int(p["y"]), int(p["m"]), int(p["d"]), tzinfo=UTC)
            return start, start + timedelta(days=1)
        iso = text.strip().replace("Z", "+00:00")
        start = datetime.fromisoformat(iso if p["tz"] else iso + "+00:00").astimezone(UTC)
    except (ValueError, OverflowError):
        raise SearchError(f"{text[:40]!r} is not a valid date") from None
    step = timedelta(minutes=1) if p["S"] is None else timedelta(seconds=1)
    return start, start + (timedelta(microseconds=1) if p["f"] else step)


def _date_query(value: str) -> tuple[str, Range]:
    prefix = value[:2] if value[:2].isalpha() else "eq"
    if value[:2].isalpha() and prefix not in PREFIXES:
        raise SearchError(f"date prefix {prefix!r} is not supported")
    return prefix, date_range(value[2:] if value[:2].isalpha() else value)


def _target_range(element: Any) -> Range | None:
    if isinstance(element, str):
        try:
            return date_range(element)
        except SearchError:
            return None
    if isinstance(element, dict) and ("start" in element or "end" in element):
        start = _target_range(element.get("start")) if "start" in element else None
        end = _target_range(element.get("end")) if "end" in element else None
        return (start[0] if start else EARLIEST, end[1] if end else LATEST)
    return None


def _date_match(resource: Resource, paths: Sequence[str], prefix: str, query: Range) -> bool:
    """FHIR R4 §3.1.1.4.1 prefixes, comparing the element's range with the value's."""
    for path in paths:
        target = _target_range(resource.get(path))
        if target is not None:
            return _compare(prefix, target, query)
    return False  # no date: matches no date search


def _compare(prefix: str, target: Range, query: Range) -> bool:
    (t_lo, t_hi), (q_lo, q_hi) = target, query
    inside = q_lo <= t_lo and t_hi <= q_hi
    tests = {
        "eq": inside,
        "ne": not inside,
        "gt": t_hi > q_hi,
        "lt": t_lo < q_lo,
        "ge": t_hi > q_hi or inside,
        "le": t_lo < q_lo or inside,
        "sa": t_lo >= q_hi,
        "eb": t_hi <= q_lo,
    }
    return tests[prefix]
