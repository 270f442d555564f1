"""Clozapine drug interactions at prescribing (rulebook §7) [I1, I2, M3, G1].

Each interaction group is rule data (``interactions.<group>``: drugs, local extra drugs,
severity, wording, suggested labs). A group fires once, listing every interacting drug in force
on ``as_of`` (draft orders included), with the clozapine exposures and the interacting ones as
evidence. The summary names what is new when a draft order brings the two together.

The small wording helpers at the end are shared with ``dosing`` and ``constipation``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import get_args

from smartapp.domain import MedicationExposure, PatientRecord
from smartapp.rules.courses import CLOZAPINE, ClozapineHistory, current_daily_dose
from smartapp.rules.findings import Finding, LabAction
from smartapp.rules.medications import active_on
from smartapp.rules.ruleset import RuleContext, RulesetError

#: (finding code, rule-data group) in vocabulary order.
GROUPS: tuple[tuple[str, str], ...] = (
    ("interaction-cyp1a2-inhibitor", "cyp1a2_inhibitor"),
    ("interaction-inducer", "inducer"),
    ("interaction-agranulocytosis", "agranulocytosis"),
    ("interaction-anticholinergic", "anticholinergic"),
    ("interaction-valproate-titration", "valproate_titration"),
)

#: CDS Hooks 2.0: a card summary is under 140 characters.
SUMMARY_MAX = 139


def evaluate_interactions(
    record: PatientRecord, history: ClozapineHistory, ctx: RuleContext
) -> list[Finding]:
    """``interaction-*`` findings for a patient on (or being ordered) clozapine (§7)."""
    if history.current is None:
        return []
    clozapine = clozapine_in_force(record, history, ctx)
    findings: list[Finding] = []
    for code, group in GROUPS:
        if group == "valproate_titration" and _titration_day(history, ctx) is None:
            continue
        wanted = group_drugs(ctx, f"interactions.{group}")
        partners = active_on(record, ctx.as_of, wanted)
        if partners:
            findings.append(_finding(code, group, partners, clozapine, history, ctx))
    return findings


def _titration_day(history: ClozapineHistory, ctx: RuleContext) -> int | None:
    """Days since the current course started (day 0 = start; negative for a drafted course
    that starts later), when inside the valproate window [M3]; else None.

    A drafted clozapine order that starts a new course gets a course starting on its own
    start date (``courses.clozapine_history``), so it always falls inside the window.
    """
    course = history.current
    if course is None:
        return None
    day = (ctx.as_of - course.start).days
    return day if day <= ctx.rules.days("interactions.valproate_titration.window_days") else None


def _finding(
    code: str,
    group: str,
    partners: list[MedicationExposure],
    clozapine: list[MedicationExposure],
    history: ClozapineHistory,
    ctx: RuleContext,
) -> Finding:
    base = f"interactions.{group}"
    wanted = group_drugs(ctx, base)
    clozapine_new = any(m.proposed for m in clozapine)
    lines = [str(ctx.rules.value(f"{base}.advice"))]
    lines += [f"Interacting ({drug_name(m, wanted)}): {_describe(m)}" for m in partners]
    lines += [f"Clozapine: {_describe(m)}" for m in clozapine]
    lines += _group_detail(group, history, ctx)
    return Finding(
        code=code,
        severity=ctx.rules.value(f"{base}.severity"),
        summary=_summary(_effect(group, history, ctx), partners, wanted, clozapine_new),
        detail="\n".join(lines),
        source=ctx.rules.cite(*_cited(group, partners, ctx)),
        evidence=tuple(dict.fromkeys(m.ref for m in [*clozapine, *partners])),
        actions=lab_actions(ctx, f"{base}.actions"),
    )


def _effect(group: str, history: ClozapineHistory, ctx: RuleContext) -> str:
    effect = str(ctx.rules.value(f"interactions.{group}.effect"))
    if group != "valproate_titration" or history.current is None:
        return effect
    day = _titration_day(history, ctx) or 0
    when = f"course day {day}" if day >= 0 else f"starts {history.current.start.isoformat()}"
    return f"{effect} in titration ({when})"


def _cited(group: str, partners: list[MedicationExposure], ctx: RuleContext) -> list[str]:
    """The drug list, the local additions when one of them matched, and the group's number."""
    base = f"interactions.{group}"
    cited = [f"{base}.drugs"]
    published = set(ctx.rules.strings(f"{base}.drugs"))
    if any(not published.intersection(m.ingredients) for m in partners):
        cited.append(f"{base}.extra_drugs")
    extra = {"cyp1a2_inhibitor": "dose_divisor", "valproate_titration": "window_days"}
    if group in extra:
        cited.append(f"{base}.{extra[group]}")
    return cited


