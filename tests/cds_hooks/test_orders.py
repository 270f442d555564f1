"""Draft orders and relevance (orders.py): drafts are proposals about the context patient, and
an order hook answers only what concerns the order, checked on the synthetic patients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import responses

from fhir_mappings.record import build_record
from smartapp.cds_hooks.hook_request import HookRequest, parse_hook_request
from smartapp.cds_hooks.orders import (
    ORDER_RELEVANCE,
    PATIENT_VIEW_DROPPED,
    Focus,
    concerns_order,
    read_draft_orders,
    relevant_findings,
)
from smartapp.cds_hooks.service import HookOutcome, ServiceSettings, call_hook
from smartapp.errors import ClientError
from smartapp.rules.evaluate import evaluate
from smartapp.rules.findings import FINDING_CODES, Finding
from smartapp.rules.ruleset import default_ruleset
from smartapp.synthetic import scenarios
from tests.cds_hooks import requests_builder as rb

AS_OF = date(2026, 3, 1)
INDEX = json.loads((Path(__file__).parents[1] / "patients" / "index.json").read_text())
EXPECTED = {entry["name"]: set(entry["expected_codes"]) for entry in INDEX}
SETTINGS = ServiceSettings(rules=default_ruleset(), app_launch_url="https://app.example.org/launch")


@pytest.fixture(autouse=True)
def no_network() -> Iterator[None]:
    """Any HTTP call from these tests is a failure (responses refuses unknown URLs)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False):
        yield


def request_for(body: dict[str, Any]) -> HookRequest:
    return parse_hook_request(body, body["hook"])


def run(body: dict[str, Any]) -> HookOutcome:
    return call_hook(f"clozapine-{body['hook']}", request_for(body), SETTINGS, AS_OF)


def codes(body: dict[str, Any]) -> set[str]:
    return set(run(body).finding_codes)


def med(mid: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": mid,
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"text": text},
        **extra,
    }


def order_body(entries: list[dict[str, Any]], hook: str = "order-sign", **context: Any) -> Any:
    return {
        "hook": hook,
        "hookInstance": "i1",
        "context": {
            "userId": "Practitioner/1",
            "patientId": "p1",
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": entries},
            **context,
        },
    }


# --- reading draft orders ------------------------------------------------------------------


def test_drafts_are_forced_to_draft_status_and_other_types_are_ignored() -> None:
    body = order_body([
        {"resource": med("m1", "Clozapine 25 mg tablet")},
        {"resource": {"resourceType": "ServiceRequest", "id": "s1", "status": "draft"}},
        {"resource": {"resourceType": "Medication", "id": "x", "code": {"text": "clozapine"}}},
    ])  # fmt: skip
    drafts = read_draft_orders(request_for(body))
    assert drafts.drafts == ("MedicationRequest/m1",)
    assert drafts.focus == ("MedicationRequest/m1",)
    kept = [e["resource"] for e in drafts.entries]
    assert [(r["resourceType"], r.get("status")) for r in kept] == [
        ("MedicationRequest", "draft"),
        ("Medication", None),
    ]


def test_a_draft_without_id_takes_its_full_url_or_position() -> None:
    no_id = med("x", "Clozapine 25 mg tablet")
    del no_id["id"]
    body = order_body([
        {"fullUrl": "urn:uuid:6f1c2d0e-1", "resource": no_id},
        {"fullUrl": "https://ehr.example.org/fhir/MedicationRequest/77", "resource": no_id},
        {"resource": no_id},
    ])  # fmt: skip
    drafts = read_draft_orders(request_for(body))
    assert drafts.drafts == (
        "MedicationRequest/6f1c2d0e-1",
        "MedicationRequest/77",
        "MedicationRequest/draft-2",
    )
    assert drafts.entries[0]["fullUrl"] == "urn:uuid:6f1c2d0e-1"


def test_a_draft_without_subject_is_about_the_context_patient() -> None:
    order = med("m1", "Clozapine 25 mg tablet")
    del order["subject"]
    drafts = read_draft_orders(request_for(order_body([{"resource": order}])))
    assert drafts.entries[0]["resource"]["subject"] == {"reference": "Patient/p1"}


