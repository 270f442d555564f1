"""Treatment-resistant schizophrenia (rulebook §10) [R1, R2].

Each non-clozapine antipsychotic trial (``trials.py``) is judged on the four TRRIP criteria:
dose >= 600 mg/day chlorpromazine equivalent, held >= 6 weeks, adherence >= 80 %
(``adherence.py``), and no response (< 20 % reduction on PANSS/BPRS, or a clinician's
statement). A trial is ``adequate`` when it is a failed adequate trial: all four hold, an
unrecorded response included.

Status (§10 table), counted over *different* drugs (two trials of one drug are one drug):

- ``met``: >= 2 drugs with an adequate trial; with ``trs.met_requires_documented_nonresponse``
  (policy, default true) the non-response must be documented, not merely unrecorded;
- ``possible``: >= 2 drugs adequate in dose and duration whose adherence or response is not
  documented (documented non-adherence or a response rules a trial out);
- ``not-met``: otherwise; ``not-applicable`` (no finding) without any trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from smartapp.domain import ClinicianStatement, PatientRecord, RatingScore
from smartapp.rules.adherence import assess_adherence
from smartapp.rules.courses import ClozapineHistory
from smartapp.rules.findings import Finding, Severity, TrialAssessment, TrsSummary
from smartapp.rules.ruleset import RuleContext
from smartapp.rules.trials import (
    Trial,
    antipsychotics,
    assess_dose,
    build_trials,
    check_method,
    method_label,
    mg,
)

Response = Literal["none", "responded", "unknown"]
Status = Literal["met", "possible", "not-met", "not-applicable"]
_TOLERANCE = 1e-9
STATEMENT_KIND = "trial-response"
_VERDICTS: dict[str, Response] = {"responded": "responded", "no-response": "none"}


@dataclass(frozen=True)
class ResponseAssessment:
    response: Response
    reason: str
    evidence: tuple[str, ...] = ()


def evaluate_trs(
    record: PatientRecord, history: ClozapineHistory, ctx: RuleContext
) -> tuple[list[Finding], TrsSummary]:
    """TRS status and the trial ledger (rulebook §10) [R1, R2]."""
    method = check_method(ctx)
    trials = build_trials(record, ctx)
    assessed = tuple(assess_trial(t, trials, record, ctx) for t in trials)
    if not assessed:
        return [], TrsSummary("not-applicable", (), method)
    status = trs_status(assessed, ctx)
    return [_finding(status, assessed, record, history, ctx)], TrsSummary(status, assessed, method)


def assess_trial(
    trial: Trial, trials: list[Trial], record: PatientRecord, ctx: RuleContext
) -> TrialAssessment:
    """One trial against criteria 1-4 [R1]."""
    dose = assess_dose(trial, ctx)
    days = (dose.stretch[1] - dose.stretch[0]).days if dose.stretch else 0
    min_days = ctx.rules.days("trs.min_duration_days")
    duration_ok = days >= min_days
    window = dose.stretch or (trial.start, trial.end)
    adherence = assess_adherence(trial, window, record, ctx.as_of)
    response = assess_response(trial, trials, record, ctx)
    reasons = list(dose.reasons)
    if dose.threshold_text is not None:
        need = "" if duration_ok else "needs "
        reasons.insert(
            1,
            f"held {days / 7:.1f} weeks at {dose.threshold_text} ({need}>= {min_days / 7:g} weeks)",
        )
    if not trial.period_from_orders:
        reasons.append("no orders: period taken from dispensing/administration records")
    reasons.extend(adherence.reasons)
    reasons.append(response.reason)
    adherent = adherence.pdc is not None and _adherent(adherence.pdc, ctx)
    adequate = dose.dose_adequate is True and duration_ok and adherent
    adequate = adequate and response.response != "responded"
    return TrialAssessment(
        drug=trial.drug,
        start=trial.start,
        end=None if trial.ongoing else trial.end,
        weeks_at_adequate_dose=round(days / 7, 1),
        max_daily_dose_mg=None
        if dose.max_daily_dose_mg is None
        else round(dose.max_daily_dose_mg, 2),
        cpz_equivalent_mg=None if dose.cpz_equivalent_mg is None else round(dose.cpz_equivalent_mg),
        adherence=adherence.pdc,
        adequate=adequate,
        reasons=tuple(reasons),
        evidence=tuple(dict.fromkeys((*trial.evidence, *adherence.evidence, *response.evidence))),
        dose_adequate=dose.dose_adequate,
        duration_adequate=duration_ok,
        response=response.response,
    )


def _adherent(pdc: float, ctx: RuleContext) -> bool:
    return pdc >= ctx.rules.num("trs.min_adherence") - _TOLERANCE


def assess_response(
    trial: Trial, trials: list[Trial], record: PatientRecord, ctx: RuleContext
) -> ResponseAssessment:
    """Criterion 4: a clinician's ``trial-response`` statement, else the change from the
    baseline rating (at most ``trs.response_baseline_window_days`` before the start) to the
    last rating in the trial; >= ``trs.response_min_reduction`` is a response [R1]."""
    statement = _statement_for(trial, trials, record.statements, ctx.as_of)
    if statement is not None:
        verdict = _VERDICTS[statement.value.split(":", 1)[1].strip().lower()]
        word = "responded" if verdict == "responded" else "no response"
        reason = f"response: clinician recorded '{word}' on {statement.recorded.date()}"
        evidence = statement.ref or f"statement:{statement.author}"
        return ResponseAssessment(verdict, reason, (evidence,))
    missing: list[str] = []
    for scale in ctx.rules.strings("trs.response_scales"):
        found = _scale_response(trial, scale, record.ratings, ctx)
        if isinstance(found, ResponseAssessment):
            return found
        missing.append(found)
    return ResponseAssessment("unknown", "response unknown: " + "; ".join(missing))


def _statement_for(
    trial: Trial, trials: list[Trial], statements: tuple[ClinicianStatement, ...], as_of: date
) -> ClinicianStatement | None:
    """The latest statement about this drug whose most recent trial by then is this one."""
    mine: list[ClinicianStatement] = []
    for s in statements:
        drug, _, verdict = s.value.partition(":")
        day = s.recorded.date()
        if s.kind != STATEMENT_KIND or drug.strip().lower() != trial.drug or day > as_of:
            continue
        if verdict.strip().lower() not in _VERDICTS:
            continue
        started = [t for t in trials if t.drug == trial.drug and t.start <= day]
        if started and started[-1] is trial:
            mine.append(s)
    return max(mine, key=lambda s: (s.recorded, s.ref), default=None)


def _scale_response(
    trial: Trial, scale: str, ratings: tuple[RatingScore, ...], ctx: RuleContext
) -> ResponseAssessment | str:
    label = scale.split("-")[0].upper()
    window = ctx.rules.days("trs.response_baseline_window_days")
    scores = sorted((r for r in ratings if r.scale == scale), key=lambda r: (r.when, r.ref))
    earliest = trial.start - timedelta(days=window)
    baseline = [r for r in scores if earliest <= r.day <= trial.start]
    if not baseline:
        return f"no {label} score from {earliest} to the start"
    base = baseline[-1]
    later = [r for r in scores if base.day < r.day < trial.end]
    if not later:
        return f"no {label} score during the trial after the baseline"
    last = later[-1]
    floors = ctx.rules.value("trs.response_scale_floor")
    floor = float(floors.get(scale, 0)) if isinstance(floors, dict) else 0.0
    if base.value - floor <= 0:
        return f"{label} baseline {mg(base.value)} leaves no room to improve"
    reduction = (base.value - last.value) / (base.value - floor)
    needed = ctx.rules.num("trs.response_min_reduction")
    verdict: Response = "responded" if reduction >= needed - _TOLERANCE else "none"
    reason = (
        f"response: {label} total {mg(base.value)} on {base.day} -> {mg(last.value)} on "
        f"{last.day} ({reduction * 100:.1f} % reduction; >= {needed * 100:g} % is a response): "
        + ("responded" if verdict == "responded" else "no response")
    )
    return ResponseAssessment(verdict, reason, (base.ref, last.ref))


def trs_status(trials: tuple[TrialAssessment, ...], ctx: RuleContext) -> Status:
    """The §10 status table over different drugs [R1]."""
    needed = ctx.rules.days("trs.min_failed_drugs")
    if len(_met_drugs(trials, ctx)) >= needed:
        return "met"
    if len(_possible_drugs(trials, ctx)) >= needed:
        return "possible"
    return "not-met"


def _met_drugs(trials: tuple[TrialAssessment, ...], ctx: RuleContext) -> set[str]:
    documented = bool(ctx.rules.value("trs.met_requires_documented_nonresponse"))
    return {t.drug for t in trials if t.adequate and (t.response == "none" or not documented)}


def _possible_drugs(trials: tuple[TrialAssessment, ...], ctx: RuleContext) -> set[str]:
    return {
        t.drug
        for t in trials
        if t.dose_adequate is True
        and t.duration_adequate
        and t.response != "responded"
        and (t.adherence is None or _adherent(t.adherence, ctx))
    }


def _finding(
    status: Status,
    trials: tuple[TrialAssessment, ...],
    record: PatientRecord,
    history: ClozapineHistory,
    ctx: RuleContext,
) -> Finding:
    drugs = antipsychotics(ctx)
    proposed = [m for m in record.medications if m.proposed and drugs.intersection(m.ingredients)]
    on_clozapine = history.current is not None
    third = bool(proposed) and not on_clozapine
    summary, severity = _summary(status, trials, third, on_clozapine, ctx)
    evidence = tuple(
        dict.fromkeys([*(r for t in trials for r in t.evidence), *(m.ref for m in proposed)])
    )
    return Finding(
        code=f"trs-{status}",
        severity=severity,
        summary=summary,
        detail=_detail(status, trials, third, ctx),
        source=ctx.rules.cite("trs.min_failed_drugs", f"trs.cpz.{ctx.cpz_method}.label"),
        evidence=evidence,
    )


def _summary(
    status: Status,
    trials: tuple[TrialAssessment, ...],
    third: bool,
    on_clozapine: bool,
    ctx: RuleContext,
) -> tuple[str, Severity]:
    severity: Severity = "warning" if third and status in ("met", "possible") else "info"
    if status == "met":
        n = len(_met_drugs(trials, ctx))
        if on_clozapine:
            return (
                f"TRS criteria met ({n} adequate trials failed); clozapine is prescribed",
                severity,
            )
        if third:
            return (
                f"TRS criteria met ({n} adequate trials failed): "
                "consider clozapine rather than a third antipsychotic",
                severity,
            )
        return f"TRS criteria met ({n} adequate trials failed): consider clozapine", severity
    if status == "possible":
        n = len(_possible_drugs(trials, ctx))
        if third:
            return (
                f"TRS possible ({n} adequate-dose trials): "
                "consider clozapine before a third antipsychotic",
                severity,
            )
        return (
            f"TRS possible: {n} trials adequate in dose and duration; "
            "adherence or response undocumented",
            severity,
        )
    n = len(_possible_drugs(trials, ctx))
    needed = ctx.rules.days("trs.min_failed_drugs")
    return f"TRS criteria not met: {n} of {needed} adequate antipsychotic trials", severity


def _detail(
    status: Status, trials: tuple[TrialAssessment, ...], third: bool, ctx: RuleContext
) -> str:
    r = ctx.rules
    head = (
        f"Adequate trial: >= {mg(r.num('trs.adequate_dose_cpz_mg'))} mg/day chlorpromazine "
        f"equivalent ({method_label(ctx.cpz_method, ctx)}) for >= "
        f"{r.days('trs.min_duration_days') / 7:g} weeks, adherence >= "
        f"{r.num('trs.min_adherence') * 100:g} %, "
        f"< {r.num('trs.response_min_reduction') * 100:g} % improvement. "
        f"TRS needs {r.days('trs.min_failed_drugs')} different drugs."
    )
    lines = [head, "", "Trials:"]
    lines.extend(f"- {_trial_line(t)}" for t in trials)
    if status == "possible":
        lines += [
            "",
            "Document adherence (dispensing, injections) and response (PANSS/BPRS or a "
            "clinician assessment) to confirm.",
        ]
    if status in ("met", "possible"):
        lines += ["", str(r.value("trs.benefit_risk"))]
    if third:
        lines += ["", "A non-clozapine antipsychotic is being ordered."]
    return "\n".join(lines)


def _trial_line(t: TrialAssessment) -> str:
    end = "ongoing" if t.end is None else (t.end - timedelta(days=1)).isoformat()
    dose = (
        "dose unknown"
        if t.max_daily_dose_mg is None
        else f"highest {mg(t.max_daily_dose_mg)} mg/day"
    )
    cpz = "" if t.cpz_equivalent_mg is None else f" ({mg(t.cpz_equivalent_mg)} mg CPZ)"
    adh = "unknown" if t.adherence is None else f"{t.adherence:.3g}"
    verdict = "adequate, failed" if t.adequate else "not an adequate failed trial"
    return (
        f"{t.drug} {t.start} to {end}: {dose}{cpz}, {t.weeks_at_adequate_dose:.1f} weeks at "
        f"adequate dose, adherence {adh}, response {t.response}: {verdict}. " + "; ".join(t.reasons)
    )
