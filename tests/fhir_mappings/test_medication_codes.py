"""Which drug a medication resource names (fhir_mappings.medication_codes), tested through
``map_medication``, the way the mapping uses it."""

from __future__ import annotations

import pytest

from fhir_mappings.medications import map_medication
from tests.fhir_mappings.test_medications import (
    ATC,
    Resource,
    code_timing,
    concept,
    mg,
    no_bundle,
    only,
    problems,
    request,
    tablets,
)


def test_product_strength_comes_from_the_table_not_the_text() -> None:
    # A wrong display must not override the confirmed product strength (197535 = 100 mg).
    med = concept("197535", display="clozapine tablet")
    assert (
        only(map_medication(request(med, [tablets(1, code_timing("QD"))]), no_bundle)).daily_dose_mg
        == 100
    )


def test_ingredient_code_and_atc_code() -> None:
    by_rxnorm = only(map_medication(request(concept("2626")), no_bundle))
    by_atc = only(map_medication(request(concept("N05AH02", ATC)), no_bundle))
    assert (by_rxnorm.ingredients, by_rxnorm.recognised_by) == (("clozapine",), "rxnorm:2626")
    assert (by_atc.ingredients, by_atc.recognised_by) == (("clozapine",), "atc:N05AH02")


def test_contained_medication_with_ingredient_strength() -> None:
    contained = {
        "resourceType": "Medication",
        "id": "med1",
        "code": {"text": "Clozapine tablets"},
        "ingredient": [
            {
                "itemCodeableConcept": concept("2626", display="clozapine"),
                "strength": {
                    "numerator": {"value": 100, "unit": "mg"},
                    "denominator": {"value": 1, "unit": "TAB"},
                },
            }
        ],
    }
    resource = request(
        dosage=[tablets(3, {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}})]
    )
    resource["contained"] = [contained]
    resource["medicationReference"] = {"reference": "#med1"}
    exposure = only(map_medication(resource, no_bundle))
    assert exposure.ingredients == ("clozapine",)
    assert exposure.recognised_by == "rxnorm:2626"
    assert exposure.daily_dose_mg == 300


def test_referenced_medication_is_resolved_from_the_bundle() -> None:
    medication = {"resourceType": "Medication", "id": "x", "code": concept("309374")}
    seen: list[str] = []

    def resolve(ref: str) -> Resource | None:
        seen.append(ref)
        return medication if ref == "Medication/x" else None

    resource = request(dosage=[tablets(1, code_timing("BID"))])
    resource["medicationReference"] = {"reference": "Medication/x"}
    exposure = only(map_medication(resource, resolve))
    assert seen == ["Medication/x"]
    assert (exposure.ingredients, exposure.daily_dose_mg) == (("clozapine",), 400)


def test_unresolvable_reference_falls_back_to_its_display() -> None:
    resource = request(dosage=[mg(50, code_timing("QD"))])
    resource["medicationReference"] = {
        "reference": "Medication/missing",
        "display": "Risperdal 2mg",
    }
    exposure = only(map_medication(resource, no_bundle))
    assert (exposure.ingredients, exposure.recognised_by) == (("risperidone",), "text:risperdal")


def test_text_only_brand_with_strength_in_text() -> None:
    exposure = only(
        map_medication(
            request({"text": "Clozaril 100mg"}, [tablets(2, code_timing("BID"))]), no_bundle
        )
    )
    assert exposure.ingredients == ("clozapine",)
    assert exposure.recognised_by == "text:clozaril"
    assert exposure.daily_dose_mg == 400


@pytest.mark.parametrize(
    ("text", "ingredients"),
    [
        ("ZYPREXA 10 mg", ("olanzapine",)),
        ("Invega Sustenna 156 mg", ("paliperidone",)),
        ("St. John's Wort extract", ("st-johns-wort",)),
        ("Co-trimoxazole 960 mg", ("sulfamethoxazole", "trimethoprim")),
        (
            "sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet",
            ("sulfamethoxazole", "trimethoprim"),
        ),
        ("Divalproex sodium 500 mg DR tablet", ("valproate",)),
        ("MiraLAX powder", ("polyethylene-glycol",)),
        ("Product containing quetiapine (medicinal product)", ("quetiapine",)),
        ("ciprofibrate 100 mg", ()),  # word boundaries: not "cipro"
        ("Lithium carbonate 300 mg", ()),
    ],
)
def test_recognition_by_name(text: str, ingredients: tuple[str, ...]) -> None:
    exposure = only(map_medication(request(concept(display=text)), no_bundle))
    assert exposure.ingredients == ingredients


def test_unrecognised_drug_is_an_exposure_without_ingredients_or_issue() -> None:
    mapped = map_medication(request(concept(display="Amoxicillin 500 mg capsule")), no_bundle)
    assert only(mapped).ingredients == ()
    assert only(mapped).recognised_by is None
    assert mapped.issues == [] and mapped.unmapped == []


def test_nothing_readable_is_unmapped() -> None:
    mapped = map_medication(request({"coding": [{"system": "urn:x"}]}), no_bundle)
    assert mapped.medications == []
    assert mapped.unmapped == ["MedicationRequest/m1"]


def test_unknown_atc_antipsychotic_is_flagged() -> None:
    mapped = map_medication(request(concept("N05AX99", ATC), [mg(5, code_timing("QD"))]), no_bundle)
    assert only(mapped).ingredients == ()
    assert only(mapped).recognised_by == "atc:N05AX99"
    assert any("ATC N05AX99" in p for p in problems(mapped))


def test_lithium_atc_is_not_an_antipsychotic() -> None:
    mapped = map_medication(request(concept("N05AN01", ATC)), no_bundle)
    assert only(mapped).recognised_by is None and mapped.issues == []


def test_lai_without_timing_uses_the_table_default() -> None:
    mapped = map_medication(request({"text": "Haldol Decanoate 150 mg IM"}, [mg(150)]), no_bundle)
    exposure = only(mapped)
    assert exposure.long_acting and exposure.interval_days == 28
    assert exposure.daily_dose_mg == pytest.approx(150 / 28)
    assert mapped.issues == []


def test_lai_with_several_label_intervals_needs_timing() -> None:
    mapped = map_medication(request({"text": "Aristada 882 mg"}, [mg(882)]), no_bundle)
    exposure = only(mapped)
    assert exposure.long_acting and exposure.daily_dose_mg is None
    assert exposure.interval_dose_mg == 882
    assert problems(mapped) == [
        "Aristada 882 mg: long-acting injection without an interval in its timing"
    ]


def test_oral_haloperidol_is_not_long_acting() -> None:
    exposure = only(
        map_medication(
            request({"text": "Haldol 5 mg tablet"}, [mg(5, code_timing("BID"))]), no_bundle
        )
    )
    assert not exposure.long_acting and exposure.daily_dose_mg == 10
