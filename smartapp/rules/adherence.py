"""Adherence during an antipsychotic trial as proportion of days covered (rulebook §10
criterion 3: >= 80 % of prescribed doses) [R1].

The window is the trial's longest continuous stretch at adequate dose (the whole trial when
the dose was never adequate). A dispense covers ``[handed over, + days' supply)``; an
administered long-acting injection covers its dosing interval (from the administration, else
from the trial's long-acting order); any other administration covers its own day. Each day
counts once however many supplies overlap it (overlapping supply is capped, not carried
forward), so early refills never raise the figure above what the records show.

No dispensing or administration record during the window means adherence is *unknown*, never
assumed: orders alone say what was prescribed, not what was taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from smartapp.domain import MedicationExposure, PatientRecord
from smartapp.rules.trials import Span, Trial, span, supply_days


@dataclass(frozen=True)
class Adherence:
    pdc: float | None  # 0-1, None when unknown
    window: Span
    evidence: tuple[str, ...]
    reasons: tuple[str, ...]


def supply_records(record: PatientRecord, drug: str, as_of: date) -> list[MedicationExposure]:
    """Dispenses and administrations of ``drug`` up to ``as_of``."""
    return [
        m
        for m in record.medications
        if m.has(drug)
        and m.source in ("dispense", "administration")
        and not m.proposed
        and m.start is not None
        and m.start <= as_of
    ]


def days_covered(spans: list[Span], window: Span) -> int:
    """Days of ``window`` covered by at least one span (overlaps counted once)."""
    start, end = window
    covered = 0
    cursor = start
    for s, e in sorted(spans):
        s, e = max(s, cursor), min(e, end)
        if e > s:
            covered += (e - s).days
            cursor = e
    return covered


def assess_adherence(trial: Trial, window: Span, record: PatientRecord, as_of: date) -> Adherence:
    """Proportion of days covered in ``window`` by the drug's dispenses and administrations."""
    supplies = supply_records(record, trial.drug, as_of)
    if not supplies:
        return Adherence(None, window, (), ("adherence unknown: no dispensing records",))
    lai_days = next(
        (m.interval_days for m in trial.orders if m.long_acting and m.interval_days), None
    )
    readable: list[tuple[Span, MedicationExposure]] = []
    unreadable: list[MedicationExposure] = []
    for m in supplies:
        sp = span(m, as_of, lai_days) if supply_days(m, lai_days) else None
        if sp is None:
            if m.start is not None and window[0] <= m.start < window[1]:
                unreadable.append(m)
        elif sp[0] < window[1] and sp[1] > window[0]:
            readable.append((sp, m))
    first, last = window[0].isoformat(), (window[1] - timedelta(days=1)).isoformat()
    notes = [
        f"{m.ref}: days covered unknown (no days' supply or interval), left out" for m in unreadable
    ]
    if not readable:
        why = (
            f"adherence unknown: no readable dispensing or administration records {first} to {last}"
        )
        return Adherence(None, window, tuple(m.ref for m in unreadable), (why, *notes))
    covered = days_covered([sp for sp, _ in readable], window)
    total = (window[1] - window[0]).days
    pdc = covered / total
    kinds = _kinds([m for _, m in readable])
    reason = (
        f"adherence {pdc:.3g}: {covered} of {total} days covered by {len(readable)} {kinds}, "
        f"{first} to {last}"
    )
    evidence = tuple(dict.fromkeys(m.ref for _, m in readable))
    return Adherence(pdc, window, evidence, (reason, *notes))


def _kinds(items: list[MedicationExposure]) -> str:
    sources = {m.source for m in items}
    if sources == {"dispense"}:
        return "dispense(s)"
    if sources == {"administration"}:
        return "administration(s)"
    return "dispense(s)/administration(s)"
