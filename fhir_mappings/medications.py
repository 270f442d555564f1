"""MedicationRequest, MedicationDispense and MedicationAdministration -> ``MedicationExposure``
(rulebook §1 courses, §7 interactions, §8 dosing, §9 laxatives, §10 TRS).

The drug itself is recognised by ``fhir_mappings.medication_codes``.

Which resources count (design.md, Contract 1):
- entered-in-error and cancelled resources, and declined dispenses, are ignored;
- a ``draft`` MedicationRequest is a proposed order (``proposed=True``);
- a request whose intent is ``plan``, ``proposal`` or ``option`` is not an order and is skipped:
  counting an unordered plan as exposure could make a course or a TRS trial out of nothing.
  A *draft* with such an intent is still the order being written and counts as proposed.

Doses and coverage intervals come from ``fhir_mappings.dosage`` and ``fhir_mappings.timing``.
A recognised drug whose dose or dates cannot be read still becomes an exposure (interaction
checks need it) with a ``DataIssue`` saying what is missing. Dose problems are reported for
antipsychotics only, the drugs whose dose a rule reads (§8, §10).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from fhir_mappings import timing
from fhir_mappings.dosage import (
    InstructionDose,
    quantity_days,
    read_group,
    read_instruction,
    supply_days,
)
from fhir_mappings.mapped import Mapped
from fhir_mappings.medication_codes import Drug, Resolver, Resource, recognise
from smartapp.domain import MedicationExposure


def resource_ref(resource: Resource) -> str:
    rtype, rid = resource.get("resourceType"), resource.get("id")
    return f"{rtype}/{rid}" if isinstance(rid, str) and rid else f"{rtype}/(no id)"


SKIP = {
    "MedicationRequest": frozenset({"entered-in-error", "cancelled"}),
    "MedicationDispense": frozenset({"entered-in-error", "cancelled", "declined"}),
    "MedicationAdministration": frozenset({"entered-in-error", "not-done"}),
}
NOT_ORDERS = frozenset({"plan", "proposal", "option"})
ONGOING = frozenset({"active", "on-hold", "draft", "unknown", ""})
Source = Literal["request", "dispense", "administration"]


@dataclass
class _Reading:
    """Shared state while one resource is read into exposures."""

    ref: str
    source: Source
    status: str
    drug: Drug
    out: Mapped

    def issue(self, problem: str, dose: bool = False) -> None:
        relevant = self.drug.antipsychotic if dose else bool(self.drug.ingredients)
        if relevant or self.drug.unknown_antipsychotic:
            self.out.issue(self.ref, f"{self.drug.display}: {problem}")

    def add(
        self, start: date | None, end: date | None, dose: InstructionDose, **extra: Any
    ) -> None:
        self.out.medications.append(
            MedicationExposure(
                ref=self.ref,
                source=self.source,
                display=self.drug.display,
                ingredients=self.drug.ingredients,
                recognised_by=self.drug.recognised_by,
                status=self.status,
                start=start,
                end=end,
                daily_dose_mg=dose.daily_mg,
                long_acting=self.drug.long_acting,
                interval_dose_mg=dose.interval_mg,
                interval_days=dose.interval_days,
                **extra,
            )
        )


def _start(
    resource: Resource, rtype: str, resolve: Resolver, source: Source, out: Mapped
) -> _Reading | None:
    status = resource.get("status")
    status = status if isinstance(status, str) else ""
    if status in SKIP[rtype]:
        return None
    ref = resource_ref(resource)
    drug = recognise(resource, resolve)
    if drug is None:
        out.unmapped.append(ref)
        return _Reading(ref, source, status, Drug((), None, ""), out)
    reading = _Reading(ref, source, status, drug, out)
    if drug.unknown_antipsychotic:
        reading.issue(
            f"antipsychotic (ATC {drug.unknown_antipsychotic}) whose ingredient is not recognised:"
            " left out of dose and TRS checks"
        )
    return reading


def _instructions(resource: Resource, reading: _Reading, key: str) -> list[dict[str, Any]]:
    value = resource.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        reading.issue(f"{key} is not a list", dose=True)
        return []
    return [d for d in value if isinstance(d, dict)]


def read_request(resource: Resource, resolve: Resolver, out: Mapped) -> None:
    """A MedicationRequest: one exposure per (sequential) phase of its dosage instructions."""
    mark = out.mark()
    reading = _start(resource, "MedicationRequest", resolve, "request", out)
    if reading is None:
        return
    proposed = reading.status == "draft"
    if resource.get("intent") in NOT_ORDERS and not proposed:
        out.rewind(mark)  # not an order: not even its unrecognised drug is worth a word
        return
    if not reading.drug.display:
        return
    authored = timing.parse_date(resource.get("authoredOn"))
    request = resource.get("dispenseRequest")
    validity = request.get("validityPeriod") if isinstance(request, dict) else None
    valid_from = timing.parse_date(validity.get("start")) if isinstance(validity, dict) else None
    first = valid_from or authored
    fallback = first.day if first else None
    instructions = _instructions(resource, reading, "dosageInstruction")
    phases = timing.phases(instructions) if instructions else [[]]
    for number, group in enumerate(phases):
        dose = read_group(group, *reading.drug.dosing)
        if dose.problem:
            reading.issue(dose.problem, dose=True)
        start, end = timing.span(group, fallback)
        last = number == len(phases) - 1
        if last and end is None and reading.status not in ONGOING and start is not None:
            days = supply_days(resource.get("dispenseRequest"), dose.per_day)
            if days is None:
                reading.issue(
                    f"{reading.status} order with no end date or supply: coverage taken as"
                    " its first day only"
                )
            end = timing.add_days(start, days or 1)
        start, end = _checked(reading, start, end, proposed)
        authored_day = authored.day if authored else None
        reading.add(start, end, dose, proposed=proposed, authored=authored_day)
        fallback = end


def _checked(
    reading: _Reading, start: date | None, end: date | None, proposed: bool
) -> tuple[date | None, date | None]:
    if start is None:
        if not proposed:
            reading.issue("no start date (boundsPeriod, validityPeriod or authoredOn)")
        return None, end
    if end is not None and end <= start:
        reading.issue(f"coverage ends ({end}) before it starts ({start}): taken as one day")
        return start, timing.add_days(start, 1)
    return start, end


def read_dispense(resource: Resource, resolve: Resolver, out: Mapped) -> None:
    """A MedicationDispense covers ``daysSupply`` days from when it was handed over."""
    reading = _start(resource, "MedicationDispense", resolve, "dispense", out)
    if reading is None or not reading.drug.display:
        return
    handed = timing.parse_date(resource.get("whenHandedOver")) or timing.parse_date(
        resource.get("whenPrepared")
    )
    instructions = _instructions(resource, reading, "dosageInstruction")
    dose = (
        read_group(instructions, *reading.drug.dosing)
        if instructions
        else InstructionDose(None, None)
    )
    if dose.problem:
        reading.issue(dose.problem, dose=True)
    supply = timing.days_supply(resource.get("daysSupply"))
    days = supply or quantity_days(resource.get("quantity"), dose.per_day)
    start = handed.day if handed else None
    end = timing.add_days(start, days) if start is not None and days else None
    if start is not None and end is None:
        reading.issue("dispense with no days supply: coverage taken as the day handed over only")
        end = timing.add_days(start, 1)
    start, end = _checked(reading, start, end, False)
    reading.add(start, end, dose, days_supply=days)


def read_administration(resource: Resource, resolve: Resolver, out: Mapped) -> None:
    """A MedicationAdministration covers its day, or a long-acting injection's interval."""
    reading = _start(resource, "MedicationAdministration", resolve, "administration", out)
    if reading is None or not reading.drug.display:
        return
    period = resource.get("effectivePeriod")
    when = timing.parse_date(resource.get("effectiveDateTime")) or (
        timing.parse_date(period.get("start")) if isinstance(period, dict) else None
    )
    until = timing.parse_date(period.get("end")) if isinstance(period, dict) else None
    start = when.day if when else None
    end = max(until.end_exclusive(), start) if until and start else start
    dose = InstructionDose(None, None)
    if reading.drug.long_acting:
        dosage = resource.get("dosage")
        dose = read_instruction(
            {"dose": dosage.get("dose")} if isinstance(dosage, dict) else None,
            reading.drug.strength,
            True,
            reading.drug.lai_interval_days,
        )
        if dose.problem:
            reading.issue(dose.problem, dose=True)
        if start is not None and dose.interval_days:
            end = timing.add_days(start, dose.interval_days)
    if start is not None and (end is None or end <= start):
        end = timing.add_days(start, 1)
    start, end = _checked(reading, start, end, False)
    reading.add(start, end, dose)


_READERS: dict[str, Callable[[Resource, Resolver, Mapped], None]] = {
    "MedicationRequest": read_request,
    "MedicationDispense": read_dispense,
    "MedicationAdministration": read_administration,
}


def map_medication(
    resource: dict[str, Any], resolve: Callable[[str], dict[str, Any] | None]
) -> Mapped:
    """Map one MedicationRequest, MedicationDispense or MedicationAdministration.

    Never raises on odd input: a value of the wrong type becomes a ``DataIssue``."""
    out = Mapped()
    map_medication_into(resource, resolve, out)
    return out


def map_medication_into(
    resource: dict[str, Any], resolve: Callable[[str], dict[str, Any] | None], out: Mapped
) -> None:
    """``map_medication`` adding to ``out``; a malformed resource leaves only its issue."""
    if not isinstance(resource, dict):
        return
    reader = _READERS.get(str(resource.get("resourceType")))
    if reader is None:
        return
    mark = out.mark()
    try:
        reader(resource, resolve, out)
    except (TypeError, ValueError, AttributeError, KeyError, ArithmeticError) as exc:
        out.rewind(mark)
        out.issue(resource_ref(resource), f"malformed {resource.get('resourceType')}: {exc}")
