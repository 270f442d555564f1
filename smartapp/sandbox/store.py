"""The sandbox's FHIR data: every synthetic patient's resources in memory (issue 5 item 1).

Built once from ``smartapp.synthetic.scenarios`` and read-only afterwards, so the threaded demo
server reads it without locks. Each resource belongs to at most one patient compartment (its
``subject`` or ``patient`` reference, or itself for a Patient); resources outside every
compartment (Medication) are shared.

A scenario whose bundle carries a failed search (an OperationOutcome with ``search.mode``
``outcome`` whose diagnostics start ``<Type>?``) keeps that failure: searches of that type for
that patient answer with the same outcome, so the story ("the Observation search timed out")
is told by the sandbox as it would be by a real EHR.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from smartapp.synthetic.scenario import Scenario

Resource = dict[str, Any]
PATIENT_REFERENCE = re.compile(r"(?:.*/)?Patient/([A-Za-z0-9\-.]{1,64})")
FAILED_SEARCH = re.compile(r"([A-Z][A-Za-z]+)\?")
COMPARTMENT_FIELDS = ("subject", "patient")


class StoreError(ValueError):
    """A bundle cannot be held as given (a resource without type or id, a duplicate)."""


@dataclass(frozen=True)
class SandboxPatient:
    """A patient of the picker: the synthetic scenario and how the chart names the patient."""

    id: str
    display_name: str
    gender: str | None
    birth_date: str | None
    story: str
    profile: str
    as_of: str
    expected_codes: tuple[str, ...]


def patient_of(resource: Mapping[str, Any]) -> str | None:
    """The id of the patient whose compartment holds ``resource``, or None."""
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) else None
    for name in COMPARTMENT_FIELDS:
        value = resource.get(name)
        reference = value.get("reference") if isinstance(value, dict) else None
        match = PATIENT_REFERENCE.fullmatch(reference) if isinstance(reference, str) else None
        if match:
            return match.group(1)
    return None


def display_name(patient: Mapping[str, Any]) -> str:
    names = patient.get("name")
    first = names[0] if isinstance(names, list) and names and isinstance(names[0], dict) else {}
    given = " ".join(g for g in first.get("given", []) if isinstance(g, str))
    family = first.get("family") if isinstance(first.get("family"), str) else ""
    return " ".join(p for p in (given, family) if p) or str(patient.get("id", "unnamed"))


class FhirStore:
    """Resources by type and id, each patient's compartment, and failed searches."""

    def __init__(self) -> None:
        self._resources: dict[tuple[str, str], Resource] = {}
        self._by_type: dict[str, list[Resource]] = {}
        self._owner: dict[tuple[str, str], str] = {}
        self._failed: dict[tuple[str, str], Resource] = {}
        self._patients: dict[str, SandboxPatient] = {}

    @classmethod
    def from_scenarios(cls, scenarios: Iterable[Scenario] | None = None) -> FhirStore:
        """Every registered synthetic scenario (or the ones given), in registry order."""
        if scenarios is None:
            from smartapp.synthetic.scenarios import all_scenarios

            scenarios = all_scenarios()
        store = cls()
        for scenario in scenarios:
            store.add_scenario(scenario)
        return store

    def add_scenario(self, scenario: Scenario) -> None:
        self.add_bundle(scenario.bundle())
        patient = self.read("Patient", scenario.name)
        if patient is None:
            raise StoreError(f"scenario {scenario.name}: no Patient with the scenario's name")
        gender, birth = patient.get("gender"), patient.get("birthDate")
        self._patients[scenario.name] = SandboxPatient(
            id=scenario.name,
            display_name=display_name(patient),
            gender=gender if isinstance(gender, str) else None,
            birth_date=birth if isinstance(birth, str) else None,
            story=scenario.story,
            profile=scenario.profile,
            as_of=scenario.as_of.isoformat(),
            expected_codes=tuple(sorted(scenario.expected_codes)),
        )

    def add_bundle(self, bundle: Mapping[str, Any]) -> int:
        """Hold every entry's resource; returns how many were added. Failed searches
        (OperationOutcome entries) are remembered, not held as resources."""
        entries = bundle.get("entry")
        if bundle.get("resourceType") != "Bundle" or not isinstance(entries, list):
            raise StoreError("not a FHIR Bundle with entries")
        resources = [e["resource"] for e in entries if isinstance(e, dict) and "resource" in e]
        patient = next((patient_of(r) for r in resources if r.get("resourceType") == "Patient"),
                       None)  # fmt: skip
        added = 0
        for resource in resources:
            if resource.get("resourceType") == "OperationOutcome":
                self._remember_failure(resource, patient)
            else:
                self.add(resource)
                added += 1
        return added

    def add(self, resource: Resource) -> None:
        rtype, rid = resource.get("resourceType"), resource.get("id")
        if not isinstance(rtype, str) or not isinstance(rid, str) or not rid:
            raise StoreError("a resource without resourceType or id")
        if (rtype, rid) in self._resources:
            raise StoreError(f"{rtype}/{rid} is already held")
        self._resources[(rtype, rid)] = resource
        self._by_type.setdefault(rtype, []).append(resource)
        owner = patient_of(resource)
        if owner is not None:
            self._owner[(rtype, rid)] = owner

    def _remember_failure(self, outcome: Resource, patient: str | None) -> None:
        for issue in outcome.get("issue") or []:
            text = issue.get("diagnostics") if isinstance(issue, dict) else None
            match = FAILED_SEARCH.match(text) if isinstance(text, str) else None
            if match and patient is not None:
                self._failed[(patient, match.group(1))] = outcome

    # Reading ----------------------------------------------------------------------------

    def read(self, resource_type: str, resource_id: str) -> Resource | None:
        return self._resources.get((resource_type, resource_id))

    def owner(self, resource_type: str, resource_id: str) -> str | None:
        """The patient whose compartment holds the resource; None when shared or unknown."""
        return self._owner.get((resource_type, resource_id))

    def of_type(self, resource_type: str) -> list[Resource]:
        """Every resource of a type, in the order loaded (a stable order for paging)."""
        return list(self._by_type.get(resource_type, ()))

    def in_compartment(self, patient_id: str, resource_type: str) -> list[Resource]:
        return [
            r for r in self._by_type.get(resource_type, ())
            if self._owner.get((resource_type, r["id"])) == patient_id
        ]  # fmt: skip

    def failed_search(self, patient_id: str, resource_type: str) -> Resource | None:
        """The OperationOutcome a search of this type for this patient answers with, if any."""
        return self._failed.get((patient_id, resource_type))

    def resource_types(self) -> list[str]:
        return sorted(self._by_type)

    def patients(self) -> list[SandboxPatient]:
        return list(self._patients.values())

    def patient(self, patient_id: str) -> SandboxPatient | None:
        return self._patients.get(patient_id)

    def __len__(self) -> int:
        return len(self._resources)
