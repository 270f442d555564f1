"""Every R4 example from the official HL7 package maps without an exception.

Unrecognised is fine; crashing is not. The package (npm ``hl7.fhir.r4.examples``) is fetched
by the ``hl7_examples`` fixture, not committed. Resources inside example Bundles and contained
resources count too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fhir_mappings.record import map_resources

TYPES = (
    "MedicationRequest",
    "Observation",
    "MedicationDispense",
    "MedicationAdministration",
    "Condition",
    "DiagnosticReport",
)


def _resources(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("resourceType") in TYPES:
            yield node
        for value in node.values():
            yield from _resources(value)
    elif isinstance(node, list):
        for item in node:
            yield from _resources(item)


def examples(folder: Path) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {t: [] for t in TYPES}
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith(TYPES) or path.name.startswith("Bundle-"):
            for resource in _resources(json.loads(path.read_text(encoding="utf-8"))):
                found[resource["resourceType"]].append(resource)
    return found


def test_every_hl7_r4_example_maps_without_exception(hl7_examples: Path) -> None:
    found = examples(hl7_examples)
    assert len(found["MedicationRequest"]) >= 20
    assert len(found["Observation"]) >= 100
    for rtype, resources in found.items():
        for resource in resources:
            try:
                map_resources([resource], {})
            except Exception as exc:  # the assertion is the test: name the failing example
                raise AssertionError(f"{rtype}/{resource.get('id')}: {exc!r}") from exc
