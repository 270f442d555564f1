"""Search semantics of the sandbox (FHIR R4 §3.1.1): date precision and prefixes at their
boundaries, token forms, includes that never cross into another patient's compartment, and
refusal of what is not understood."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from smartapp.sandbox.search import SearchError, date_range, included, matches, parse
from smartapp.sandbox.store import FhirStore, StoreError, patient_of


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026", "2026-01-01", "2027-01-01"),
        ("2026-02", "2026-02-01", "2026-03-01"),
        ("2026-12", "2026-12-01", "2027-01-01"),
        ("2024-02-28", "2024-02-28", "2024-02-29"),
        ("2026-03-01T10:15", "2026-03-01T10:15", "2026-03-01T10:16"),
        ("2026-03-01T10:15:30Z", "2026-03-01T10:15:30", "2026-03-01T10:15:31"),
        ("2026-03-01T10:15:30+02:00", "2026-03-01T08:15:30", "2026-03-01T08:15:31"),
        ("2026-03-01T10:15:30.250Z", "2026-03-01T10:15:30.250", "2026-03-01T10:15:30.250001"),
    ],
)
def test_a_date_covers_the_range_of_its_precision(text: str, start: str, end: str) -> None:
    assert date_range(text) == (at(start), at(end))


@pytest.mark.parametrize("text", ["", "26", "2026-13", "2026-02-30", "2026-03-01T25:00", "now"])
def test_malformed_dates_are_refused(text: str) -> None:
    with pytest.raises(SearchError):
        date_range(text)


def observation(oid: str, patient: str = "p1", **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "subject": {"reference": f"Patient/{patient}"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]},
        **fields,
    }


@pytest.fixture
def store() -> FhirStore:
    s = FhirStore()
    s.add({"resourceType": "Patient", "id": "p1"})
    s.add({"resourceType": "Patient", "id": "p2"})
    s.add(observation("midnight", effectiveDateTime="2026-02-01T00:00:00Z"))
    s.add(observation("late", effectiveDateTime="2026-01-31T23:59:59Z"))
    s.add(observation("span", effectivePeriod={"start": "2026-01-30", "end": "2026-02-02"}))
    s.add(observation("open", effectivePeriod={"start": "2026-02-10"}))
    s.add(observation("undated"))
    s.add(observation("local", effectiveDateTime="2026-02-01T01:30:00+02:00"))
    s.add(observation("other", patient="p2", effectiveDateTime="2026-02-01T12:00:00Z"))
    return s


def found(store: FhirStore, query: str, patient: str | None = "p1") -> list[str]:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&") if p]
    request = parse("Observation", pairs, default_count=50, max_count=1000)  # type: ignore[arg-type]
    return [r["id"] for r in matches(store, request, patient)]


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("date=2026-02-01", ["midnight"]),
        ("date=eq2026-02", ["midnight"]),
        ("date=2026-01-31", ["late", "local"]),  # 01:30+02:00 is 23:30 UTC on the 31st
        ("date=lt2026-02-01", ["late", "span", "local"]),
        ("date=gt2026-02-01", ["span", "open"]),
        ("date=ge2026-02-01", ["midnight", "span", "open"]),
        ("date=le2026-01-31", ["late", "span", "local"]),
        ("date=sa2026-02-01", ["open"]),
        ("date=eb2026-02-01", ["late", "local"]),
        ("date=ne2026-02-01", ["late", "span", "open", "local"]),
        ("date=2025,2026-02-10", []),
        ("date=ge2026-01-31&date=lt2026-02-01", ["late", "span", "local"]),
    ],
)
def test_date_prefixes_at_the_boundaries(store: FhirStore, query: str, ids: list[str]) -> None:
    assert found(store, query) == ids


def test_undated_resources_match_no_date_search(store: FhirStore) -> None:
    assert "undated" not in found(store, "date=ge1900")
    assert "undated" in found(store, "")


def test_patient_compartment(store: FhirStore) -> None:
    assert "other" not in found(store, "")
    assert found(store, "patient=p2", patient=None) == ["other"]
    assert found(store, "subject=Patient/p2", patient=None) == ["other"]
    assert found(store, "patient=https://ehr.example/fhir/Patient/p2", patient=None) == ["other"]
    with pytest.raises(SearchError):
        found(store, "subject=Group/g1", patient=None)


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("code=http://loinc.org|751-8", 6),
        ("code=751-8", 6),
        ("code=http://loinc.org|", 6),
        ("code=|751-8", 0),
        ("code=http://snomed.info/sct|751-8", 0),
        ("status=final", 6),
        ("status=amended,final", 6),
        ("status=amended", 0),
        ("_id=late,open", 2),
    ],
)
def test_token_forms(store: FhirStore, query: str, count: int) -> None:
    assert len(found(store, query)) == count


@pytest.mark.parametrize(
    "query",
    ["code:not=751-8", "value-quantity=5", "date=ap2026", "_sort=date", "code=", "_count=-1",
     "_include=Observation:device", "_format=xml"],
)  # fmt: skip
def test_what_is_not_understood_is_refused(store: FhirStore, query: str) -> None:
    with pytest.raises(SearchError):
        found(store, query)


def test_includes_never_cross_into_another_compartment() -> None:
    s = FhirStore()
    s.add({"resourceType": "Medication", "id": "m1"})
    s.add({"resourceType": "Patient", "id": "p2"})
    mine = {
        "resourceType": "MedicationRequest",
        "id": "r1",
        "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": "Medication/m1"},
    }
    sneaky = {**mine, "id": "r2", "medicationReference": {"reference": "Patient/p2"}}
    contained = {**mine, "id": "r3", "medicationReference": {"reference": "#med"}}
    page = [mine, sneaky, contained, {**mine, "id": "r4"}]
    keys = ("MedicationRequest:medication",)
    assert [r["id"] for r in included(s, page, keys, "p1")] == ["m1"]
    assert [r["id"] for r in included(s, page, keys, "p2")] == ["m1", "p2"]


def test_store_refuses_what_it_cannot_hold() -> None:
    s = FhirStore()
    s.add({"resourceType": "Patient", "id": "p1"})
    with pytest.raises(StoreError):
        s.add({"resourceType": "Patient", "id": "p1"})
    with pytest.raises(StoreError):
        s.add({"resourceType": "Observation"})
    with pytest.raises(StoreError):
        s.add_bundle({"resourceType": "Observation"})


def test_patient_of() -> None:
    assert patient_of({"resourceType": "Patient", "id": "p1"}) == "p1"
    assert patient_of({"resourceType": "Condition", "subject": {"reference": "Patient/x"}}) == "x"
    assert patient_of({"resourceType": "Coverage", "patient": {"reference": "Patient/y"}}) == "y"
    assert patient_of({"resourceType": "Observation", "subject": {"reference": "Group/g"}}) is None
    assert patient_of({"resourceType": "Medication", "id": "m"}) is None
