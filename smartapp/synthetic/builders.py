"""Small functions that build FHIR R4 resources as plain JSON-ready dicts.

They know FHIR structure, not clinical rules: the scenarios decide what to record. Every
function is deterministic (ids and timestamps come from the caller).
"""

from __future__ import annotations

from typing import Any

from smartapp.synthetic import terms

Json = dict[str, Any]


def coding(system: str, code: str, display: str | None = None) -> Json:
    out: Json = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(text: str | None, *codings: Json) -> Json:
    out: Json = {}
    if codings:
        out["coding"] = list(codings)
    if text:
        out["text"] = text
    return out


def quantity(value: float, unit: str, code: str | None = None, ucum: bool = True) -> Json:
    """A Quantity; ``ucum=False`` leaves out system and code (a unit only a human reads)."""
    out: Json = {"value": value, "unit": unit}
    if ucum:
        out["system"] = terms.UCUM
        out["code"] = code if code is not None else unit
    return out


def reference(resource: Json) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def patient(pid: str, family: str, given: str, gender: str, birth_date: str) -> Json:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": terms.MRN_SYSTEM, "value": f"MRN-{pid}"}],
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth_date,
    }


def observation(
    oid: str,
    subject: str,
    code: Json,
    when: str,
    *,
    category: str = "laboratory",
    value: Json | None = None,
    reference_range: Json | None = None,
    status: str = "final",
    issued: str | None = None,
) -> Json:
    """An Observation with a valueQuantity or valueCodeableConcept (``value`` is the whole
    ``value[x]`` element, e.g. ``{"valueQuantity": {...}}``)."""
    out: Json = {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "category": [
            concept(None, coding(terms.OBS_CATEGORY, category, category.replace("-", " ")))
        ],
        "code": code,
        "subject": {"reference": subject},
        "effectiveDateTime": when,
    }
    if issued:
        out["issued"] = issued
    if value:
        out.update(value)
    if reference_range:
        out["referenceRange"] = [reference_range]
    return out


def reference_range(low: float | None, high: float | None, unit: str, code: str) -> Json:
    out: Json = {}
    if low is not None:
        out["low"] = quantity(low, unit, code)
    if high is not None:
        out["high"] = quantity(high, unit, code)
    return out


def condition(
    cid: str,
    subject: str,
    code: Json,
    onset: str,
    *,
    clinical_status: str = "active",
    category: str = "problem-list-item",
) -> Json:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": concept(None, coding(terms.CONDITION_CLINICAL, clinical_status)),
        "verificationStatus": concept(None, coding(terms.CONDITION_VERIFICATION, "confirmed")),
        "category": [
            concept(None, coding(terms.CONDITION_CATEGORY, category, category.replace("-", " ")))
        ],
        "code": code,
        "subject": {"reference": subject},
        "onsetDateTime": onset,
        "recordedDate": onset,
    }


def medication(mid: str, code: Json) -> Json:
    return {"resourceType": "Medication", "id": mid, "code": code}


def timing(
    start: str | None,
    end: str | None = None,
    *,
    frequency: int | None = None,
    period: float | None = None,
    period_unit: str = "d",
    code: str | None = None,
    when: list[str] | None = None,
) -> Json:
    """A Timing: ``code`` is a GTS abbreviation (``BID``); otherwise frequency/period."""
    repeat: Json = {}
    if start or end:
        bounds: Json = {}
        if start:
            bounds["start"] = start
        if end:
            bounds["end"] = end
        repeat["boundsPeriod"] = bounds
    if frequency is not None:
        repeat["frequency"] = frequency
    if period is not None:
        repeat["period"] = period
        repeat["periodUnit"] = period_unit
    if when:
        repeat["when"] = when
    out: Json = {"repeat": repeat} if repeat else {}
    if code:
        gts, text, _ = terms.TIMING_CODES[code]
        out["code"] = concept(text, coding(terms.GTS, gts))
    return out


