"""Medication resources -> MedicationExposure (fhir_mappings.medications)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fhir_mappings.mapped import Mapped
from fhir_mappings.medications import map_medication
from smartapp.domain import MedicationExposure

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
Resource = dict[str, Any]


def no_bundle(_: str) -> Resource | None:
    return None


def concept(
    code: str | None = None,
    system: str = RXNORM,
    display: str | None = None,
    text: str | None = None,
) -> Resource:
    coding: Resource = {"system": system}
    if code is not None:
        coding["code"] = code
    if display is not None:
        coding["display"] = display
    out: Resource = {"coding": [coding]} if code or display else {}
    if text is not None:
        out["text"] = text
    return out


def tablets(n: float, timing: Resource | None = None, **extra: Any) -> Resource:
    dosage: Resource = {"doseAndRate": [{"doseQuantity": {"value": n, "unit": "TAB"}}], **extra}
    if timing is not None:
        dosage["timing"] = timing
    return dosage


def mg(n: float, timing: Resource | None = None, **extra: Any) -> Resource:
    dosage: Resource = {"doseAndRate": [{"doseQuantity": {"value": n, "unit": "mg"}}], **extra}
    if timing is not None:
        dosage["timing"] = timing
    return dosage


def code_timing(code: str) -> Resource:
    return {"code": {"coding": [{"system": GTS, "code": code}]}}


def request(
    medication: Resource | None = None, dosage: list[Resource] | None = None, **fields: Any
) -> Resource:
    resource: Resource = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "authoredOn": "2026-01-10",
        **fields,
    }
    if medication is not None:
        resource["medicationCodeableConcept"] = medication
    if dosage is not None:
        resource["dosageInstruction"] = dosage
    return resource


def only(mapped: Mapped) -> MedicationExposure:
    assert len(mapped.medications) == 1, mapped
    return mapped.medications[0]


def problems(mapped: Mapped) -> list[str]:
    return [i.problem for i in mapped.issues]


def test_product_level_rxnorm_with_tablets_times_strength_bid() -> None:
    mapped = map_medication(
        request(
            concept("197536", display="clozapine 25 MG Oral Tablet"),
            [tablets(2, code_timing("BID"))],
        ),
        no_bundle,
    )
    exposure = only(mapped)
    assert exposure.ingredients == ("clozapine",)
    assert exposure.recognised_by == "rxnorm:197536"
    assert exposure.daily_dose_mg == 100
    assert (exposure.ref, exposure.source, exposure.status) == (
        "MedicationRequest/m1",
        "request",
        "active",
    )
    assert (exposure.start, exposure.end, exposure.authored) == (
        date(2026, 1, 10),
        None,
        date(2026, 1, 10),
    )
    assert exposure.display == "clozapine 25 MG Oral Tablet"
    assert mapped.issues == []


def test_lai_with_timing() -> None:
    med = concept(display="haloperidol decanoate 50 MG/ML Injectable Solution")
    every_4_weeks = {"repeat": {"frequency": 1, "period": 4, "periodUnit": "wk"}}
    exposure = only(map_medication(request(med, [mg(100, every_4_weeks)]), no_bundle))
    assert exposure.ingredients == ("haloperidol",)
    assert exposure.long_acting
    assert (exposure.interval_dose_mg, exposure.interval_days) == (100, 28)
    assert exposure.daily_dose_mg == pytest.approx(100 / 28)


def test_dose_range_uses_the_high_end() -> None:
    rng = {"low": {"value": 1, "unit": "TAB"}, "high": {"value": 2, "unit": "TAB"}}
    dosage = {"doseAndRate": [{"doseRange": rng}], "timing": code_timing("TID")}
    exposure = only(map_medication(request(concept("197536"), [dosage]), no_bundle))
    assert exposure.daily_dose_mg == 150


def test_split_dosing_is_summed() -> None:
    morning = mg(100, {"repeat": {"when": ["MORN"]}}, sequence=1)
    night = mg(200, {"repeat": {"when": ["HS"]}}, sequence=2)
    assert (
        only(map_medication(request(concept("2626"), [morning, night]), no_bundle)).daily_dose_mg
        == 300
    )


def test_sequential_titration_phases_become_separate_exposures() -> None:
    def phase(seq: int, dose: float, days: int) -> Resource:
        repeat = {
            "frequency": 1,
            "period": 1,
            "periodUnit": "d",
            "boundsDuration": {"value": days, "code": "d"},
        }
        return mg(dose, {"repeat": repeat}, sequence=seq)

    resource = request(concept("2626"), [phase(1, 12.5, 2), phase(2, 25, 3)], status="completed")
    spans = [
        (e.start, e.end, e.daily_dose_mg) for e in map_medication(resource, no_bundle).medications
    ]
    assert spans == [
        (date(2026, 1, 10), date(2026, 1, 12), 12.5),
        (date(2026, 1, 12), date(2026, 1, 15), 25),
    ]


def test_missing_timing_is_an_issue_and_no_dose() -> None:
    mapped = map_medication(request(concept("2626", display="clozapine"), [mg(100)]), no_bundle)
    assert only(mapped).daily_dose_mg is None
    assert problems(mapped) == ["clozapine: no timing (how often) given"]


def test_dose_problems_of_non_antipsychotics_are_not_reported() -> None:
    mapped = map_medication(request(concept(display="senna 8.6 mg"), [tablets(2)]), no_bundle)
    assert only(mapped).ingredients == ("senna",)
    assert mapped.issues == []


def test_bounds_period_end_is_made_exclusive() -> None:
    period = {"start": "2026-01-01", "end": "2026-01-31"}
    timing = {
        "repeat": {"boundsPeriod": period},
        "code": {"coding": [{"system": GTS, "code": "BID"}]},
    }
    exposure = only(map_medication(request(concept("197536"), [tablets(1, timing)]), no_bundle))
    assert (exposure.start, exposure.end) == (date(2026, 1, 1), date(2026, 2, 1))


def test_start_falls_back_to_validity_period_then_authored() -> None:
    validity = {"validityPeriod": {"start": "2026-01-05", "end": "2026-03-05"}}
    assert only(
        map_medication(request(concept("2626"), dispenseRequest=validity), no_bundle)
    ).start == date(2026, 1, 5)
    assert only(map_medication(request(concept("2626")), no_bundle)).start == date(2026, 1, 10)


def test_completed_order_ends_after_expected_supply_times_fills() -> None:
    supply = {
        "expectedSupplyDuration": {"value": 30, "unit": "days", "code": "d"},
        "numberOfRepeatsAllowed": 2,
    }
    resource = request(
        concept("197536"),
        [tablets(1, code_timing("BID"))],
        status="completed",
        dispenseRequest=supply,
    )
    exposure = only(map_medication(resource, no_bundle))
    assert (exposure.start, exposure.end) == (date(2026, 1, 10), date(2026, 4, 10))


def test_completed_order_ends_after_quantity_divided_by_daily_use() -> None:
    supply = {"quantity": {"value": 56, "unit": "TAB"}}
    resource = request(
        concept("197536"),
        [tablets(2, code_timing("BID"))],
        status="stopped",
        dispenseRequest=supply,
    )
    assert only(map_medication(resource, no_bundle)).end == date(2026, 1, 24)


def test_completed_order_without_end_is_one_day_and_an_issue() -> None:
    resource = request(
        concept("2626", display="clozapine"), [mg(100, code_timing("QD"))], status="completed"
    )
    mapped = map_medication(resource, no_bundle)
    assert (only(mapped).start, only(mapped).end) == (date(2026, 1, 10), date(2026, 1, 11))
    assert problems(mapped) == [
        "clozapine: completed order with no end date or supply:"
        " coverage taken as its first day only"
    ]


def test_active_order_without_end_is_ongoing_even_with_a_supply() -> None:
    supply = {"expectedSupplyDuration": {"value": 30, "code": "d"}}
    assert (
        only(map_medication(request(concept("2626"), dispenseRequest=supply), no_bundle)).end
        is None
    )


def test_missing_start_is_an_issue() -> None:
    resource = request(concept("2626", display="clozapine"), [mg(100, code_timing("QD"))])
    del resource["authoredOn"]
    mapped = map_medication(resource, no_bundle)
    assert only(mapped).start is None
    assert problems(mapped) == [
        "clozapine: no start date (boundsPeriod, validityPeriod or authoredOn)"
    ]


def test_draft_is_proposed_and_needs_no_start() -> None:
    resource = request(concept("197536"), [tablets(1, code_timing("QD"))], status="draft")
    del resource["authoredOn"]
    mapped = map_medication(resource, no_bundle)
    assert only(mapped).proposed and only(mapped).start is None
    assert only(mapped).daily_dose_mg == 25
    assert mapped.issues == []


def test_draft_proposal_is_still_the_order_being_written() -> None:
    resource = request(concept("2626"), status="draft", intent="proposal")
    assert only(map_medication(resource, no_bundle)).proposed


@pytest.mark.parametrize(
    ("status", "intent"),
    [
        ("entered-in-error", "order"),
        ("cancelled", "order"),
        ("active", "plan"),
        ("active", "proposal"),
    ],
)
def test_skipped_requests(status: str, intent: str) -> None:
    mapped = map_medication(request(concept("2626"), status=status, intent=intent), no_bundle)
    assert mapped == Mapped()


def test_dispense_covers_days_supply() -> None:
    dispense = {
        "resourceType": "MedicationDispense",
        "id": "d1",
        "status": "completed",
        "medicationCodeableConcept": concept("197535"),
        "quantity": {"value": 60, "unit": "TAB"},
        "daysSupply": {"value": 30, "unit": "Day", "code": "d"},
        "whenPrepared": "2026-01-01T09:00:00Z",
        "whenHandedOver": "2026-01-02T10:00:00Z",
    }
    exposure = only(map_medication(dispense, no_bundle))
    assert (exposure.source, exposure.ref) == ("dispense", "MedicationDispense/d1")
    assert (exposure.start, exposure.end, exposure.days_supply) == (
        date(2026, 1, 2),
        date(2026, 2, 1),
        30,
    )


def test_dispense_without_days_supply_uses_quantity_and_its_dosage() -> None:
    dispense = {
        "resourceType": "MedicationDispense",
        "id": "d2",
        "status": "completed",
        "medicationCodeableConcept": concept("197535"),
        "whenHandedOver": "2026-01-02",
        "quantity": {"value": 60, "unit": "TAB"},
        "dosageInstruction": [tablets(2, code_timing("BID"))],
    }
    exposure = only(map_medication(dispense, no_bundle))
    assert (exposure.end, exposure.days_supply, exposure.daily_dose_mg) == (
        date(2026, 1, 17),
        15,
        400,
    )


@pytest.mark.parametrize("status", ["declined", "cancelled", "entered-in-error"])
def test_skipped_dispenses(status: str) -> None:
    dispense = {
        "resourceType": "MedicationDispense",
        "id": "d3",
        "status": status,
        "medicationCodeableConcept": concept("2626"),
    }
    assert map_medication(dispense, no_bundle) == Mapped()


def test_lai_administration_covers_its_interval() -> None:
    administration = {
        "resourceType": "MedicationAdministration",
        "id": "a1",
        "status": "completed",
        "medicationCodeableConcept": {"text": "Risperdal Consta 50 mg"},
        "effectiveDateTime": "2026-02-01T10:00:00Z",
        "dosage": {"dose": {"value": 50, "unit": "mg"}},
    }
    exposure = only(map_medication(administration, no_bundle))
    assert exposure.long_acting and exposure.source == "administration"
    assert (exposure.start, exposure.end) == (date(2026, 2, 1), date(2026, 2, 15))
    assert exposure.daily_dose_mg == pytest.approx(50 / 14)


def test_oral_administration_covers_its_day() -> None:
    administration = {
        "resourceType": "MedicationAdministration",
        "id": "a2",
        "status": "completed",
        "medicationCodeableConcept": concept("197536"),
        "effectivePeriod": {"start": "2026-02-01T08:00:00Z"},
    }
    exposure = only(map_medication(administration, no_bundle))
    assert (exposure.start, exposure.end, exposure.daily_dose_mg) == (
        date(2026, 2, 1),
        date(2026, 2, 2),
        None,
    )


@pytest.mark.parametrize(
    "change",
    [
        {"dosageInstruction": "100 mg twice daily"},
        {"dosageInstruction": [{"doseAndRate": "100 mg"}]},
        {
            "dosageInstruction": [
                {
                    "doseAndRate": [{"doseQuantity": {"value": "100", "unit": "mg"}}],
                    "timing": code_timing("BID"),
                }
            ]
        },
        {
            "dosageInstruction": [
                {"timing": {"repeat": "BID"}, "doseAndRate": [{"doseQuantity": {"value": 1}}]}
            ]
        },
        {"authoredOn": 20260110},
    ],
)
def test_malformed_values_are_issues_not_exceptions(change: Resource) -> None:
    mapped = map_medication({**request(concept("2626", display="clozapine")), **change}, no_bundle)
    assert len(mapped.medications) == 1
    assert mapped.issues, "a malformed clozapine order must say why it cannot be used"


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "MedicationRequest", "medicationCodeableConcept": "clozapine"},
        {"resourceType": "MedicationRequest", "medicationReference": "Medication/1"},
        {
            "resourceType": "MedicationRequest",
            "medicationReference": {"reference": 5},
            "contained": "x",
        },
        {
            "resourceType": "MedicationDispense",
            "medicationCodeableConcept": {"coding": "x"},
            "status": 3,
        },
        {
            "resourceType": "MedicationAdministration",
            "medicationCodeableConcept": {"text": "clozapine"},
            "effectivePeriod": "2026",
            "dosage": "50 mg",
        },
        {"resourceType": "Observation"},
    ],
)
def test_odd_resources_never_raise(resource: Resource) -> None:
    map_medication(resource, no_bundle)


def test_every_hl7_medication_example_maps_cleanly(hl7_examples: Path) -> None:
    count = 0
    for path in sorted(hl7_examples.glob("Medication*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        if resource.get("resourceType") not in (
            "MedicationRequest",
            "MedicationDispense",
            "MedicationAdministration",
        ):
            continue
        mapped = map_medication(resource, no_bundle)
        count += 1
        assert not any("malformed" in p for p in problems(mapped)), path.name
        assert (
            len(mapped.medications) + len(mapped.unmapped) >= 1
            or resource.get("status") in ("entered-in-error", "cancelled", "declined", "not-done")
            or resource.get("intent") in ("plan", "proposal", "option")
        ), path.name
    assert count >= 80
