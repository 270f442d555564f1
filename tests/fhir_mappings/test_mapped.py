"""The ``*_into`` mappers add to one shared ``Mapped`` exactly what the public ``map_*``
functions return for each resource: a malformed resource leaves only its issue, whatever came
before it stays."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fhir_mappings import medications
from fhir_mappings.conditions import map_condition, map_condition_into
from fhir_mappings.mapped import Mapped
from fhir_mappings.medications import map_medication, map_medication_into
from fhir_mappings.observations import (
    map_diagnostic_report,
    map_diagnostic_report_into,
    map_observation,
    map_observation_into,
)
from fhir_mappings.record import collect, map_resources
from smartapp.domain import DataIssue
from smartapp.synthetic.longitudinal import ten_year_bundle, typical_bundle
from tests.conftest import anc, clozapine_order

PATIENTS = Path(__file__).parents[1] / "patients"
Resource = dict[str, Any]


def filled() -> Mapped:
    """A Mapped that already holds a lab, an issue and an unmapped reference."""
    out = map_observation(anc("before", "2026-01-01", 2.0))
    out.issue("Observation/earlier", "an earlier problem")
    out.unmapped.append("Observation/unreadable")
    return out


def as_lists(mapped: Mapped) -> tuple[list[Any], ...]:
    return (
        mapped.medications, mapped.labs, mapped.smoking, mapped.conditions,
        mapped.ratings, mapped.issues, mapped.unmapped,
    )  # fmt: skip


def test_rewind_drops_only_what_came_after_the_mark() -> None:
    out = filled()
    mark = out.mark()
    out.issue("Observation/later", "a later problem")
    out.labs.append(out.labs[0])
    out.unmapped.append("Observation/later")
    out.rewind(mark)
    assert as_lists(out) == as_lists(filled())


def panel_with_a_bad_second_component() -> Resource:
    """A CBC panel whose first component maps and whose second raises (a range type coding
    whose code is a list cannot be compared)."""
    quantity = {"value": 2.0, "unit": "10*9/L", "system": "http://unitsofmeasure.org"}
    bad_range = {"type": {"coding": [{"code": ["normal"]}]}, "high": {"value": 7}}
    return {
        "resourceType": "Observation",
        "id": "panel",
        "status": "final",
        "effectiveDateTime": "2026-02-01",
        "code": {"text": "CBC"},
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]},
             "valueQuantity": quantity},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "6690-2"}]},
             "valueQuantity": quantity, "referenceRange": [bad_range]},
        ],
    }  # fmt: skip


def test_a_malformed_observation_takes_back_its_partial_output() -> None:
    alone = map_observation(panel_with_a_bad_second_component())
    assert alone.labs == []
    assert alone.issues == [DataIssue("Observation/panel", "malformed Observation (TypeError)")]
    out = filled()
    map_observation_into(panel_with_a_bad_second_component(), out)
    before = filled()
    assert out.labs == before.labs
    assert out.issues == [*before.issues, *alone.issues]
    assert out.unmapped == before.unmapped


def test_a_malformed_report_takes_back_its_partial_output() -> None:
    panel = panel_with_a_bad_second_component()
    first = {**anc("a1", "2026-02-01", 1.0), "id": "a1"}
    report = {
        "resourceType": "DiagnosticReport",
        "id": "r1",
        "status": "final",
        "contained": [first, panel],
        "result": [{"reference": "#a1"}, {"reference": "#panel"}],
    }
    alone = map_diagnostic_report(report)
    assert alone.labs == []
    assert [i.problem for i in alone.issues] == ["malformed DiagnosticReport (TypeError)"]
    out = filled()
    map_diagnostic_report_into(report, out)
    assert out.labs == filled().labs
    assert out.issues == [*filled().issues, *alone.issues]


def test_a_medication_that_fails_half_way_takes_back_its_exposures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two dosage phases: the first becomes an exposure, then reading the second raises."""
    order = clozapine_order("m1", "2026-01-01")
    order["dosageInstruction"].append({**order["dosageInstruction"][0], "sequence": 2})
    order["dosageInstruction"][0]["sequence"] = 1
    real_checked = medications._checked
    calls: list[int] = []

    def fail_second(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise TypeError("second phase")
        return real_checked(*args)

    monkeypatch.setattr(medications, "_checked", fail_second)
    out = filled()
    map_medication_into(order, lambda _: None, out)
    assert len(calls) == 2, "the order should have had two phases"
    assert out.medications == []
    assert out.issues == [
        *filled().issues,
        DataIssue("MedicationRequest/m1", "malformed MedicationRequest: second phase"),
    ]


ATC = "http://www.whocc.no/atc"


@pytest.mark.parametrize(
    ("medication", "as_an_order"),
    [
        ({}, "unmapped"),  # names nothing
        ({"coding": [{"system": ATC, "code": "N05AX99"}]}, "issues"),  # unknown antipsychotic
    ],
)
def test_a_planned_order_adds_nothing_not_even_an_unreadable_drug(
    medication: Resource, as_an_order: str
) -> None:
    plan = {
        "resourceType": "MedicationRequest",
        "id": "plan",
        "status": "active",
        "intent": "plan",
        "medicationCodeableConcept": medication,
    }
    order = map_medication({**plan, "intent": "order"}, lambda _: None)
    assert getattr(order, as_an_order), "as an order it is worth a word"
    assert map_medication(plan, lambda _: None) == Mapped()
    out = filled()
    map_medication_into(plan, lambda _: None, out)
    assert as_lists(out) == as_lists(filled())


def test_a_malformed_condition_leaves_only_its_issue() -> None:
    condition = {"resourceType": "Condition", "id": "c1", "code": ["not", "a", "concept"]}
    alone = map_condition(condition)
    out = filled()
    map_condition_into(condition, out)
    assert alone.issues and not alone.conditions
    assert out.issues == [*filled().issues, *alone.issues]


def one_by_one(resources: list[Resource], by_ref: dict[str, Resource]) -> Mapped:
    """What ``map_resources`` returned before it shared one ``Mapped``: the public mappers'
    results, one resource at a time, joined."""
    reports = {
        id(by_ref[item["reference"]]): report
        for report in resources
        if report.get("resourceType") == "DiagnosticReport"
        for item in report.get("result", [])
        if item.get("reference") in by_ref
    }
    joined = Mapped()
    for resource in resources:
        rtype = resource.get("resourceType")
        if rtype in ("MedicationRequest", "MedicationDispense", "MedicationAdministration"):
            joined.extend(map_medication(resource, by_ref.get))
        elif rtype == "Observation":
            joined.extend(map_observation(resource, report=reports.get(id(resource))))
        elif rtype == "DiagnosticReport":
            joined.extend(map_diagnostic_report(resource))
        elif rtype == "Condition":
            joined.extend(map_condition(resource))
    return joined


SYNTHETIC = {"ten-year": ten_year_bundle, "typical": typical_bundle}
NAMES = [*SYNTHETIC, *sorted(p.stem for p in PATIENTS.glob("*.json") if p.stem != "index")]


@pytest.mark.parametrize("name", NAMES)
def test_map_resources_equals_the_public_mappers_one_by_one(name: str) -> None:
    if name in SYNTHETIC:
        data = SYNTHETIC[name](as_of=date(2026, 3, 1))
    else:
        data = json.loads((PATIENTS / f"{name}.json").read_text())
    collected = collect(data)
    shared = map_resources(collected.resources, collected.by_ref)
    assert as_lists(shared) == as_lists(one_by_one(collected.resources, collected.by_ref))
    assert shared.labs or shared.medications or shared.issues, name
