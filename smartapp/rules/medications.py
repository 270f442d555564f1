"""Which medications are in force on a day: shared by the interaction, laxative and TRS rules.

A proposed (draft) order counts as in force from ``as_of`` (design.md, Contract 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from smartapp.domain import MedicationExposure, PatientRecord


def in_force(m: MedicationExposure, day: date) -> bool:
    if m.proposed:
        return True
    if m.start is None or m.start > day:
        return False
    return m.end is None or day < m.end


def active_on(
    record: PatientRecord, day: date, ingredients: Iterable[str] | None = None
) -> list[MedicationExposure]:
    """Exposures in force on ``day``, optionally only those containing one of
    ``ingredients``."""
    wanted = set(ingredients) if ingredients is not None else None
    return [
        m
        for m in record.medications
        if in_force(m, day) and (wanted is None or wanted.intersection(m.ingredients))
    ]
