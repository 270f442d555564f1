"""Domain records and contexts for the rule tests: one way to build a medication exposure, a
clozapine order, a lab result, a rule context and a rule's findings, so each test file only
states what differs (its dates, doses and defaults)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from smartapp.domain import LabResult, MedicationExposure, MedicationSource, PatientRecord
from smartapp.rules.courses import ClozapineHistory, clozapine_history
from smartapp.rules.findings import FINDING_CODES, Finding
from smartapp.rules.ruleset import Profile, RuleContext, Ruleset, default_ruleset

# Canonical unit of each lab concept (the contract between fhir_mappings and the rules).
UNITS = {
    "anc": "/uL",
    "wbc": "/uL",
    "neutrophil-pct": "%",
    "band-pct": "%",
    "clozapine": "ng/mL",
    "norclozapine": "ng/mL",
    "clozapine-total": "ng/mL",
    "troponin-i": "ng/L",
    "troponin-t": "ng/L",
    "crp": "mg/L",
    "weight": "kg",
    "bmi": "kg/m2",
    "hba1c": "%",
    "glucose": "mg/dL",
    "ldl": "mg/dL",
    "hdl": "mg/dL",
    "cholesterol": "mg/dL",
    "triglycerides": "mg/dL",
}
# RxNorm SCDs of clozapine oral tablets by strength in mg.
CLOZAPINE_TABLETS = {100: "rxnorm:197535", 25: "rxnorm:197536"}

R = TypeVar("R")


def at(day: date, hour: int = 9) -> datetime:
    """``day`` at ``hour``:00 UTC."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def medication(
    ref: str,
    drug: str | Sequence[str],
    dose: float | None,
    start: date | None,
    end: date | None = None,
    *,
    source: MedicationSource = "request",
    lai: tuple[float, float] | None = None,
    long_acting: bool = False,
    proposed: bool = False,
    status: str | None = None,
    authored: date | None = None,
    days_supply: float | None = None,
    display: str | None = None,
    recognised_by: str = "test",
) -> MedicationExposure:
    """An exposure to ``drug`` (one ingredient or several) at ``dose`` mg a day over
    [start, end). ``lai`` is a long-acting injection's (mg, every n days): its daily dose is
    mg / n. The status is "draft" for a proposed order and "active" otherwise, unless given."""
    names = (drug,) if isinstance(drug, str) else tuple(drug)
    return MedicationExposure(
        ref=ref,
        source=source,
        display=" / ".join(names) if display is None else display,
        ingredients=names,
        recognised_by=recognised_by,
        status=status or ("draft" if proposed else "active"),
        start=start,
        end=end,
        daily_dose_mg=lai[0] / lai[1] if lai else dose,
        long_acting=long_acting or lai is not None,
        interval_dose_mg=lai[0] if lai else None,
        interval_days=lai[1] if lai else None,
        proposed=proposed,
        authored=authored,
        days_supply=days_supply,
    )


def clozapine(
    ref: str,
    start: date | None,
    end: date | None = None,
    *,
    dose: float | None = 300,
    tablet_mg: int = 100,
    proposed: bool = False,
    source: MedicationSource = "request",
    authored: date | None = None,
    days_supply: float | None = None,
) -> MedicationExposure:
    """Clozapine ``tablet_mg`` mg tablets recognised by RxNorm, ``dose`` mg a day."""
    return medication(
        ref,
        "clozapine",
        dose,
        start,
        end,
        source=source,
        proposed=proposed,
        authored=authored,
        days_supply=days_supply,
        display=f"clozapine {tablet_mg} mg tablet",
        recognised_by=CLOZAPINE_TABLETS[tablet_mg],
    )


def lab_result(
    ref: str,
    concept: str,
    value: float,
    day: date,
    *,
    hour: int = 9,
    unit: str | None = None,
    uln: float | None = None,
    code: str = "",
    fasting: bool = False,
) -> LabResult:
    """A result of ``concept`` taken on ``day`` at ``hour``:00 UTC, in the concept's canonical
    unit unless ``unit`` says otherwise."""
    return LabResult(
        ref=ref,
        concept=concept,
        value=value,
        unit=UNITS[concept] if unit is None else unit,
        when=at(day, hour),
        uln=uln,
        code=code,
        fasting=fasting,
    )


def rule_context(
    as_of: date,
    *,
    profile: Profile = "us-fda",
    overrides: Mapping[str, Any] | None = None,
    rules: Ruleset | None = None,
    cpz_method: str = "gardner-2010",
) -> RuleContext:
    """The context a rule runs in: the shipped ruleset (or ``rules``) with any policy
    ``overrides``."""
    ruleset = rules or default_ruleset()
    if overrides:
        ruleset = ruleset.with_overrides(overrides)
    return RuleContext(as_of=as_of, profile=profile, rules=ruleset, cpz_method=cpz_method)


def apply(
    rule: Callable[[PatientRecord, ClozapineHistory, RuleContext], R],
    record: PatientRecord,
    ctx: RuleContext,
) -> R:
    """Run one rule on ``record`` with the clozapine history it is given in evaluation."""
    return rule(record, clozapine_history(record, ctx), ctx)


def well_formed(findings: Sequence[Finding]) -> None:
    """Every finding has a known code, a short summary, and says why: detail, source and
    evidence."""
    for f in findings:
        assert f.code in FINDING_CODES
        assert 0 < len(f.summary) < 140, f.summary
        assert f.detail and f.source and f.evidence, f


def one_per_code(findings: Sequence[Finding]) -> dict[str, Finding]:
    """Well-formed findings by code, at most one of each."""
    codes = [f.code for f in findings]
    assert len(codes) == len(set(codes)), "one finding per code"
    well_formed(findings)
    return {f.code: f for f in findings}
