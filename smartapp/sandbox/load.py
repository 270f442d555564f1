"""The synthetic patients on any FHIR R4 server (issue 5 item 2: ``smartapp sandbox load`` and
``smartapp sandbox list``), so the app can be tried in public sandboxes (SMART Health IT
launcher, Epic and Oracle Health developer sandboxes, a HAPI server).

Each patient's Bundle goes in as transaction Bundles of PUTs by ``Type/id``
(``fhir_load.load_bundle``): loading twice leaves one copy of every resource. What a scenario
holds only to stand for a failed search (an ``OperationOutcome``, a searchset entry of mode
``outcome``) is not patient data and is left out; draft orders are kept, as an EHR keeps
orders not yet signed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from smartapp.fhir_client import FhirClient
from smartapp.fhir_load import load_bundle
from smartapp.synthetic import scenarios
from smartapp.synthetic.scenario import Scenario

Json = dict[str, Any]
NOT_DATA = frozenset({"OperationOutcome"})


@dataclass(frozen=True)
class Loaded:
    """One patient written to the server: its scenario, Patient id and resource count."""

    name: str
    patient_id: str
    resources: int

    def line(self) -> str:
        return f"loaded {self.name}: Patient/{self.patient_id}, {self.resources} resources"


def stories() -> list[tuple[str, str]]:
    """``(name, story)`` of every synthetic patient, in the scenarios' order."""
    return [(s.name, s.story) for s in scenarios.all_scenarios()]


def select(names: Sequence[str] = ()) -> list[Scenario]:
    """The scenarios named (all when none); an unknown name raises KeyError naming it."""
    if not names:
        return list(scenarios.all_scenarios())
    return [scenarios.get(name) for name in dict.fromkeys(names)]


def _is_data(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
        return False
    search = entry.get("search")
    if isinstance(search, dict) and search.get("mode") == "outcome":
        return False
    return entry["resource"].get("resourceType") not in NOT_DATA


def loadable(bundle: Json) -> Json:
    """The Bundle with only the entries that are patient data."""
    return {**bundle, "entry": [e for e in bundle.get("entry", []) if _is_data(e)]}


def patient_id(bundle: Json) -> str:
    ids = [
        e["resource"].get("id")
        for e in bundle.get("entry", [])
        if e["resource"].get("resourceType") == "Patient"
    ]
    if len(ids) != 1 or not isinstance(ids[0], str):
        raise ValueError(f"expected one Patient with an id, found {len(ids)}")
    return ids[0]


def load_patients(
    client: FhirClient,
    chosen: Iterable[Scenario],
    progress: Callable[[Loaded], object] | None = None,
) -> list[Loaded]:
    """PUT every chosen patient's data into the server behind ``client``; ``progress`` is told
    of each patient as it is done. A refused transaction raises ``FhirError`` (patients loaded
    before it stay loaded: running again completes the load, as every write is a PUT)."""
    done = []
    for scenario in chosen:
        bundle = loadable(scenario.bundle())
        count = load_bundle(client, bundle)
        loaded = Loaded(scenario.name, patient_id(bundle), count)
        done.append(loaded)
        if progress is not None:
            progress(loaded)
    return done
