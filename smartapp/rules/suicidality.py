"""The suicidal-behaviour indication for clozapine (rulebook §10) [R3].

``clozapine-suicidality-indication`` (info): schizophrenia or schizoaffective disorder, a
history of suicidal behaviour (active or resolved: a history is what counts), and no
clozapine course in force or proposed. Clozapine is the only drug indicated to reduce
recurrent suicidal behaviour (InterSePT).
"""

from __future__ import annotations

from smartapp.domain import ConditionFact, PatientRecord
from smartapp.rules.courses import ClozapineHistory
from smartapp.rules.findings import Finding
from smartapp.rules.ruleset import RuleContext

_TRIAL = "suicidality.intersept"


def evaluate_suicidality(
    record: PatientRecord, history: ClozapineHistory, ctx: RuleContext
) -> list[Finding]:
    """Rulebook §10, ``clozapine-suicidality-indication`` [R3]."""
    if history.current is not None:
        return []
    diagnoses = _known(record, ctx.rules.strings("suicidality.diagnoses"), ctx)
    behaviour = _known(record, ctx.rules.strings("suicidality.behaviour"), ctx)
    if not diagnoses or not behaviour:
        return []
    evidence = tuple(dict.fromkeys(c.ref for c in (*diagnoses, *behaviour)))
    return [
        Finding(
            code="clozapine-suicidality-indication",
            severity="info",
            summary="History of suicidal behaviour in schizophrenia: clozapine reduces "
            "recurrent suicidal behaviour",
            detail=_detail(diagnoses, behaviour, ctx),
            source=ctx.rules.cite(f"{_TRIAL}.hazard_ratio"),
            evidence=evidence,
        )
    ]


def _known(
    record: PatientRecord, concepts: tuple[str, ...], ctx: RuleContext
) -> list[ConditionFact]:
    """Conditions of the given concepts, leaving out any whose onset is after ``as_of``."""
    wanted = set(concepts)
    return [
        c
        for c in record.conditions
        if c.concept in wanted and (c.onset is None or c.onset <= ctx.as_of)
    ]


def _detail(
    diagnoses: list[ConditionFact], behaviour: list[ConditionFact], ctx: RuleContext
) -> str:
    r = ctx.rules
    n = r.days(f"{_TRIAL}.n")
    hr, low, high = (r.num(f"{_TRIAL}.{k}") for k in ("hazard_ratio", "ci_low", "ci_high"))
    on_cloz = r.days(f"{_TRIAL}.attempts_clozapine")
    on_olz = r.days(f"{_TRIAL}.attempts_olanzapine")
    dx = ", ".join(sorted({c.display or c.concept for c in diagnoses}))
    events = ", ".join(
        f"{c.display or c.concept}{'' if c.active else ' (resolved)'}" for c in behaviour
    )
    return (
        f"Diagnosis: {dx}. Suicidal behaviour: {events}. The patient is not on clozapine.\n\n"
        "Clozapine is the only drug indicated to reduce recurrent suicidal behaviour in "
        f"schizophrenia or schizoaffective disorder. InterSePT (n = {n}, clozapine vs "
        f"olanzapine over 2 years): hazard ratio {hr:g} (95 % CI {low:g}-{high:g}) for "
        f"suicidal behaviour; suicide attempts {on_cloz} vs {on_olz}."
    )