def dosage(
    text: str,
    dose: Json,
    timing_: Json,
    *,
    route: str = "oral",
    sequence: int | None = None,
) -> Json:
    routes = {"oral": ("26643006", "Oral route"), "im": ("78421000", "Intramuscular route")}
    code, display = routes[route]
    out: Json = {
        "text": text,
        "timing": timing_,
        "route": concept(display, coding(terms.SNOMED, code, display)),
        "doseAndRate": [
            {
                "type": concept(None, coding(terms.DOSE_RATE_TYPE, "ordered", "Ordered")),
                "doseQuantity": dose,
            }
        ],
    }
    if sequence is not None:
        out["sequence"] = sequence
    return out


def medication_request(
    rid: str,
    subject: str,
    medication_: Json,
    dosages: list[Json],
    *,
    status: str,
    authored: str,
    intent: str = "order",
    contained: list[Json] | None = None,
    dispense_request: Json | None = None,
) -> Json:
    """``medication_`` is the whole ``medication[x]`` element
    (``{"medicationCodeableConcept": ...}`` or ``{"medicationReference": ...}``)."""
    out: Json = {"resourceType": "MedicationRequest", "id": rid}
    if contained:
        out["contained"] = contained
    out.update(
        {
            "status": status,
            "intent": intent,
            "subject": {"reference": subject},
            "authoredOn": authored,
            "dosageInstruction": dosages,
        }
    )
    out.update(medication_)
    if dispense_request:
        out["dispenseRequest"] = dispense_request
    return out


def medication_dispense(
    did: str,
    subject: str,
    medication_: Json,
    *,
    prescription: str,
    handed_over: str,
    days_supply: int,
    quantity_: Json,
    dosages: list[Json],
) -> Json:
    out: Json = {
        "resourceType": "MedicationDispense",
        "id": did,
        "status": "completed",
        "subject": {"reference": subject},
        "authorizingPrescription": [{"reference": prescription}],
        "quantity": quantity_,
        "daysSupply": quantity(days_supply, "day", "d"),
        "whenPrepared": handed_over,
        "whenHandedOver": handed_over,
        "dosageInstruction": dosages,
    }
    out.update(medication_)
    return out


def medication_administration(
    aid: str,
    subject: str,
    medication_: Json,
    *,
    when: str,
    dose: Json,
    request: str,
    route: str = "im",
) -> Json:
    routes = {"oral": ("26643006", "Oral route"), "im": ("78421000", "Intramuscular route")}
    code, display = routes[route]
    out: Json = {
        "resourceType": "MedicationAdministration",
        "id": aid,
        "status": "completed",
        "subject": {"reference": subject},
        "effectiveDateTime": when,
        "request": {"reference": request},
        "dosage": {"route": concept(display, coding(terms.SNOMED, code, display)), "dose": dose},
    }
    out.update(medication_)
    return out


def operation_outcome(oid: str, code: str, diagnostics: str) -> Json:
    return {
        "resourceType": "OperationOutcome",
        "id": oid,
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }


def bundle(
    bid: str,
    resources: list[Json],
    *,
    timestamp: str,
    kind: str = "collection",
    search_modes: dict[str, str] | None = None,
) -> Json:
    """A Bundle of ``resources``; for a searchset, ``search_modes`` maps a reference to its
    ``search.mode`` (default ``match``)."""
    entries: list[Json] = []
    for resource in resources:
        ref = reference(resource)
        entry: Json = {"fullUrl": f"{terms.FULL_URL_BASE}/{ref}", "resource": resource}
        if kind == "searchset":
            modes = search_modes or {}
            entry["search"] = {"mode": modes.get(ref, "match")}
        entries.append(entry)
    out: Json = {"resourceType": "Bundle", "id": bid, "type": kind, "timestamp": timestamp}
    if kind == "searchset":
        out["total"] = sum(1 for e in entries if e["search"]["mode"] == "match")
    out["entry"] = entries
    return out
