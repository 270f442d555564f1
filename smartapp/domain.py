"""Domain model: what the clinical rules read, free of FHIR JSON and of HTTP.

``fhir_mappings`` builds these from FHIR R4 resources; ``smartapp.rules`` reads them and
returns findings. Everything here is immutable plain data.

Conventions:
- ``ref`` is a relative FHIR reference (``"Observation/o7"``) used as evidence.
- Coverage intervals are half-open: ``[start, end)``; ``end`` is the first day *not*
  covered, so the gap between two intervals is ``later.start - earlier.end`` days.
- Timestamps are timezone-aware UTC ``datetime``; a date-only FHIR value becomes midnight UTC
  and ``date_only`` records that the time is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

MedicationSource = Literal["request", "dispense", "administration"]
SmokingState = Literal["smoker", "non-smoker", "unknown"]


@dataclass(frozen=True)
class DataIssue:
    """A resource (or query) we could not read well enough to use in a decision."""

    resource: str
    problem: str


@dataclass(frozen=True)
class MedicationExposure:
    """One order, dispense or administration of a drug, reduced to what the rules need.

    ``ingredients`` holds canonical ingredient names from the code table (lower case, e.g.
    ``"clozapine"``, ``"sulfamethoxazole"``); empty when the drug was not recognised.
    ``recognised_by`` says how (``"rxnorm:197536"``, ``"atc:N05AH02"``, ``"text:clozaril"``).
    ``daily_dose_mg`` is the dose per day in mg; for a long-acting injection it is the
    interval dose divided by the interval in days, and ``interval_dose_mg`` /
    ``interval_days`` keep the original. ``None`` when the dose could not be read
    (a ``DataIssue`` says why).
    ``start``/``end`` are the coverage interval (half-open); ``end`` is ``None`` for an
    ongoing order with no known end.
    """

    ref: str
    source: MedicationSource
    display: str
    ingredients: tuple[str, ...]
    recognised_by: str | None
    status: str
    start: date | None
    end: date | None
    daily_dose_mg: float | None = None
    long_acting: bool = False
    interval_dose_mg: float | None = None
    interval_days: float | None = None
    proposed: bool = False
    authored: date | None = None
    days_supply: float | None = None

    def has(self, ingredient: str) -> bool:
        return ingredient in self.ingredients


@dataclass(frozen=True)
class LabResult:
    """A numeric result normalised to the concept's canonical unit.

    Concepts and canonical units (see ``fhir_mappings/data/labs.json``):
    ``anc`` /uL, ``wbc`` /uL, ``neutrophil-pct`` %, ``band-pct`` %, ``clozapine`` ng/mL,
    ``norclozapine`` ng/mL, ``clozapine-total`` ng/mL, ``troponin-i`` / ``troponin-t`` ng/L,
    ``crp`` mg/L, ``weight`` kg, ``bmi`` kg/m2, ``hba1c`` %, ``glucose`` mg/dL,
    ``ldl`` / ``hdl`` / ``cholesterol`` / ``triglycerides`` mg/dL.
    ``uln`` is the assay's upper limit of normal (referenceRange.high) in the same unit.
    ``derived_from`` lists the resources an ANC was computed from (WBC × neutrophil %).
    """

    ref: str
    concept: str
    value: float
    unit: str
    when: datetime
    date_only: bool = False
    uln: float | None = None
    original: str = ""
    code: str = ""
    derived_from: tuple[str, ...] = ()
    fasting: bool = False

    @property
    def day(self) -> date:
        return self.when.date()


@dataclass(frozen=True)
class SmokingObservation:
    """A smoking-status Observation (LOINC 72166-2) read into three states.

    ``e_cigarette_only`` marks a non-smoker who vapes: nicotine without smoke does not keep
    CYP1A2 induced (rulebook §6).
    """

    ref: str
    when: datetime
    state: SmokingState
    answer: str
    e_cigarette_only: bool = False

    @property
    def day(self) -> date:
        return self.when.date()


@dataclass(frozen=True)
class ConditionFact:
    """A recognised Condition. ``concept`` is one of ``schizophrenia``, ``schizoaffective``,
    ``suicidal-behaviour``, ``ben``, ``agranulocytosis``, ``myocarditis``."""

    ref: str
    concept: str
    display: str
    active: bool
    onset: date | None = None
    recognised_by: str | None = None


@dataclass(frozen=True)
class RatingScore:
    """A psychosis rating-scale total (PANSS, BPRS, CGI-S) used to judge response."""

    ref: str
    scale: str
    value: float
    when: datetime

    @property
    def day(self) -> date:
        return self.when.date()


@dataclass(frozen=True)
class ClinicianStatement:
    """Something a clinician told the app that the EHR lacks (e.g. BEN confirmed)."""

    kind: str
    value: str
    author: str
    recorded: datetime
    ref: str = ""


@dataclass(frozen=True)
class PatientRecord:
    """Everything known about one patient, as read from FHIR."""

    patient: str | None
    medications: tuple[MedicationExposure, ...] = ()
    labs: tuple[LabResult, ...] = ()
    smoking: tuple[SmokingObservation, ...] = ()
    conditions: tuple[ConditionFact, ...] = ()
    ratings: tuple[RatingScore, ...] = ()
    statements: tuple[ClinicianStatement, ...] = ()
    data_issues: tuple[DataIssue, ...] = ()
    unavailable: tuple[str, ...] = field(default=())
    unmapped: tuple[str, ...] = field(default=())
    birth_date: date | None = None

    def labs_of(self, *concepts: str) -> list[LabResult]:
        """Results of the given concepts, oldest first."""
        wanted = set(concepts)
        return sorted((r for r in self.labs if r.concept in wanted), key=lambda r: (r.when, r.ref))
