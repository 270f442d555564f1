"""Lab-order suggestions: LOINC-coded draft ServiceRequests that validate as FHIR R4(B)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from smartapp.cds_hooks import suggestions
from smartapp.cds_hooks.suggestions import (
    LAB_ACTIONS,
    OrderContext,
    lab_orders,
    lab_suggestion,
    lab_suggestions,
    service_requests,
    valid_fhir_id,
    warm_up,
)

LOINC = "http://loinc.org"
EXPECTED_LOINC = {
    "anc": ["751-8"],
    "cbc-diff": ["57021-8"],
    "troponin-crp": ["89579-7", "1988-5"],
    "clozapine-level": ["6896-5", "10992-6"],
    "metabolic": ["4548-4", "57698-3"],
}
REASON = {
    "system": "https://smartapp.example.org/fhir/CodeSystem/finding-code",
    "code": "anc-mild",
    "display": "Mild neutropenia",
}


def order(patient_id: str = "p1", occurrence: date | None = date(2026, 3, 2)) -> OrderContext:
    return OrderContext(
        patient_id,
        occurrence,
        REASON,
        "Mild neutropenia (anc-mild)",
        "Suggested by test. Source: L1",
    )


def test_every_rule_action_has_an_order() -> None:
    assert set(lab_orders()) == set(LAB_ACTIONS) == set(EXPECTED_LOINC)


@pytest.mark.parametrize("action", sorted(EXPECTED_LOINC))
def test_service_requests_validate_and_are_loinc_coded(action: str) -> None:
    resources = service_requests(action, order())
    assert [r["code"]["coding"][0]["code"] for r in resources] == EXPECTED_LOINC[action]
    for resource in resources:
        ServiceRequest.model_validate(resource)  # raises when not valid FHIR
        assert resource["resourceType"] == "ServiceRequest"
        assert resource["status"] == "draft"
        assert resource["intent"] == "order"
        assert resource["code"]["coding"][0]["system"] == LOINC
        assert resource["code"]["coding"][0]["display"]
        assert resource["subject"] == {"reference": "Patient/p1"}
        assert resource["occurrenceDateTime"] == "2026-03-02"
        assert resource["reasonCode"][0]["coding"][0] == REASON
        assert resource["reasonCode"][0]["text"] == "Mild neutropenia (anc-mild)"
        assert resource["note"] == [{"text": "Suggested by test. Source: L1"}]
        assert resource["category"][0]["coding"][0]["code"] == "108252007"


def test_no_occurrence_without_a_due_date() -> None:
    (resource,) = service_requests("anc", order(occurrence=None))
    assert "occurrenceDateTime" not in resource
    ServiceRequest.model_validate(resource)


def test_troponin_crp_is_one_suggestion_with_two_create_actions() -> None:
    suggestion = lab_suggestion("troponin-crp", order())
    assert suggestion["label"] == "Order troponin and CRP"
    assert suggestion["isRecommended"] is True
    assert [a["type"] for a in suggestion["actions"]] == ["create", "create"]
    codes = [a["resource"]["code"]["coding"][0]["code"] for a in suggestion["actions"]]
    assert codes == ["89579-7", "1988-5"]
    assert "due 2026-03-02" in suggestion["actions"][0]["description"]
    assert uuid.UUID(suggestion["uuid"]).version == 4


def test_metabolic_action_explains_weight_is_not_a_lab_order() -> None:
    suggestion = lab_suggestion("metabolic", order())
    assert all("Weight and BMI" in a["description"] for a in suggestion["actions"])
    assert all(
        a["resource"]["code"]["coding"][0]["code"] != "29463-7" for a in suggestion["actions"]
    )


def test_suggestions_deduplicate_actions_in_order_with_fresh_uuids() -> None:
    out = lab_suggestions(["clozapine-level", "anc", "clozapine-level"], order())
    assert [s["label"] for s in out] == [
        "Order a trough clozapine and norclozapine level",
        "Order an ANC",
    ]
    again = lab_suggestions(["anc"], order())
    assert len({s["uuid"] for s in out + again}) == 3


def test_templates_are_cached_and_results_are_independent_copies() -> None:
    first = service_requests("anc", order())
    before = suggestions._templates.cache_info().hits
    first[0]["code"]["coding"][0]["code"] = "tampered"
    first[0]["category"].clear()
    second = service_requests("anc", order("p2"))
    assert suggestions._templates.cache_info().hits == before + 1
    assert second[0]["code"]["coding"][0]["code"] == "751-8"
    assert second[0]["category"][0]["coding"][0]["code"] == "108252007"
    assert second[0]["subject"] == {"reference": "Patient/p2"}


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("p1", True),
        ("a" * 64, True),
        ("A-b.9", True),
        ("a" * 65, False),
        ("", False),
        ("Patient/p1", False),
        ("p 1", False),
        ("p1\n", False),
        ("ä", False),
    ],
)
def test_fhir_id_boundaries(value: str, ok: bool) -> None:
    assert valid_fhir_id(value) is ok


@pytest.mark.parametrize(
    "kwargs",
    [
        {"patient_id": "../x"},
        {"reason_text": " "},
        {"note": ""},
        {"reason": {"system": "s", "code": "c"}},
    ],
)
def test_order_context_refuses_values_that_would_make_invalid_fhir(kwargs: Any) -> None:
    values: dict[str, Any] = {
        "patient_id": "p1",
        "occurrence": None,
        "reason": REASON,
        "reason_text": "r",
        "note": "n",
        **kwargs,
    }
    with pytest.raises(ValueError):
        OrderContext(**values)


def test_unknown_action_is_an_error_not_an_empty_suggestion() -> None:
    with pytest.raises(KeyError):
        lab_suggestion("x-ray", order())


def test_warm_up_builds_every_template() -> None:
    warm_up()
    assert suggestions._templates.cache_info().currsize == len(LAB_ACTIONS)
