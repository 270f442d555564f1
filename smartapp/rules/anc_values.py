"""ANC values: the series the schedules run on, BEN status and the US category tables.

- ANC series (rulebook §2.6, L6): reported absolute counts, plus ANC = WBC × (neutrophil % +
  band %) / 100 for specimen times with no reported absolute count.
- BEN status (rulebook §2.5): a recognised Condition or the clinician's own statement.
- Categories (rulebook §2.3 / §2.4, L1 Tables 1–2): general and BEN tables.
- Full blood count points for the UK traffic lights (rulebook §3): WBC and neutrophils of one
  specimen time, either of which may be missing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from smartapp.domain import LabResult, PatientRecord
from smartapp.rules.ruleset import Ruleset

AncCategory = Literal["normal", "mild", "moderate", "severe", "ben-neutropenia", "ben-severe"]

ANC_UNIT = "/uL"
BEN_CONCEPT = "ben"
BEN_STATEMENT = "ben-confirmed"


def is_ben(record: PatientRecord) -> tuple[bool, tuple[str, ...]]:
    """BEN from an active ``ben`` Condition or a clinician statement ``ben-confirmed``
    (rulebook §2.5). The latest statement wins, so a clinician can also withdraw BEN; a
    resolved Condition does not count, because the BEN table is the less strict one."""
    statements = sorted(
        (s for s in record.statements if s.kind == BEN_STATEMENT), key=lambda s: s.recorded
    )
    if statements:
        latest = statements[-1]
        ref = (latest.ref or f"statement:{latest.author}",)
        if latest.value.strip().lower() != "true":
            return False, ref
        conditions = tuple(c.ref for c in record.conditions if c.concept == BEN_CONCEPT)
        return True, ref + conditions
    refs = tuple(c.ref for c in record.conditions if c.concept == BEN_CONCEPT and c.active)
    return bool(refs), refs


def evidence_of(result: LabResult) -> tuple[str, ...]:
    """The resources an ANC rests on: itself, or the WBC and differential it came from."""
    return result.derived_from or (result.ref,)


def _lowest_per_time(results: list[LabResult]) -> list[LabResult]:
    """One result per specimen time; where two disagree, the lower one (the safer)."""
    by_time: dict[datetime, LabResult] = {}
    for r in results:
        kept = by_time.get(r.when)
        if kept is None or r.value < kept.value:
            by_time[r.when] = r
    return sorted(by_time.values(), key=lambda r: (r.when, r.ref))


def _by_time(record: PatientRecord, concept: str, as_of: date) -> dict[datetime, LabResult]:
    return {r.when: r for r in _lowest_per_time(_upto(record.labs_of(concept), as_of))}


def _upto(results: list[LabResult], as_of: date) -> list[LabResult]:
    return [r for r in results if r.day <= as_of]


def derived_ancs(
    record: PatientRecord, as_of: date, reported: Collection[datetime] = ()
) -> list[LabResult]:
    """ANC = WBC × (neutrophil % + band %) / 100 at each specimen time that has a WBC and a
    neutrophil percentage but no ``reported`` count (rulebook §2.6, L6). Bands are added
    when reported."""
    neutrophils = _by_time(record, "neutrophil-pct", as_of)
    if not neutrophils:
        return []
    wbcs = _by_time(record, "wbc", as_of)
    bands = _by_time(record, "band-pct", as_of)
    derived: list[LabResult] = []
    for when, neut in neutrophils.items():
        wbc = wbcs.get(when)
        if wbc is None or when in reported:
            continue
        band = bands.get(when)
        percent = neut.value + (band.value if band is not None else 0.0)
        sources = (wbc.ref, neut.ref) + ((band.ref,) if band is not None else ())
        derived.append(
            LabResult(
                ref=neut.ref,
                concept="anc",
                value=wbc.value * percent / 100,
                unit=ANC_UNIT,
                when=when,
                date_only=wbc.date_only and neut.date_only,
                original=f"WBC {wbc.value:,.0f}/µL x {percent:g}% neutrophils",
                derived_from=sources,
            )
        )
    return derived


def anc_series(record: PatientRecord, as_of: date) -> list[LabResult]:
    """All ANC values up to ``as_of``, oldest first: reported counts, and derived ones for
    specimen times without a reported count (a reported count is preferred)."""
    reported = _lowest_per_time(_upto(record.labs_of("anc"), as_of))
    derived = derived_ancs(record, as_of, {r.when for r in reported})
    return sorted(reported + derived, key=lambda r: (r.when, r.ref)) if derived else reported


def normal_min(ben: bool, rules: Ruleset) -> float:
    return rules.num("anc.ben.normal_min" if ben else "anc.general.normal_min")


def category(value: float, ben: bool, rules: Ruleset) -> AncCategory:
    """Category of one ANC in the general (L1 Table 1) or BEN (L1 Table 2) table; each lower
    bound belongs to its own category (1,500 normal, 1,000 mild, 500 moderate)."""
    if ben:
        if value >= rules.num("anc.ben.normal_min"):
            return "normal"
        return "ben-neutropenia" if value >= rules.num("anc.ben.neutropenia_min") else "ben-severe"
    if value >= rules.num("anc.general.normal_min"):
        return "normal"
    if value >= rules.num("anc.general.mild_min"):
        return "mild"
    return "moderate" if value >= rules.num("anc.general.moderate_min") else "severe"


def category_citation(ben: bool) -> tuple[str, ...]:
    if ben:
        return ("anc.ben.normal_min", "anc.ben.neutropenia_min")
    return ("anc.general.normal_min", "anc.general.mild_min", "anc.general.moderate_min")


def baseline_window(
    series: list[LabResult],
    start: date,
    rules: Ruleset,
    days_path: str = "anc.baseline.recency_days",
) -> list[LabResult]:
    """Results in the window before a course starts: ``start - days`` to ``start``, both
    included (a count drawn on the first day is taken before the first dose)."""
    earliest = start - timedelta(days=rules.days(days_path))
    return [r for r in series if earliest <= r.day <= start]


def mean_value(results: list[LabResult]) -> float | None:
    return sum(r.value for r in results) / len(results) if results else None


@dataclass(frozen=True)
class FbcPoint:
    """WBC and neutrophil count of one specimen time (UK traffic lights); either may be
    missing, and the finding says which."""

    when: datetime
    wbc: LabResult | None
    neutrophils: LabResult | None

    @property
    def day(self) -> date:
        return self.when.date()

    @property
    def evidence(self) -> tuple[str, ...]:
        refs: list[str] = []
        if self.wbc is not None:
            refs.append(self.wbc.ref)
        if self.neutrophils is not None:
            refs.extend(evidence_of(self.neutrophils))
        return tuple(dict.fromkeys(refs))


def fbc_series(record: PatientRecord, as_of: date) -> list[FbcPoint]:
    """Full blood count points up to ``as_of``, oldest first, neutrophils reported or derived."""
    wbcs = _by_time(record, "wbc", as_of)
    neutrophils = {r.when: r for r in anc_series(record, as_of)}
    times = sorted(set(wbcs) | set(neutrophils))
    return [FbcPoint(t, wbcs.get(t), neutrophils.get(t)) for t in times]


def missing_context(record: PatientRecord, test: str, last_before: str | None) -> str:
    """Sentences for ``anc-missing``: the last count before the course, and any query that
    failed (the count may exist in the EHR without having reached us)."""
    text = (
        f" The last {test} on record, {last_before}, predates this course." if last_before else ""
    )
    if record.unavailable:
        failed = ", ".join(dict.fromkeys(record.unavailable))
        text += (
            f" Some data could not be retrieved ({failed}): a recent {test} may not have been seen."
        )
    return text