@pytest.mark.parametrize(
    "subject",
    [
        {"reference": "https://ehr.example.org/fhir/Patient/p1"},
        {"reference": "Patient/p1"},
    ],
)
def test_relative_or_absolute_references_to_the_patient_are_accepted(subject: Any) -> None:
    body = order_body([{"resource": med("m1", "clozapine", subject=subject)}])
    assert read_draft_orders(request_for(body)).drafts == ("MedicationRequest/m1",)


@pytest.mark.parametrize(
    "subject",
    [{"reference": "Patient/p2"}, {"reference": "Patient/p11"}, {"reference": 5}],
)
def test_a_draft_for_another_patient_is_400(subject: Any) -> None:
    body = order_body(
        [{"resource": med("m1", "clozapine")}, {"resource": med("m2", "x", subject=subject)}]
    )
    with pytest.raises(ClientError) as caught:
        read_draft_orders(request_for(body))
    assert caught.value.status == 400
    assert "entry[1].resource.subject" in caught.value.message


def test_order_select_focuses_on_the_selections() -> None:
    entries = [{"resource": med("m1", "clozapine")}, {"resource": med("m2", "ciprofloxacin")}]
    body = order_body(entries, "order-select", selections=["MedicationRequest/m2"])
    drafts = read_draft_orders(request_for(body))
    assert drafts.drafts == ("MedicationRequest/m1", "MedicationRequest/m2")
    assert drafts.focus == ("MedicationRequest/m2",)


def test_a_selection_may_be_a_full_url_or_absolute_reference() -> None:
    entries = [
        {"fullUrl": "urn:uuid:abc", "resource": {**med("m1", "clozapine")}},
        {"resource": med("m2", "ciprofloxacin")},
    ]
    body = order_body(
        entries,
        "order-select",
        selections=["urn:uuid:abc", "https://ehr/fhir/MedicationRequest/m2"],
    )
    assert read_draft_orders(request_for(body)).focus == (
        "MedicationRequest/m1",
        "MedicationRequest/m2",
    )


def test_a_selection_naming_no_draft_is_400() -> None:
    body = order_body(
        [{"resource": med("m1", "x")}], "order-select", selections=["MedicationRequest/zz"]
    )
    with pytest.raises(ClientError) as caught:
        read_draft_orders(request_for(body))
    assert caught.value.status == 400 and "context.selections[0]" in caught.value.message


def test_patient_view_has_no_drafts() -> None:
    body = rb.hook_body("clozapine-week10-mild", "patient-view")
    assert read_draft_orders(request_for(body)).entries == ()


# --- the relevance table -------------------------------------------------------------------


def test_every_finding_code_has_a_decided_relevance() -> None:
    """Codes not in the table are routine monitoring: only these two, deliberately."""
    assert set(ORDER_RELEVANCE) <= set(FINDING_CODES)
    assert set(FINDING_CODES) - set(ORDER_RELEVANCE) == {"trs-not-met", "metabolic-monitoring-due"}
    assert {"trs-not-met"} == PATIENT_VIEW_DROPPED


def finding(code: str, *evidence: str) -> Finding:
    return Finding(code, "warning", "s", "d", "src", evidence=evidence)


NONE = Focus(frozenset(), clozapine=False, antipsychotic=False)
CLOZAPINE = Focus(frozenset({"MedicationRequest/d"}), clozapine=True, antipsychotic=False)
OTHER_AP = Focus(frozenset({"MedicationRequest/d"}), clozapine=False, antipsychotic=True)
ANY_DRUG = Focus(frozenset({"MedicationRequest/d"}), clozapine=False, antipsychotic=False)


