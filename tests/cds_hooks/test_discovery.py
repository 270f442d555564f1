"""Discovery document and prefetch template expansion (CDS Hooks 2.0 §Discovery, §Prefetch)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from fhir_mappings.codetables import load_table
from smartapp.cds_hooks import discovery
from smartapp.cds_hooks.discovery import (
    PrefetchError,
    discovery_document,
    expand,
    lab_templates,
    service,
)

# CDS Hooks 2.0 prefetch tokens: a top-level context field or one of the four user tokens.
V2_TOKEN = re.compile(
    r"context\.[A-Za-z]+|userPractitionerId|userPractitionerRoleId|userPatientId|userRelatedPersonId"
)
ANY_BRACES = re.compile(r"\{\{(.*?)\}\}")
CONTEXT = {"userId": "Practitioner/dr-1", "patientId": "pat-42", "encounterId": "enc-7"}


def all_templates() -> list[tuple[str, str, str]]:
    return [
        (s["id"], key, template)
        for s in discovery_document()["services"]
        for key, template in s["prefetch"].items()
    ]


def test_three_services_with_their_hooks() -> None:
    services = discovery_document()["services"]
    assert [(s["id"], s["hook"]) for s in services] == [
        ("clozapine-patient-view", "patient-view"),
        ("clozapine-order-select", "order-select"),
        ("clozapine-order-sign", "order-sign"),
    ]
    for s in services:
        assert set(s) == {"hook", "id", "title", "description", "prefetch"}
        assert s["title"].strip() and len(s["description"]) > 80
        assert s["prefetch"], s["id"]


def test_document_is_json_with_no_null_or_empty_members() -> None:
    def walk(value: Any) -> None:
        assert value is not None and value not in ("", [], {})
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    document = json.loads(json.dumps(discovery_document()))
    walk(document)


@pytest.mark.parametrize(("service_id", "key", "template"), all_templates())
def test_templates_use_only_cds_hooks_2_tokens(service_id: str, key: str, template: str) -> None:
    tokens = ANY_BRACES.findall(template)
    assert tokens, f"{service_id}.{key} is not patient-specific"
    for token in tokens:
        assert V2_TOKEN.fullmatch(token), f"{service_id}.{key}: {{{{{token}}}}}"
    assert "today()" not in template and "%" not in template
    leftover = ANY_BRACES.sub("", template)
    assert "{" not in leftover and "}" not in leftover


@pytest.mark.parametrize(("service_id", "key", "template"), all_templates())
def test_every_key_expands_for_a_sample_context(service_id: str, key: str, template: str) -> None:
    url = expand(template, CONTEXT, CONTEXT["userId"])
    assert "{{" not in url and "pat-42" in url
    parts = urlsplit(url)
    assert not parts.scheme and not parts.netloc  # relative to fhirServer
    if parts.query:
        query = parse_qs(parts.query)
        assert query["patient"] == ["pat-42"], key
        assert query["_count"] == [str(discovery.PAGE_SIZE)]
    else:
        assert url == "Patient/pat-42"
    assert len(url) < 1900


def test_lab_search_asks_for_every_recognised_observation_code() -> None:
    asked: set[str] = set()
    for key in discovery.LAB_KEYS:
        query = parse_qs(urlsplit(expand(discovery.PREFETCH[key], CONTEXT, None)).query)
        asked |= set(query["code"][0].split(","))
    labs = {f"{e['system']}|{e['code']}" for e in load_table("labs").entries}
    smoking = {
        f"{e['system']}|{e['code']}"
        for e in load_table("smoking").entries
        if e["type"] == "observation"
    }
    assert labs <= asked and smoking <= asked
    assert "http://loinc.org|751-8" in asked and "http://loinc.org|72166-2" in asked
    assert len(asked) == len(labs | smoking)


def test_rating_scales_found_by_survey_category() -> None:
    query = parse_qs(urlsplit(expand(discovery.PREFETCH["assessments"], CONTEXT, None)).query)
    assert query["category"] == [
        "http://terminology.hl7.org/CodeSystem/observation-category|survey"
    ]


def test_long_code_list_is_split_across_keys_in_order() -> None:
    split = lab_templates(limit=400)
    assert list(split)[:3] == ["labs", "labs2", "labs3"]
    assert all(len(t) <= 400 for t in split.values())
    codes = [c for t in split.values() for c in parse_qs(urlsplit(t).query)["code"][0].split(",")]
    assert codes == discovery.observation_codes()
    assert list(lab_templates()) == ["labs", "labs2", "labs3"] == list(discovery.LAB_KEYS)


def test_blood_counts_and_levels_are_searched_apart_from_the_rest() -> None:
    """One page per query for a long history: the groups run in parallel."""
    first = parse_qs(urlsplit(discovery.PREFETCH["labs"]).query)["code"][0]
    second = parse_qs(urlsplit(discovery.PREFETCH["labs2"]).query)["code"][0]
    assert "http://loinc.org|751-8" in first and "http://loinc.org|6896-5" not in first
    assert "http://loinc.org|6896-5" in second and "http://loinc.org|1988-5" in second
    assert "http://loinc.org|4548-4" in discovery.PREFETCH["labs3"]


def test_service_lookup() -> None:
    found = service("clozapine-order-sign")
    assert found is not None and found["hook"] == "order-sign"
    assert service("clozapine") is None and service("") is None
    found["prefetch"]["patient"] = "changed"  # callers get a copy
    again = service("clozapine-order-sign")
    assert again is not None and again["prefetch"]["patient"] == "Patient/{{context.patientId}}"


def test_user_tokens_take_the_id_of_the_matching_user_type() -> None:
    assert expand("Practitioner/{{userPractitionerId}}", CONTEXT, "Practitioner/dr-1") == (
        "Practitioner/dr-1"
    )
    assert expand("X?u={{userPatientId}}", {}, "Patient/p9") == "X?u=p9"
    assert expand("X?u={{userRelatedPersonId}}", {}, "RelatedPerson/r1") == "X?u=r1"
    assert expand("X?u={{userPractitionerRoleId}}", {}, "PractitionerRole/pr") == "X?u=pr"
    # user None: the context's userId is the user
    assert expand("X?u={{userPractitionerId}}", CONTEXT, None) == "X?u=dr-1"
    with pytest.raises(PrefetchError, match="not a Practitioner"):
        expand("X?u={{userPractitionerId}}", CONTEXT, "PractitionerRole/pr")


def test_context_tokens() -> None:
    assert expand("Encounter/{{context.encounterId}}", CONTEXT, None) == "Encounter/enc-7"
    assert expand("X?u={{context.userId}}", CONTEXT, None) == "X?u=Practitioner/dr-1"


@pytest.mark.parametrize(
    ("template", "context", "message"),
    [
        ("Patient/{{context.patientId}}", {}, "no value"),
        ("Patient/{{context.patientId}}", {"patientId": ""}, "no value"),
        ("Patient/{{context.patientId}}", {"patientId": 42}, "no value"),
        ("Encounter/{{context.encounterId}}", {"patientId": "p1"}, "no value"),
        ("X?d={{context.draftOrders}}", {"draftOrders": {"resourceType": "Bundle"}}, "no value"),
        ("Observation?date=ge{{today()}}", CONTEXT, "not a CDS Hooks 2.0 token"),
        ("X?p={{%patient.id}}", CONTEXT, "not a CDS Hooks 2.0 token"),
        ("X?p={{Patient.id}}", CONTEXT, "not a CDS Hooks 2.0 token"),
        ("X?p={{context.patientId}", CONTEXT, "unbalanced"),
        ("X?p={{context.patientId}}&x=}}", CONTEXT, "unbalanced"),
    ],
)
def test_tokens_without_a_value_raise(template: str, context: dict[str, Any], message: str) -> None:
    with pytest.raises(PrefetchError, match=message):
        expand(template, context, None)


@pytest.mark.parametrize(
    "value", ["p1&_include=*", "p1?x", "../Patient/p2", "..", ".", "p 1", "p#1", "a" * 65]
)
def test_values_that_are_not_fhir_ids_cannot_change_the_query(value: str) -> None:
    with pytest.raises(PrefetchError, match="not a FHIR id"):
        expand("Observation?patient={{context.patientId}}", {"patientId": value}, None)
