"""Shared fixtures: small FHIR builders for tests and the HL7 R4 examples package."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = [
    "tests.fhir_server_fixture",
    "tests.postgres_fixture",
    "tests.oauth_server_fixture",
    # One Playwright driver for the whole session: two sync drivers cannot run in one thread.
    "tests.browser_fixture",
]

CACHE = Path(__file__).parent / ".cache"
HL7_EXAMPLES = "hl7.fhir.r4.examples@4.0.1"


def bundle(*resources: dict[str, Any], type_: str = "collection") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": type_,
        "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(resources)],
    }


def patient(pid: str = "p1") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "birthDate": "1990-05-01"}


def clozapine_order(
    oid: str, start: str, tablets: int = 2, pid: str = "p1", status: str = "active"
) -> dict[str, Any]:
    """Clozapine 100 mg tablets (RxNorm SCD 197535), ``tablets`` twice daily."""
    return {
        "resourceType": "MedicationRequest",
        "id": oid,
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": start,
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "197535",
                    "display": "clozapine 100 MG Oral Tablet",
                }
            ]
        },
        "dosageInstruction": [
            {
                "timing": {
                    "repeat": {"boundsPeriod": {"start": start}},
                    "code": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation",
                                "code": "BID",
                            }
                        ]
                    },
                },
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": tablets,
                            "unit": "tablet",
                            "system": "http://unitsofmeasure.org",
                            "code": "{tbl}",
                        }
                    }
                ],
            }
        ],
    }


def anc(oid: str, when: str, value: float, unit: str = "10*9/L", pid: str = "p1") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": "751-8",
                    "display": "Neutrophils [#/volume] in Blood by Automated count",
                }
            ]
        },
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }


@pytest.fixture(scope="session")
def hl7_examples() -> Path:
    """The official HL7 FHIR R4 examples package, fetched from npm once and cached (not
    committed). A failed fetch fails the tests that need it: CI must run them."""
    target = CACHE / "hl7-r4-examples"
    done = target / ".complete"
    if done.exists():
        return target / "package"
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["npm", "pack", HL7_EXAMPLES, "--silent"],
        cwd=target,
        check=True,
        capture_output=True,
        timeout=600,
    )
    archive = next(target.glob("hl7.fhir.r4.examples-*.tgz"))
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    archive.unlink()
    done.touch()
    return target / "package"