@pytest.mark.parametrize(
    ("code", "evidence", "focus", "shown"),
    [
        ("data-unavailable", (), NONE, True),
        ("data-unmapped", (), NONE, True),
        ("anc-baseline-missing", (), CLOZAPINE, True),
        ("anc-baseline-missing", (), OTHER_AP, False),
        ("anc-normal", (), ANY_DRUG, False),
        ("fbc-red", (), CLOZAPINE, True),
        ("myocarditis-watch", (), CLOZAPINE, True),
        ("myocarditis-watch", (), ANY_DRUG, False),
        ("level-high", (), CLOZAPINE, True),
        ("level-high", (), ANY_DRUG, False),
        ("titration-start-dose", (), CLOZAPINE, True),
        ("seizure-risk", (), ANY_DRUG, False),
        ("interaction-inducer", ("MedicationRequest/d",), ANY_DRUG, True),
        ("interaction-inducer", ("MedicationRequest/old",), ANY_DRUG, False),
        ("interaction-inducer", ("MedicationRequest/old",), CLOZAPINE, True),
        ("constipation-prophylaxis", ("MedicationRequest/d",), ANY_DRUG, True),
        ("constipation-prophylaxis", ("MedicationRequest/old",), ANY_DRUG, False),
        ("trs-met", (), OTHER_AP, True),
        ("trs-met", (), CLOZAPINE, False),
        ("trs-possible", (), ANY_DRUG, False),
        ("clozapine-suicidality-indication", (), OTHER_AP, True),
        ("trs-not-met", (), OTHER_AP, False),
        ("metabolic-monitoring-due", (), CLOZAPINE, False),
    ],
)
def test_relevance_to_the_order(
    code: str, evidence: tuple[str, ...], focus: Focus, shown: bool
) -> None:
    assert concerns_order(finding(code, *evidence), focus) is shown


def test_patient_view_keeps_all_but_the_dropped_noise() -> None:
    findings = [finding("anc-normal"), finding("trs-not-met"), finding("metabolic-monitoring-due")]
    kept = relevant_findings("patient-view", findings, NONE)
    assert [f.code for f in kept] == ["anc-normal", "metabolic-monitoring-due"]


# --- relevance on the synthetic patients ---------------------------------------------------


def engine_codes(name: str) -> set[str]:
    """What the clinical core says about the whole scenario Bundle (drafts included)."""
    scenario = scenarios.get(name)
    return set(evaluate(build_record(scenario.bundle()), scenario.as_of, "us-fda").codes())


#: Findings no clozapine order is about: TRS belongs to the "third antipsychotic" moment.
NOT_ABOUT_CLOZAPINE_ORDER = {
    "trs-met", "trs-possible", "trs-not-met", "clozapine-suicidality-indication",
    "metabolic-monitoring-due",
}  # fmt: skip

#: Clozapine drafts: the designed finding must show, with every other clozapine-order finding.
CLOZAPINE_DRAFTS = {
    "new-start-baseline-ok": {"anc-normal"},
    "new-start-baseline-missing": {"anc-baseline-missing"},
    "new-start-baseline-low": {"anc-baseline-low"},
    "titration-start-100mg": {"anc-normal", "titration-start-dose"},
    "clozapine-restart-after-45-days": {"anc-normal", "anc-schedule-restart"},
    "clozapine-restart-after-5-days": {"anc-normal", "retitration-needed"},
    "dose-above-max-order-sign": {"anc-normal", "dose-above-max", "seizure-risk"},
}

#: Other drafts: exactly these.
OTHER_DRAFTS = {
    # The ciprofloxacin draft is not clozapine: the ANC status does not concern it.
    "ciprofloxacin-order-sign": {"interaction-cyp1a2-inhibitor"},
    "trs-met-third-antipsychotic": {"trs-met"},
    "trs-possible-no-dispensing": {"trs-possible"},
    # TRS criteria not met: nothing to say about a third antipsychotic.
    "trs-not-met": set(),
}


@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
@pytest.mark.parametrize(("name", "designed"), sorted(CLOZAPINE_DRAFTS.items()))
def test_a_clozapine_draft_gets_its_checks(name: str, designed: set[str], hook: str) -> None:
    found = codes(rb.hook_body(name, hook, fhir_server=None))
    assert designed <= found
    assert found == engine_codes(name) - NOT_ABOUT_CLOZAPINE_ORDER


