"""What a mapping function returns: domain objects plus the problems met on the way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhir_mappings.fhir_values import reference
from smartapp.domain import (
    ConditionFact,
    DataIssue,
    LabResult,
    MedicationExposure,
    RatingScore,
    SmokingObservation,
)


@dataclass
class Mapped:
    """Domain objects read from one or more resources.

    ``issues`` are resources that matter clinically but could not be read (an antipsychotic
    order without a readable dose, an ANC with an unknown unit); ``unmapped`` are references to
    resources of a kind we handle that carried nothing we could recognise (kept for the
    ``data-unmapped`` count, not as an error)."""

    medications: list[MedicationExposure] = field(default_factory=list)
    labs: list[LabResult] = field(default_factory=list)
    smoking: list[SmokingObservation] = field(default_factory=list)
    conditions: list[ConditionFact] = field(default_factory=list)
    ratings: list[RatingScore] = field(default_factory=list)
    issues: list[DataIssue] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)

    def mark(self) -> tuple[int, ...]:
        """Where each list ends now, for ``rewind``."""
        return (
            len(self.medications), len(self.labs), len(self.smoking), len(self.conditions),
            len(self.ratings), len(self.issues), len(self.unmapped),
        )  # fmt: skip

    def rewind(self, mark: tuple[int, ...]) -> None:
        """Drop what was added since ``mark``: the partial output of a resource that turned
        out to be malformed half-way through."""
        lists: tuple[list[Any], ...] = (
            self.medications, self.labs, self.smoking, self.conditions,
            self.ratings, self.issues, self.unmapped,
        )  # fmt: skip
        for items, end in zip(lists, mark, strict=True):
            del items[end:]

    def extend(self, other: Mapped) -> None:
        self.medications.extend(other.medications)
        self.labs.extend(other.labs)
        self.smoking.extend(other.smoking)
        self.conditions.extend(other.conditions)
        self.ratings.extend(other.ratings)
        self.issues.extend(other.issues)
        self.unmapped.extend(other.unmapped)

    def issue(self, resource: str, problem: str) -> None:
        self.issues.append(DataIssue(resource, problem))


# What reading a resource with a value of the wrong type or shape raises.
MALFORMED = (TypeError, ValueError, AttributeError, KeyError, IndexError)

Reader = Callable[[dict[str, Any], str, Mapped], None]


def read_guarded(kind: str, resource: Any, out: Mapped, read: Reader) -> None:
    """``read(resource, "Kind/id", out)``, adding to ``out``. A resource that is not a JSON
    object, or turns out malformed half-way through, leaves only its issue: what it had added
    is taken back."""
    if not isinstance(resource, dict):
        out.issue(f"{kind}/(unreadable)", f"{kind} is not a JSON object")
        return
    ref = reference(kind, resource)
    mark = out.mark()
    try:
        read(resource, ref, out)
    except MALFORMED as exc:
        out.rewind(mark)
        out.issue(ref, f"malformed {kind} ({type(exc).__name__})")
