"""Clozapine levels and the clozapine/norclozapine ratio (rulebook §5) [T1, T2, T3].

The latest clozapine level (trough, ng/mL) of the current course is placed in one band:
``level-low`` < 350, ``level-therapeutic`` 350-600, ``level-high`` > 600 and < 1,000,
``level-alert`` >= 1,000 [T1]. When a norclozapine of the same specimen exists (same calendar day
by policy), the mass ratio C/N gives ``ratio-low`` below 0.5 and ``ratio-high`` above 3 [T2];
0.5 and 3.0 themselves give no ratio finding.
"""

from __future__ import annotations

from datetime import date

from smartapp.domain import LabResult, PatientRecord
from smartapp.rules.courses import ClozapineHistory
from smartapp.rules.findings import SEVERITIES, Finding, LabAction, Severity
from smartapp.rules.ruleset import RuleContext, RulesetError

LEVEL = "clozapine"
NORCLOZAPINE = "norclozapine"
UNIT = "ng/mL"
REPEAT: tuple[LabAction, ...] = ("clozapine-level",)


def _exact(value: float) -> float:
    """Strip float noise from unit conversion so that boundaries compare as written."""
    return round(value, 9)


def _num(value: float) -> str:
    return f"{round(value, 2):g}"


def course_levels(record: PatientRecord, start: date, as_of: date, concept: str) -> list[LabResult]:
    """Results of ``concept`` in ng/mL from ``start`` to ``as_of``, oldest first."""
    return [
        lab for lab in record.labs_of(concept) if start <= lab.day <= as_of and lab.unit == UNIT
    ]


def latest_level(record: PatientRecord, start: date, as_of: date) -> LabResult | None:
    levels = course_levels(record, start, as_of, LEVEL)
    return levels[-1] if levels else None


def paired_norclozapine(
    record: PatientRecord, level: LabResult, ctx: RuleContext
) -> LabResult | None:
    """The norclozapine of the same specimen: same ``when`` if there is one, else the closest
    within ``levels.ratio.pairing_max_days`` calendar days (policy)."""
    tolerance = ctx.rules.days("levels.ratio.pairing_max_days")
    candidates = [
        lab
        for lab in record.labs_of(NORCLOZAPINE)
        if lab.unit == UNIT and abs((lab.day - level.day).days) <= tolerance
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda lab: (abs((lab.when - level.when).total_seconds()), lab.ref))


def evaluate_levels(
    record: PatientRecord, history: ClozapineHistory, ctx: RuleContext
) -> list[Finding]:
    """Rulebook §5: the latest level of the current course and its C/N ratio."""
    course = history.current
    if course is None:
        return []
    level = latest_level(record, course.start, ctx.as_of)
    if level is None:
        return []
    nor = paired_norclozapine(record, level, ctx)
    ratio = level.value / nor.value if nor is not None and nor.value > 0 else None
    findings = [_level_finding(level, nor, ratio, ctx)]
    if nor is not None and ratio is not None:
        found = _ratio_finding(level, nor, ratio, ctx)
        if found is not None:
            findings.append(found)
    return findings


def _band(value: float, ctx: RuleContext) -> tuple[str, Severity, str]:
    r = ctx.rules
    low, high = r.num("levels.therapeutic_min_ng_ml"), r.num("levels.therapeutic_max_ng_ml")
    alert = r.num("levels.alert_ng_ml")
    v = _exact(value)
    if v >= alert:
        return "level-alert", "critical", "levels.alert_ng_ml"
    if v > high:
        return "level-high", "warning", "levels.therapeutic_max_ng_ml"
    if v >= low:
        return "level-therapeutic", "info", "levels.therapeutic_max_ng_ml"
    return "level-low", _low_severity(ctx), "levels.therapeutic_min_ng_ml"


def _low_severity(ctx: RuleContext) -> Severity:
    value = ctx.rules.value("levels.low_severity")
    for severity in SEVERITIES:
        if value == severity:
            return severity
    raise RulesetError(f"levels.low_severity {value!r} is not a severity")


