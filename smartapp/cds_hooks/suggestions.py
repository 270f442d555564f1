"""Lab-order suggestions on CDS Hooks cards (CDS Hooks 2.0 Suggestion and Action; design.md
Contract 2): a finding's lab actions (``Finding.actions``) become ``create`` actions holding a
draft FHIR R4 ``ServiceRequest``, LOINC coded, for the patient in context.

The tests and codes live in ``data/cards.json`` (``lab_tests``, ``lab_orders``) with their
sources. Each order's resources are built once from that data and validated with
``fhir.resources`` (R4B ServiceRequest, wire-compatible with R4); a suggestion copies the
validated template and fills in only the per-request values (subject, due date, reason, note),
whose shapes the template validation already covered.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from importlib import resources
from typing import Any, get_args

from fhir.resources.R4B.servicerequest import ServiceRequest

from smartapp.rules.findings import LabAction

#: FHIR ``id`` datatype (R4 §2.24.0.1): the patient id goes into ``Patient/<id>``.
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_TEMPLATE_PATIENT = "template"
LAB_ACTIONS: tuple[str, ...] = get_args(LabAction)


class CardDataError(ValueError):
    """``data/cards.json`` is malformed or incomplete."""


@lru_cache(maxsize=1)
def cards_json() -> Mapping[str, Any]:
    """The raw card data (``smartapp/cds_hooks/data/cards.json``), read once."""
    text = (resources.files("smartapp.cds_hooks") / "data" / "cards.json").read_text("utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise CardDataError("cards.json must hold an object")
    return data


@dataclass(frozen=True)
class LabTest:
    key: str
    system: str
    code: str
    display: str
    text: str


@dataclass(frozen=True)
class LabOrder:
    action: str
    label: str
    tests: tuple[LabTest, ...]
    note: str | None = None


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CardDataError(f"{where}: {key!r} must be a non-empty string")
    return value.strip()


def _lab_test(key: str, entry: Any) -> LabTest:
    if not isinstance(entry, dict):
        raise CardDataError(f"lab_tests.{key} must be an object")
    where = f"lab_tests.{key}"
    _text(entry, "source", where)
    return LabTest(
        key,
        _text(entry, "system", where),
        _text(entry, "code", where),
        _text(entry, "display", where),
        _text(entry, "text", where),
    )


@lru_cache(maxsize=1)
def lab_orders() -> Mapping[str, LabOrder]:
    """Every lab action of the rules (``LabAction``) with the tests it orders."""
    data = cards_json()
    tests = {k: _lab_test(k, v) for k, v in dict(data.get("lab_tests") or {}).items()}
    orders: dict[str, LabOrder] = {}
    for action in LAB_ACTIONS:
        entry = dict(data.get("lab_orders") or {}).get(action)
        if not isinstance(entry, dict):
            raise CardDataError(f"lab_orders has no entry for action {action!r}")
        keys = entry.get("tests")
        if not isinstance(keys, list) or not keys or any(k not in tests for k in keys):
            raise CardDataError(f"lab_orders.{action}.tests must name entries of lab_tests")
        note = entry.get("note")
        orders[action] = LabOrder(
            action,
            _text(entry, "label", f"lab_orders.{action}"),
            tuple(tests[k] for k in keys),
            note.strip() if isinstance(note, str) and note.strip() else None,
        )
    return orders


def valid_fhir_id(value: str) -> bool:
    """True when ``value`` can stand as a FHIR resource id (and so in ``Patient/<id>``)."""
    return _FHIR_ID.fullmatch(value) is not None


def _category() -> dict[str, str]:
    entry = cards_json().get("service_request_category")
    if not isinstance(entry, dict):
        raise CardDataError("service_request_category must be an object")
    return {k: _text(entry, k, "service_request_category") for k in ("system", "code", "display")}


@cache
def _templates(action: str) -> tuple[dict[str, Any], ...]:
    """The validated ServiceRequests of one order, with placeholder per-request values."""
    out = []
    for test in lab_orders()[action].tests:
        draft = {
            "resourceType": "ServiceRequest",
            "status": "draft",
            "intent": "order",
            "category": [{"coding": [_category()]}],
            "code": {
                "coding": [{"system": test.system, "code": test.code, "display": test.display}],
                "text": test.text,
            },
            "subject": {"reference": f"Patient/{_TEMPLATE_PATIENT}"},
            "occurrenceDateTime": date(2000, 1, 1).isoformat(),
            "reasonCode": [
                {
                    "coding": [
                        {
                            "system": "https://example.org/placeholder",
                            "code": "placeholder",
                            "display": "placeholder",
                        }
                    ],
                    "text": "placeholder",
                }
            ],
            "note": [{"text": "placeholder"}],
        }
        validated = ServiceRequest.model_validate(draft)
        out.append(validated.model_dump(mode="json", exclude_none=True))
    return tuple(out)


def warm_up() -> None:
    """Load the card data and validate every order template now (the first validation builds
    fhir.resources' models, ~40 ms), so the first hook call does not pay for it."""
    for action in LAB_ACTIONS:
        _templates(action)


@dataclass(frozen=True)
class OrderContext:
    """The per-request values of a suggested order: the patient, the date the test is due
    (omitted when None), the finding as a Coding (system, code, display) with a reason text,
    and the note citing the source."""

    patient_id: str
    occurrence: date | None
    reason: Mapping[str, str]
    reason_text: str
    note: str

    def __post_init__(self) -> None:
        if not valid_fhir_id(self.patient_id):
            raise ValueError("patient id is not a valid FHIR id")
        if not self.reason_text.strip() or not self.note.strip():
            raise ValueError("reason text and note must not be empty")
        if any(not self.reason.get(k, "").strip() for k in ("system", "code", "display")):
            raise ValueError("reason must be a Coding with system, code and display")


def service_requests(action: str, order: OrderContext) -> list[dict[str, Any]]:
    """The draft ServiceRequests for one lab action: copies of the validated templates."""
    coding = {k: order.reason[k].strip() for k in ("system", "code", "display")}
    out = []
    for template in _templates(action):
        resource = copy.deepcopy(template)
        resource["subject"] = {"reference": f"Patient/{order.patient_id}"}
        if order.occurrence is None:
            del resource["occurrenceDateTime"]
        else:
            resource["occurrenceDateTime"] = order.occurrence.isoformat()
        resource["reasonCode"] = [{"coding": [coding], "text": order.reason_text.strip()}]
        resource["note"] = [{"text": order.note.strip()}]
        out.append(resource)
    return out


def lab_suggestion(action: str, order: OrderContext) -> dict[str, Any]:
    """One suggestion (label, uuid, isRecommended, actions) creating the order's
    ServiceRequests; troponin-crp and the clozapine level create two, selected together."""
    lab = lab_orders()[action]
    due = f", due {order.occurrence.isoformat()}" if order.occurrence else ""
    extra = f" {lab.note}" if lab.note else ""
    actions = [
        {
            "type": "create",
            "description": f"Draft lab order: {test.text} (LOINC {test.code}){due}.{extra}",
            "resource": resource,
        }
        for test, resource in zip(lab.tests, service_requests(action, order), strict=True)
    ]
    return {
        "label": lab.label,
        "uuid": str(uuid.uuid4()),
        "isRecommended": True,
        "actions": actions,
    }


def lab_suggestions(actions: Sequence[str], order: OrderContext) -> list[dict[str, Any]]:
    """One suggestion per distinct lab action, in the finding's order."""
    return [lab_suggestion(a, order) for a in dict.fromkeys(actions)]