def _summary(
    effect: str, partners: list[MedicationExposure], wanted: Sequence[str], clozapine_new: bool
) -> str:
    new = _unique(drug_name(m, wanted) for m in partners if m.proposed)
    old = [n for n in _unique(drug_name(m, wanted) for m in partners) if n not in new]
    if new:
        head = f"New {name_list(new)} order{'s' if len(new) > 1 else ''}"
        head += f" (also on {name_list(old)})" if old else ""
    elif clozapine_new:
        head = f"New clozapine order with {name_list(old)}"
    else:
        head = f"{name_list(old)} with clozapine"
    return fit_summary(f"{head[:1].upper()}{head[1:]}: {effect}")


def _group_detail(group: str, history: ClozapineHistory, ctx: RuleContext) -> list[str]:
    if group == "cyp1a2_inhibitor":
        dose, refs = current_daily_dose(history, ctx.as_of)
        divisor = ctx.rules.num("interactions.cyp1a2_inhibitor.dose_divisor")
        if dose is None:
            return [
                "The clozapine dose in force could not be read: work out one-third of the "
                "actual dose before co-prescribing."
            ]
        return [
            f"One-third of the current clozapine dose of {format_mg(dose)} mg/day "
            f"({', '.join(refs)}) is "
            f"about {format_mg(dose / divisor)} mg/day."
        ]
    if group == "valproate_titration" and history.current is not None:
        day = _titration_day(history, ctx)
        window = ctx.rules.days("interactions.valproate_titration.window_days")
        return [
            f"Clozapine course start {history.current.start.isoformat()} (day {day} as of "
            f"{ctx.as_of.isoformat()}); titration window: days 0-{window}."
        ]
    return []


def _describe(m: MedicationExposure) -> str:
    facts = [] if m.daily_dose_mg is None else [dose_text(m)]
    if m.proposed:
        facts.append("new draft order")
    elif m.start is not None:
        facts.append(f"since {m.start.isoformat()}")
    return f"{m.display or m.ref} ({'; '.join(facts) or 'in force'}) [{m.ref}]"


# Helpers shared with dosing and constipation.


def clozapine_in_force(
    record: PatientRecord, history: ClozapineHistory, ctx: RuleContext
) -> list[MedicationExposure]:
    """Clozapine exposures in force on ``as_of`` (drafts included); the current course's
    latest exposure when none is (so evidence is never empty)."""
    found = active_on(record, ctx.as_of, (CLOZAPINE,))
    if found or history.current is None:
        return found
    latest = max(history.current.exposures, key=lambda m: (m.start is not None, m.start, m.ref))
    return [latest]


def group_drugs(ctx: RuleContext, base: str) -> tuple[str, ...]:
    """A drug group's published list plus its local additions (``<base>.extra_drugs``)."""
    return ctx.rules.strings(f"{base}.drugs") + ctx.rules.strings(f"{base}.extra_drugs")


def lab_actions(ctx: RuleContext, path: str) -> tuple[LabAction, ...]:
    allowed: tuple[LabAction, ...] = get_args(LabAction)
    actions: list[LabAction] = []
    for name in ctx.rules.strings(path):
        match = next((a for a in allowed if a == name), None)
        if match is None:
            raise RulesetError(f"{path}: unknown lab action {name!r}")
        actions.append(match)
    return tuple(actions)


def drug_name(m: MedicationExposure, wanted: Sequence[str]) -> str:
    """The exposure's ingredients that belong to ``wanted`` (``sulfamethoxazole/trimethoprim``)."""
    names = [i for i in m.ingredients if i in wanted]
    return "/".join(names) if names else m.display or m.ref


def name_list(names: Sequence[str], shown: int = 3) -> str:
    """``a``, ``a and b``, ``a, b and c``, ``a, b, c and 2 more``."""
    if len(names) > shown:
        return f"{', '.join(names[:shown])} and {len(names) - shown} more"
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def dose_text(m: MedicationExposure) -> str:
    return "dose unknown" if m.daily_dose_mg is None else f"{format_mg(m.daily_dose_mg)} mg/day"


def format_mg(value: float) -> str:
    """``12.5``, ``300``, ``1,000``, ``6.25``: no spurious decimals."""
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def fit_summary(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1].rstrip() + "…"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
