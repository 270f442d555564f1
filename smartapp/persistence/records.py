"""What the store hands in and out: plain dataclasses, free of SQLAlchemy (design.md,
Persistence). Nothing here holds a token or patient data beyond the patient id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class FeedbackItem:
    """One CDS Hooks 2.0 feedback entry: what the clinician did with a card.

    ``outcome`` is "accepted" or "overridden"; ``override_reason`` is the Coding the EHR sent
    (``reason`` of ``overrideReason``). ``service_id`` and ``received_at`` are filled in by the
    store when read back."""

    card: str
    outcome: str
    accepted_suggestions: tuple[str, ...]
    override_reason: dict[str, Any] | None
    user_comment: str | None
    outcome_timestamp: datetime
    service_id: str = ""
    received_at: datetime | None = None


@dataclass(frozen=True)
class AuditEvent:
    """One CDS hook call: which service, which hook instance, for whom, what we answered and
    how long it took. Never a token, never clinical data beyond the patient id."""

    service_id: str
    hook: str
    hook_instance: str
    patient_id: str | None
    finding_codes: tuple[str, ...]
    latency_ms: float
    status: int
    at: datetime
    fhir_server: str | None = None
