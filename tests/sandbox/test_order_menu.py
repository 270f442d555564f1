"""The Prescribe page's draft orders: each one reads back, through the product's own FHIR
mapping, as the drug, dose and dates its label promises, as a proposed (draft) order; and the
clozapine doses reach the order checks they are there to show."""

from __future__ import annotations

from datetime import date

import pytest

from fhir_mappings.record import build_record
from smartapp.rules.evaluate import evaluate
from smartapp.sandbox.order_menu import (
    MENU,
    MenuOrder,
    draft_orders_bundle,
    draft_request,
    menu_order,
    new_order_id,
)
from smartapp.synthetic import scenarios

DAY = date(2026, 3, 1)
PATIENT = "new-start-baseline-ok"


def with_draft(name: str, key: str) -> dict[str, object]:
    bundle = scenarios.get(name).bundle()
    kept = [e for e in bundle["entry"] if e["resource"].get("status") != "draft"]
    draft = draft_request(menu_order(key), name, DAY, new_order_id())
    return {**bundle, "entry": [*kept, {"fullUrl": f"urn:uuid:{draft['id']}", "resource": draft}]}


@pytest.mark.parametrize("order", MENU, ids=lambda o: o.key)
def test_each_order_reads_back_as_labelled(order: MenuOrder) -> None:
    oid = new_order_id()
    resource = draft_request(order, PATIENT, DAY, oid)
    assert resource["status"] == "draft" and resource["intent"] == "order"
    assert resource["subject"] == {"reference": f"Patient/{PATIENT}"}
    record = build_record({"resourceType": "Bundle", "type": "collection",
                           "entry": [{"resource": resource}]})  # fmt: skip
    [exposure] = record.medications
    assert exposure.ref == f"MedicationRequest/{oid}"
    assert exposure.proposed
    assert exposure.ingredients == (order.ingredient if order.ingredient != "divalproex"
                                    else "valproate",)  # fmt: skip
    assert exposure.recognised_by is not None and exposure.recognised_by.startswith("rxnorm:")
    assert exposure.daily_dose_mg == pytest.approx(order.daily_mg)
    assert exposure.start == DAY
    assert exposure.end == (date(2026, 3, 8) if order.days == 7 else None)
    assert not record.data_issues


def test_the_menu_has_the_clozapine_doses_of_the_brief() -> None:
    daily = [o.daily_mg for o in MENU if o.ingredient == "clozapine"]
    assert daily == [12.5, 25, 100, 300, 950]
    assert menu_order("clozapine-950").label == (
        "Clozapine: 475 mg by mouth twice a day (950 mg/day)"
    )
    assert menu_order("ciprofloxacin").label == (
        "Ciprofloxacin 500 mg oral tablet: 500 mg by mouth twice a day for 7 days (1000 mg/day)"
    )
    with pytest.raises(KeyError):
        menu_order("clozapine-5000")


@pytest.mark.parametrize(
    "key, present, absent",
    [
        ("clozapine-12.5", set(), {"titration-start-dose", "dose-above-max"}),
        ("clozapine-100", {"titration-start-dose"}, {"dose-above-max"}),
        ("clozapine-950", {"dose-above-max", "seizure-risk"}, set()),
    ],
)
def test_clozapine_doses_reach_the_order_checks(
    key: str, present: set[str], absent: set[str]
) -> None:
    codes = {f.code for f in evaluate(build_record(with_draft(PATIENT, key)), DAY).findings}
    assert present <= codes
    assert not absent & codes


def test_ciprofloxacin_for_a_clozapine_patient_is_an_interaction() -> None:
    bundle = with_draft("ciprofloxacin-order-sign", "ciprofloxacin")
    codes = {f.code for f in evaluate(build_record(bundle), DAY).findings}
    assert "interaction-cyp1a2-inhibitor" in codes


def test_draft_orders_bundle_addresses_each_draft_by_urn_uuid() -> None:
    drafts = [draft_request(menu_order(k), PATIENT, DAY, new_order_id())
              for k in ("risperidone", "olanzapine")]  # fmt: skip
    bundle = draft_orders_bundle(drafts)
    assert bundle["type"] == "collection"
    assert [e["fullUrl"] for e in bundle["entry"]] == [f"urn:uuid:{d['id']}" for d in drafts]
    assert len({d["id"] for d in drafts}) == 2