def _level_finding(
    level: LabResult, nor: LabResult | None, ratio: float | None, ctx: RuleContext
) -> Finding:
    code, severity, path = _band(level.value, ctx)
    r = ctx.rules
    low, high = (
        _num(r.num("levels.therapeutic_min_ng_ml")),
        _num(r.num("levels.therapeutic_max_ng_ml")),
    )
    alert = _num(r.num("levels.alert_ng_ml"))
    meaning = {
        "level-low": f"below the response threshold of {low} ng/mL",
        "level-therapeutic": f"within the target range {low}-{high} ng/mL",
        "level-high": f"above the target range ({low}-{high} ng/mL), below the alert level",
        "level-alert": f"at or above the laboratory alert level of {alert} ng/mL",
    }[code]
    advice = {
        "level-low": "If the response is inadequate: check adherence, that the sample was a "
        "12-hour trough, smoking and enzyme inducers; consider a dose increase and repeat the "
        "level.",
        "level-therapeutic": "No change needed on the level alone.",
        "level-high": "Watch for dose-related effects (sedation, hypersalivation, constipation, "
        "tachycardia, seizures); review the dose and repeat the level.",
        "level-alert": "Toxicity and seizure risk: review the dose now, look for a cause "
        "(recent smoking cessation, CYP1A2 inhibitors such as fluvoxamine or ciprofloxacin, "
        "infection or inflammation) and repeat the level.",
    }[code]
    detail = (
        f"Clozapine {_num(level.value)} ng/mL on {level.day} ({level.ref}) is {meaning}. "
        f"{advice}\n{_ratio_text(nor, ratio, ctx)}"
    )
    evidence = (level.ref,) + ((nor.ref,) if nor is not None else ())
    return Finding(
        code=code,
        severity=severity,
        summary=f"Clozapine level {_num(level.value)} ng/mL on {level.day}: {meaning}",
        detail=detail,
        source=r.cite(path),
        evidence=evidence,
        actions=() if code == "level-therapeutic" else REPEAT,
    )


def _ratio_text(nor: LabResult | None, ratio: float | None, ctx: RuleContext) -> str:
    if nor is None:
        return "No norclozapine on the same specimen: C/N ratio not available."
    if ratio is None:
        return f"Norclozapine {_num(nor.value)} ng/mL ({nor.ref}): C/N ratio not computable."
    lo = _num(ctx.rules.num("levels.ratio.typical_min"))
    hi = _num(ctx.rules.num("levels.ratio.typical_max"))
    return (
        f"Norclozapine {_num(nor.value)} ng/mL ({nor.ref}): C/N ratio {_num(ratio)} "
        f"(typical {lo}-{hi})."
    )


def _ratio_finding(
    level: LabResult, nor: LabResult, ratio: float, ctx: RuleContext
) -> Finding | None:
    r = ctx.rules
    low, high = r.num("levels.ratio.low_below"), r.num("levels.ratio.high_above")
    value = _exact(ratio)
    if value < low:
        code, path, side = "ratio-low", "levels.ratio.low_below", f"< {_num(low)}"
        causes = (
            "non-adherence or a missed dose, or a sample that was not a trough (taken "
            "soon after a dose)"
        )
        advice = (
            "Ask about adherence and the timing of the last dose; repeat a 12-hour trough level."
        )
    elif value > high:
        code, path, side = "ratio-high", "levels.ratio.high_above", f"> {_num(high)}"
        causes = (
            "CYP1A2 inhibition (fluvoxamine, ciprofloxacin, enoxacin; recent smoking "
            "cessation), saturation of metabolism at high levels, or inflammation / "
            "infection"
        )
        advice = (
            "Review interacting drugs, smoking status and signs of infection (CRP); "
            "repeat the level."
        )
    else:
        return None
    typical = f"{_num(r.num('levels.ratio.typical_min'))}-{_num(r.num('levels.ratio.typical_max'))}"
    return Finding(
        code=code,
        severity="warning",
        summary=(
            f"C/N ratio {_num(ratio)} {side} on {level.day} (clozapine "
            f"{_num(level.value)}, norclozapine {_num(nor.value)} ng/mL)"
        ),
        detail=(
            f"Clozapine {_num(level.value)} ng/mL / norclozapine {_num(nor.value)} ng/mL "
            f"= {_num(ratio)} (typical {typical}). Possible causes: {causes}. {advice}"
        ),
        source=r.cite(path, "levels.ratio.typical_min"),
        evidence=(level.ref, nor.ref),
        actions=REPEAT,
    )
