"""Antipsychotic trials and their dose (rulebook §10 criteria 1-2, table 10.1) [R1, R2].

A trial is one non-clozapine antipsychotic taken over a continuous period: the orders of one
ingredient merged by coverage, split where ``trs.trial_gap_days`` (policy, 30) or more days
pass without an order. Oral and long-acting forms of one ingredient are the same drug (TRS
asks for two *different* antipsychotics), so a switch from oral haloperidol to haloperidol
decanoate continues one trial; each order is still judged against its own form's equivalent.

Orders (``source == "request"``) give the period and the dose; a drug known only from
dispensing or administration records takes its period from those instead.

Dose adequacy compares each order's rate (mg/day; interval dose / interval days for a
long-acting injection) with the rate equivalent to 600 mg/day chlorpromazine in the selected
method, falling back to the other method, then to locally configured values, else unknown.
Where two orders overlap the higher one counts, never their sum (a renewal overlapping its
predecessor is not a doubled dose). The time at adequate dose is the longest *continuous*
stretch with an adequate order in force: dose changes or uncovered days break it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from smartapp.domain import MedicationExposure, PatientRecord
from smartapp.rules.ruleset import RuleContext, RulesetError

CLOZAPINE = "clozapine"
_TOLERANCE = 1e-9
Span = tuple[date, date]


@dataclass(frozen=True)
class Trial:
    """One drug over one continuous period ``[start, end)``; ``end`` is clipped to the day
    after ``as_of``, and a trial that still covers ``as_of`` is ``ongoing``."""

    drug: str
    start: date
    end: date
    ongoing: bool
    orders: tuple[MedicationExposure, ...]
    period_from_orders: bool = True

    @property
    def evidence(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.ref for m in self.orders))


@dataclass(frozen=True)
class Equivalent:
    """The rate of one drug form equivalent to the reference chlorpromazine dose."""

    mg_per_day: float
    text: str  # ">= 6 mg/day" or ">= 150 mg every 28 days"
    path: str | None  # rule parameter it comes from; None when locally configured
    note: str | None = None  # why another method (or local configuration) was used


@dataclass(frozen=True)
class DoseAssessment:
    dose_adequate: bool | None
    max_daily_dose_mg: float | None
    cpz_equivalent_mg: float | None
    stretch: Span | None  # longest continuous stretch at adequate dose
    threshold_text: str | None
    reasons: tuple[str, ...]
    cited: tuple[str, ...]


def antipsychotics(ctx: RuleContext) -> frozenset[str]:
    """Non-clozapine antipsychotic ingredients: the list in the data plus every drug of
    the equivalence tables."""
    names = set(ctx.rules.strings("trs.antipsychotics"))
    for method in ctx.rules.strings("trs.cpz.methods"):
        prefix = f"trs.cpz.{method}.oral."
        names.update(p[len(prefix) :] for p in ctx.rules.paths(prefix))
    names.discard(CLOZAPINE)
    return frozenset(names)


def mg(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def dose_text(m: MedicationExposure) -> str | None:
    if m.long_acting and m.interval_dose_mg is not None and m.interval_days:
        return f"{mg(m.interval_dose_mg)} mg every {mg(m.interval_days)} days"
    return f"{mg(m.daily_dose_mg)} mg/day" if m.daily_dose_mg is not None else None


def daily_rate(m: MedicationExposure) -> float | None:
    """mg/day; for a long-acting injection the interval dose spread over its interval."""
    if m.long_acting and m.interval_dose_mg is not None and m.interval_days:
        return m.interval_dose_mg / m.interval_days
    return m.daily_dose_mg


def span(m: MedicationExposure, as_of: date, lai_interval_days: float | None = None) -> Span | None:
    """Half-open coverage up to ``as_of``. An order runs to its end (an open order through
    ``as_of``; one without a start is dated by when it was written); a dispense or an
    administration covers only its supply (``supply_days``), a day when that is unknown."""
    start = m.start if m.start is not None or m.source != "request" else m.authored
    if start is None or start > as_of:
        return None
    limit = as_of + timedelta(days=1)
    if m.source == "request":
        end = limit if m.end is None else min(m.end, limit)
    else:
        end = min(start + timedelta(days=supply_days(m, lai_interval_days) or 1), limit)
    return (start, max(end, start + timedelta(days=1)))


def supply_days(m: MedicationExposure, lai_interval_days: float | None = None) -> int | None:
    """Days one dispense (days' supply) or administration (an injection's dosing interval,
    else its order's: an injection's own period is the minutes it took; one day for anything
    else) covers; None when that cannot be read."""
    if m.source == "dispense":
        length = m.days_supply if m.days_supply and m.days_supply > 0 else _length(m)
    elif m.long_acting:
        length = m.interval_days or lai_interval_days or _length(m)
    else:
        length = _length(m) or 1
    return math.ceil(length) if length else None


def _length(m: MedicationExposure) -> int | None:
    if m.start is None or m.end is None or m.end <= m.start:
        return None
    return (m.end - m.start).days


def build_trials(record: PatientRecord, ctx: RuleContext) -> list[Trial]:
    """Every trial of a non-clozapine antipsychotic up to ``as_of``, oldest first."""
    drugs = antipsychotics(ctx)
    past = [m for m in record.medications if not m.proposed and span(m, ctx.as_of)]
    trials: list[Trial] = []
    for drug in sorted({i for m in past for i in m.ingredients if i in drugs}):
        mine = [m for m in past if m.has(drug)]
        orders = [m for m in mine if m.source == "request"]
        trials.extend(_split(drug, orders or mine, bool(orders), ctx))
    return sorted(trials, key=lambda t: (t.start, t.drug))


def _split(
    drug: str, exposures: list[MedicationExposure], from_orders: bool, ctx: RuleContext
) -> list[Trial]:
    gap_days = ctx.rules.days("trs.trial_gap_days")
    ordered = sorted(((s, m) for m in exposures if (s := span(m, ctx.as_of))), key=_by_span)
    groups: list[tuple[date, date, list[MedicationExposure]]] = []
    for (start, end), m in ordered:
        if groups and (start - groups[-1][1]).days < gap_days:
            first, last, members = groups[-1]
            groups[-1] = (first, max(last, end), [*members, m])
        else:
            groups.append((start, end, [m]))
    limit = ctx.as_of + timedelta(days=1)
    return [Trial(drug, s, e, e >= limit, tuple(members), from_orders) for s, e, members in groups]


def _by_span(item: tuple[Span, MedicationExposure]) -> tuple[date, date, str]:
    return (item[0][0], item[0][1], item[1].ref)


def method_label(method: str, ctx: RuleContext) -> str:
    return str(ctx.rules.value(f"trs.cpz.{method}.label"))


def check_method(ctx: RuleContext) -> str:
    if ctx.cpz_method not in ctx.rules.strings("trs.cpz.methods"):
        raise RulesetError(f"unknown chlorpromazine-equivalence method {ctx.cpz_method!r}")
    return ctx.cpz_method


def _table_value(path: str, ctx: RuleContext) -> Any:
    try:
        return ctx.rules.value(path)
    except RulesetError:
        return None


def _as_equivalent(value: Any, long_acting: bool) -> tuple[float, str] | None:
    if long_acting:
        if isinstance(value, dict) and _positive(value.get("mg")) and _positive(value.get("days")):
            rate = float(value["mg"]) / float(value["days"])
            return rate, f">= {mg(value['mg'])} mg every {mg(value['days'])} days"
        return None
    return (float(value), f">= {mg(value)} mg/day") if _positive(value) else None


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def equivalent(drug: str, long_acting: bool, ctx: RuleContext) -> Equivalent | str:
    """The drug form's equivalent of 600 mg/day chlorpromazine (table 10.1) [R2], or the
    reason it is unknown."""
    form = "lai" if long_acting else "oral"
    selected = check_method(ctx)
    others = [m for m in ctx.rules.strings("trs.cpz.methods") if m != selected]
    for method in [selected, *others]:
        path = f"trs.cpz.{method}.{form}.{drug}"
        found = _as_equivalent(_table_value(path, ctx), long_acting)
        if found is None:
            continue
        note = None
        if method != selected:
            note = (
                f"no {method_label(selected, ctx)} value for {_form_name(drug, long_acting)}; "
                f"used {method_label(method, ctx)}: {found[1].removeprefix('>= ')}"
            )
        return Equivalent(found[0], found[1], path, note)
    local = ctx.rules.value(f"trs.cpz.local_{form}")
    found = _as_equivalent(local.get(drug) if isinstance(local, dict) else None, long_acting)
    if found is not None:
        note = f"locally configured equivalent for {_form_name(drug, long_acting)}"
        return Equivalent(found[0], found[1], None, note)
    if drug in ctx.rules.strings("trs.no_agreed_equivalent"):
        return f"no agreed chlorpromazine equivalent for {_form_name(drug, long_acting)}"
    return f"no chlorpromazine equivalent for {_form_name(drug, long_acting)} in table 10.1"


def _form_name(drug: str, long_acting: bool) -> str:
    return f"{drug} long-acting injection" if long_acting else drug


def assess_dose(trial: Trial, ctx: RuleContext) -> DoseAssessment:
    """Criteria 1 and 2 inputs: the highest dose, its chlorpromazine equivalent, and the
    longest continuous stretch at >= ``trs.adequate_dose_cpz_mg`` [R1, R2]."""
    threshold = ctx.rules.num("trs.adequate_dose_cpz_mg")
    reference = ctx.rules.num("trs.cpz.reference_mg")
    reasons: list[str] = []
    cited: list[str] = []
    rated: list[tuple[float, float, MedicationExposure, Equivalent]] = []
    unknown = False
    for m in trial.orders:
        rate = daily_rate(m)
        eq = equivalent(trial.drug, m.long_acting, ctx)
        if isinstance(eq, str):
            unknown = True
            _add(reasons, f"dose criterion unknown: {eq}")
            continue
        _add(cited, eq.path)
        _add(reasons, eq.note)
        if rate is None:
            unknown = True
            _add(reasons, f"dose unknown for {m.ref}")
            continue
        rated.append((rate / eq.mg_per_day * reference, rate, m, eq))
    adequate = [r for r in rated if r[0] >= threshold * (1 - _TOLERANCE)]
    stretch = _longest(_merge(span(r[2], ctx.as_of) for r in adequate), trial)
    if not rated:
        return DoseAssessment(None, None, None, None, None, tuple(reasons), tuple(cited))
    cpz, rate, top, eq = max(rated, key=lambda r: (r[0], r[1]))
    shown = dose_text(top) or f"{mg(rate)} mg/day"
    if adequate:
        reasons.insert(0, f"highest dose {shown} = {mg(cpz)} mg/day chlorpromazine equivalent")
    else:
        reasons.insert(
            0,
            f"dose below {mg(threshold)} mg/day chlorpromazine equivalent: highest {shown} "
            f"= {mg(cpz)} mg/day (needs {eq.text})",
        )
    verdict = True if adequate else (None if unknown else False)
    threshold_eq = adequate[0][3] if adequate else eq
    return DoseAssessment(
        verdict, rate, cpz, stretch, threshold_eq.text, tuple(reasons), tuple(cited)
    )


def _add(items: list[str], item: str | None) -> None:
    if item is not None and item not in items:
        items.append(item)


def _merge(spans: Iterable[Span | None]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(s for s in spans if s is not None):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _longest(spans: list[Span], trial: Trial) -> Span | None:
    clipped = [(max(s, trial.start), min(e, trial.end)) for s, e in spans]
    valid = [(s, e) for s, e in clipped if e > s]
    return max(valid, key=lambda s: (s[1] - s[0]).days, default=None)