@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
@pytest.mark.parametrize(("name", "expected"), sorted(OTHER_DRAFTS.items()))
def test_other_drafts_get_only_what_concerns_them(name: str, expected: set[str], hook: str) -> None:
    assert codes(rb.hook_body(name, hook, fhir_server=None)) == expected
    assert expected <= engine_codes(name)


NO_DRAFTS = sorted(
    name
    for name in EXPECTED
    if not rb.patient(name).drafts
    and not rb.patient(name).failed
    and scenarios.get(name).profile == "us-fda"
)


@pytest.mark.parametrize("name", NO_DRAFTS)
def test_patient_view_is_the_monitoring_summary(name: str) -> None:
    """Split into prefetch keys, the patient's data says what the whole Bundle says."""
    found = codes(rb.hook_body(name, "patient-view", fhir_server=None))
    assert found == engine_codes(name) - PATIENT_VIEW_DROPPED
    assert EXPECTED[name] - PATIENT_VIEW_DROPPED <= found


def test_patient_view_reports_the_failed_query() -> None:
    body = rb.hook_body("data-unavailable-observation-timeout", "patient-view", fhir_server=None)
    found = codes(body)
    assert "data-unavailable" in found
    assert found == engine_codes("data-unavailable-observation-timeout") - PATIENT_VIEW_DROPPED


def test_patient_view_drops_trs_not_met() -> None:
    body = rb.hook_body("trs-not-met", "patient-view", fhir_server=None)
    assert "trs-not-met" in EXPECTED["trs-not-met"]
    assert codes(body) == set()


def amoxicillin(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "amox-1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "medicationCodeableConcept": {"text": "Amoxicillin 500 mg capsule"},
    }


def test_a_draft_we_do_not_care_about_gives_no_cards() -> None:
    pid = rb.patient("clozapine-week30-due-soon").patient_id
    body = rb.hook_body("clozapine-week30-due-soon", drafts=[amoxicillin(pid)], fhir_server=None)
    outcome = run(body)
    assert outcome.cards == [] and outcome.finding_codes == ()


def test_data_cards_still_come_with_an_uninteresting_draft() -> None:
    pid = rb.patient("unknown-unit-data-unmapped").patient_id
    body = rb.hook_body("unknown-unit-data-unmapped", drafts=[amoxicillin(pid)], fhir_server=None)
    assert codes(body) == {"data-unmapped"}


def test_order_sign_without_any_medication_draft_gives_only_data_cards() -> None:
    body = rb.hook_body("clozapine-week10-mild", drafts=[], fhir_server=None)
    assert codes(body) == set()


def mixed_select(selected: str) -> dict[str, Any]:
    """A clozapine start and a ciprofloxacin order drafted together, one of them selected."""
    p = rb.patient("new-start-baseline-ok")
    cipro = rb.patient("ciprofloxacin-order-sign").drafts[0]
    cipro = {**cipro, "subject": {"reference": f"Patient/{p.patient_id}"}}
    drafts = [*p.drafts, cipro]
    chosen = [f"MedicationRequest/{d['id']}" for d in drafts if selected in json.dumps(d).lower()]
    return rb.hook_body(
        "new-start-baseline-ok", "order-select", drafts=drafts, selections=chosen, fhir_server=None
    )


def test_selecting_ciprofloxacin_beside_a_clozapine_draft_shows_only_the_interaction() -> None:
    assert codes(mixed_select("ciprofloxacin")) == {"interaction-cyp1a2-inhibitor"}


def test_selecting_the_clozapine_draft_shows_its_checks_and_the_interaction() -> None:
    assert codes(mixed_select("clozapine 12.5")) == {"anc-normal", "interaction-cyp1a2-inhibitor"}


def test_prefetch_about_another_patient_is_400() -> None:
    body = rb.hook_body("clozapine-week10-mild", "patient-view", fhir_server=None)
    body["context"]["patientId"] = "someone-else"
    with pytest.raises(ClientError) as caught:
        run(body)
    assert caught.value.status == 400
    assert "2 patients" in caught.value.message
