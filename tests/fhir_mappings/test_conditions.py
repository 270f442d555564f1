"""Condition mapping (fhir_mappings/conditions.py, data/conditions.json)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from fhir_mappings.codetables import load_table
from fhir_mappings.conditions import map_condition
from smartapp.domain import ConditionFact

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def condition(
    coding: list[dict[str, Any]] | None = None,
    text: str | None = None,
    clinical: str | None = "active",
    verification: str | None = "confirmed",
    **extra: Any,
) -> dict[str, Any]:
    code: dict[str, Any] = {}
    if coding is not None:
        code["coding"] = coding
    if text is not None:
        code["text"] = text
    resource: dict[str, Any] = {"resourceType": "Condition", "id": "c1", "code": code, **extra}
    if clinical is not None:
        resource["clinicalStatus"] = {"coding": [{"system": CLINICAL, "code": clinical}]}
    if verification is not None:
        resource["verificationStatus"] = {
            "coding": [{"system": VERIFICATION, "code": verification}]
        }
    return resource


def one(resource: dict[str, Any]) -> ConditionFact:
    mapped = map_condition(resource)
    assert mapped.issues == [] and mapped.unmapped == []
    [fact] = mapped.conditions
    return fact


@pytest.mark.parametrize(
    ("system", "code", "concept"),
    [
        (SNOMED, "58214004", "schizophrenia"),
        (SNOMED, "191526005", "schizophrenia"),
        (SNOMED, "68890003", "schizoaffective"),
        (SNOMED, "38368003", "schizoaffective"),
        (SNOMED, "84760002", "schizoaffective"),
        (SNOMED, "425104003", "suicidal-behaviour"),
        (SNOMED, "82313006", "suicidal-behaviour"),
        (SNOMED, "23233009", "suicidal-behaviour"),
        (SNOMED, "17182001", "agranulocytosis"),
        (SNOMED, "303011007", "agranulocytosis"),
        (SNOMED, "50920009", "myocarditis"),
        (ICD10CM, "F20.0", "schizophrenia"),
        (ICD10CM, "F20", "schizophrenia"),
        (ICD10CM, "F209", "schizophrenia"),
        (ICD10CM, "F25.1", "schizoaffective"),
        (ICD10CM, "T14.91XA", "suicidal-behaviour"),
        (ICD10CM, "Z91.51", "suicidal-behaviour"),
        (ICD10CM, "D70.1", "agranulocytosis"),
        (ICD10CM, "I40.9", "myocarditis"),
        (ICD10CM, "I51.4", "myocarditis"),
        (ICD10, "F20.3", "schizophrenia"),
        (ICD10, "I40.0", "myocarditis"),
        ("urn:oid:2.16.840.1.113883.6.90", "F25.0", "schizoaffective"),
    ],
)
def test_codes(system: str, code: str, concept: str) -> None:
    fact = one(condition([{"system": system, "code": code}]))
    assert fact.concept == concept
    assert fact.recognised_by is not None and fact.recognised_by.endswith(f":{code}")


@pytest.mark.parametrize(
    ("system", "code"),
    [
        (ICD10CM, "F21"),  # schizotypal, not schizophrenia
        (ICD10CM, "T14.90"),  # injury, unspecified
        (ICD10CM, "I51.3"),
        (ICD10, "T14.91"),  # T14.91 is an ICD-10-CM code only
        (SNOMED, "F20.0"),  # right code, wrong system
        ("http://example.org/local", "58214004"),
    ],
)
def test_near_misses_are_not_recognised(system: str, code: str) -> None:
    mapped = map_condition(condition([{"system": system, "code": code}]))
    assert (mapped.conditions, mapped.issues, mapped.unmapped) == ([], [], [])


def test_snomed_wins_over_icd_and_text() -> None:
    fact = one(
        condition(
            [{"system": ICD10CM, "code": "F25.0"}, {"system": SNOMED, "code": "58214004"}],
            text="Schizoaffective disorder",
        )
    )
    assert (fact.concept, fact.recognised_by) == ("schizophrenia", "snomed:58214004")
    assert fact.display == "Schizoaffective disorder"


@pytest.mark.parametrize(
    ("text", "concept"),
    [
        ("Paranoid schizophrenia", "schizophrenia"),
        ("Schizo-affective disorder", "schizoaffective"),
        ("History of suicide attempt (2019)", "suicidal-behaviour"),
        ("Personal history of suicidal behavior", "suicidal-behaviour"),
        ("Clozapine-induced agranulocytosis", "agranulocytosis"),
        ("Clozapine-associated myocarditis", "myocarditis"),
    ],
)
def test_text_fallback(text: str, concept: str) -> None:
    assert one(condition(text=text)).concept == concept


@pytest.mark.parametrize(
    "text",
    [
        "Benign ethnic neutropenia",
        "BENIGN ETHNIC NEUTROPENIA",
        "Duffy-null associated neutrophil count",
        "Duffy null phenotype",
        "benign ethnic neutropaenia",
    ],
)
def test_ben_from_text(text: str) -> None:
    fact = one(condition(text=text))
    assert fact.concept == "ben"
    assert fact.recognised_by is not None and fact.recognised_by.startswith("text:")


def test_ben_text_wins_over_a_neutropenia_code() -> None:
    coding = [{"system": ICD10CM, "code": "D70.8", "display": "Benign ethnic neutropenia"}]
    assert one(condition(coding)).concept == "ben"


def test_ben_words_apart_are_not_ben() -> None:
    mapped = map_condition(condition(text="Ethnic group noted; benign neutropenia"))
    assert [c.concept for c in mapped.conditions] == ["agranulocytosis"]


@pytest.mark.parametrize("status", ["refuted", "entered-in-error"])
def test_refuted_or_erroneous_conditions_are_skipped(status: str) -> None:
    mapped = map_condition(condition([{"system": SNOMED, "code": "58214004"}], verification=status))
    assert (mapped.conditions, mapped.issues, mapped.unmapped) == ([], [], [])


@pytest.mark.parametrize("status", ["provisional", "differential", "unconfirmed"])
def test_unconfirmed_ben_is_not_used_and_says_so(status: str) -> None:
    mapped = map_condition(condition(text="Benign ethnic neutropenia", verification=status))
    assert mapped.conditions == []
    assert [i.problem for i in mapped.issues] == [f"ben Condition is only '{status}': not used"]


def test_provisional_schizophrenia_is_still_a_fact() -> None:
    assert one(condition(text="Schizophrenia", verification="provisional")).active is True


@pytest.mark.parametrize(
    ("clinical", "extra", "active"),
    [
        ("active", {}, True),
        ("recurrence", {}, True),
        ("relapse", {}, True),
        ("inactive", {}, False),
        ("resolved", {}, False),
        ("remission", {}, False),
        (None, {}, True),
        (None, {"abatementDateTime": "2020-01-01"}, False),
    ],
)
def test_clinical_status(clinical: str | None, extra: dict[str, Any], active: bool) -> None:
    fact = one(condition(text="Suicide attempt", clinical=clinical, **extra))
    assert (fact.concept, fact.active) == ("suicidal-behaviour", active)


@pytest.mark.parametrize(
    ("extra", "onset"),
    [
        ({"onsetDateTime": "2019-06-03T10:00:00Z", "recordedDate": "2020-01-01"}, date(2019, 6, 3)),
        ({"onsetPeriod": {"start": "2018-02-01"}, "recordedDate": "2020-01-01"}, date(2018, 2, 1)),
        ({"recordedDate": "2020-01-05"}, date(2020, 1, 5)),
        ({"onsetDateTime": "2017"}, date(2017, 1, 1)),
        ({"onsetDateTime": "2017-04"}, date(2017, 4, 1)),
        ({"onsetString": "in her twenties"}, None),
        ({}, None),
    ],
)  # fmt: skip
def test_onset(extra: dict[str, Any], onset: date | None) -> None:
    assert one(condition(text="Schizophrenia", **extra)).onset == onset


def test_unrelated_condition_is_ignored_and_codeless_is_unmapped() -> None:
    asthma = map_condition(condition([{"system": SNOMED, "code": "195967001"}]))
    assert (asthma.conditions, asthma.issues, asthma.unmapped) == ([], [], [])
    blank = map_condition(condition())
    assert (blank.conditions, blank.unmapped) == ([], ["Condition/c1"])


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Condition", "id": "c1", "code": "F20"},
        {"resourceType": "Condition", "id": "c1", "code": {"coding": "F20", "text": 5}},
        {"resourceType": "Condition", "id": "c1", "code": {"coding": [None, 3, {"code": 5}]}},
        {"resourceType": "Condition", "id": "c1", "code": {"text": "Schizophrenia"},
         "clinicalStatus": "active", "verificationStatus": [1], "onsetPeriod": "2019"},
        None,
        ["Condition"],
    ],
)  # fmt: skip
def test_malformed_conditions_never_raise(resource: Any) -> None:
    mapped = map_condition(resource)
    if not isinstance(resource, dict) or not isinstance(resource.get("code"), dict):
        assert len(mapped.issues) == 1
    assert all(c.concept == "schizophrenia" for c in mapped.conditions)


def test_every_conditions_entry_has_a_source() -> None:
    assert all(e["source"] for e in load_table("conditions").entries)
