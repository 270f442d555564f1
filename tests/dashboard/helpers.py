"""Small domain records and the evaluation context for the dashboard tests."""

from __future__ import annotations

from datetime import date
from xml.etree.ElementTree import Element, fromstring

from smartapp.domain import (
    ClinicianStatement,
    LabResult,
    MedicationExposure,
    PatientRecord,
)
from smartapp.rules.evaluate import evaluate
from smartapp.rules.findings import Evaluation
from smartapp.rules.ruleset import Profile, RuleContext
from tests.rules.builders import at, lab_result, medication, rule_context

AS_OF = date(2026, 3, 1)
NS = "{http://www.w3.org/2000/svg}"


def clozapine(ref: str, start: date, end: date | None, mg: float | None) -> MedicationExposure:
    return medication(
        f"MedicationRequest/{ref}",
        "clozapine",
        mg,
        start,
        end,
        authored=start,
        recognised_by="rxnorm:2626",
    )


def lab(ref: str, concept: str, day: date, value: float, unit: str = "/uL") -> LabResult:
    return lab_result(f"Observation/{ref}", concept, value, day, unit=unit)


def ben_statement(value: str = "true") -> ClinicianStatement:
    return ClinicianStatement(
        "ben-confirmed", value, "Practitioner/dr", at(date(2026, 1, 1)), "statement:1"
    )


def record(*items: object, statements: tuple[ClinicianStatement, ...] = ()) -> PatientRecord:
    meds = tuple(i for i in items if isinstance(i, MedicationExposure))
    labs = tuple(i for i in items if isinstance(i, LabResult))
    return PatientRecord(patient="Patient/p1", medications=meds, labs=labs, statements=statements)


def ctx(profile: Profile = "us-fda", as_of: date = AS_OF) -> RuleContext:
    return rule_context(as_of, profile=profile)


def evaluated(rec: PatientRecord, profile: Profile = "us-fda") -> Evaluation:
    return evaluate(rec, AS_OF, profile)


def parse(svg: str) -> Element:
    return fromstring(svg)  # noqa: S314 - our own output, parsed to check it is well-formed


def find_all(root: Element, tag: str, cls: str | None = None) -> list[Element]:
    found = root.iter(f"{NS}{tag}")
    return [e for e in found if cls is None or cls in (e.get("class") or "").split()]
