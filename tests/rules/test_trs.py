"""TRS status and trial ledger (rulebook §10): 42 vs 41 days, the 600 mg CPZ boundary, LAI
equivalents, DDD method, adherence 0.8 vs 0.79, the 20 % response boundary, one drug counted
once, the proposed third antipsychotic, and the status table."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from smartapp.domain import (
    ClinicianStatement,
    MedicationExposure,
    PatientRecord,
    RatingScore,
)
from smartapp.rules.findings import Finding, TrialAssessment, TrsSummary
from smartapp.rules.ruleset import RuleContext, RulesetError
from smartapp.rules.trs import evaluate_trs
from tests.rules.builders import apply, at, rule_context
from tests.rules.builders import medication as med

AS_OF = date(2026, 3, 1)
RISP = date(2024, 1, 1)
OLZ = date(2024, 6, 1)


def ctx(method: str = "gardner-2010", overrides: dict[str, object] | None = None) -> RuleContext:
    return rule_context(AS_OF, cpz_method=method, overrides=overrides)


def trial(
    drug: str,
    dose: float,
    start: date,
    length: int = 56,
    *,
    supplied: int | None = None,
    verdict: str | None = "no-response",
) -> tuple[list[MedicationExposure], list[ClinicianStatement]]:
    """An order of ``length`` days, a dispense covering ``supplied`` of them (all by
    default; 0 = no dispensing record) and a clinician's response statement."""
    end = start + timedelta(days=length)
    meds = [med(f"MedicationRequest/{drug}-{start}", drug, dose, start, end)]
    supply = length if supplied is None else supplied
    if supply:
        meds.append(
            med(f"MedicationDispense/{drug}-{start}", drug, dose, start, None, source="dispense",
                days_supply=supply)
        )  # fmt: skip
    said = []
    if verdict:
        said.append(
            ClinicianStatement("trial-response", f"{drug}:{verdict}", "Practitioner/dr", at(end),
                               f"Basic/{drug}-{start}")
        )  # fmt: skip
    return meds, said


def run(
    *parts: tuple[list[MedicationExposure], list[ClinicianStatement]],
    extra: tuple[MedicationExposure, ...] = (),
    ratings: tuple[RatingScore, ...] = (),
    context: RuleContext | None = None,
) -> tuple[Finding | None, TrsSummary]:
    c = context or ctx()
    record = PatientRecord(
        "Patient/p1",
        medications=(*(m for p in parts for m in p[0]), *extra),
        statements=tuple(s for p in parts for s in p[1]),
        ratings=ratings,
    )
    findings, summary = apply(evaluate_trs, record, c)
    assert len(findings) <= 1
    return (findings[0] if findings else None), summary


def only(summary: TrsSummary) -> TrialAssessment:
    [t] = summary.trials
    return t


# --- criteria on one trial -------------------------------------------------------------------


@pytest.mark.parametrize(("length", "adequate"), [(42, True), (41, False)])
def test_exactly_42_days_at_adequate_dose_is_an_adequate_duration(
    length: int, adequate: bool
) -> None:
    _, summary = run(trial("risperidone", 6, RISP, length))
    t = only(summary)
    assert t.duration_adequate is adequate
    assert t.adequate is adequate
    assert t.weeks_at_adequate_dose == round(length / 7, 1)
    need = "" if adequate else "needs "
    assert f"held {length / 7:.1f} weeks at >= 6 mg/day ({need}>= 6 weeks)" in t.reasons


@pytest.mark.parametrize(("dose", "adequate", "cpz"), [(6, True, 600), (5.9, False, 590)])
def test_the_dose_must_reach_600_mg_chlorpromazine_equivalent(
    dose: float, adequate: bool, cpz: float
) -> None:
    t = only(run(trial("risperidone", dose, RISP))[1])
    assert (t.dose_adequate, t.adequate, t.cpz_equivalent_mg, t.max_daily_dose_mg) == (
        adequate, adequate, cpz, dose
    )  # fmt: skip
    assert t.weeks_at_adequate_dose == (8.0 if adequate else 0.0)


def test_haloperidol_decanoate_150_mg_every_28_days_is_an_adequate_dose() -> None:
    depot = med("MedicationRequest/lai", "haloperidol", None, RISP, RISP + timedelta(days=84),
                lai=(150, 28))  # fmt: skip
    shots = tuple(
        med(f"MedicationAdministration/a{i}", "haloperidol", None, RISP + timedelta(days=28 * i),
            None, source="administration", lai=(150, 28))
        for i in range(3)
    )  # fmt: skip
    t = only(run(([depot, *shots], []))[1])
    assert t.dose_adequate is True
    assert t.cpz_equivalent_mg == 600
    assert t.adherence == 1.0
    assert t.weeks_at_adequate_dose == 12.0
    assert (
        t.reasons[0] == "highest dose 150 mg every 28 days = 600 mg/day chlorpromazine equivalent"
    )
    assert "MedicationAdministration/a2" in t.evidence


def test_the_ddd_method_changes_the_verdict_and_is_named_in_the_summary() -> None:
    finding, summary = run(trial("risperidone", 6, RISP), context=ctx("ddd-leucht-2016"))
    t = only(summary)
    assert (t.dose_adequate, t.cpz_equivalent_mg) == (False, 360)
    assert summary.method == "ddd-leucht-2016"
    assert finding is not None and "DDD method (Leucht 2016)" in finding.detail


def test_a_fallback_to_the_other_method_is_stated_in_the_reasons() -> None:
    t = only(run(trial("lurasidone", 120, RISP))[1])
    assert t.dose_adequate is True
    assert "no Gardner 2010 value for lurasidone; used DDD method (Leucht 2016): 120 mg/day" in (
        t.reasons
    )


def test_no_agreed_equivalent_leaves_the_dose_criterion_unknown() -> None:
    t = only(run(trial("brexpiprazole", 4, RISP))[1])
    assert (t.dose_adequate, t.adequate, t.cpz_equivalent_mg) == (None, False, None)
    assert "dose criterion unknown: no agreed chlorpromazine equivalent for brexpiprazole" in (
        t.reasons
    )


@pytest.mark.parametrize(
    ("supplied", "adherence", "adequate"), [(80, 0.8, True), (79, 0.79, False)]
)
def test_adherence_of_exactly_80_percent_is_enough(
    supplied: int, adherence: float, adequate: bool
) -> None:
    t = only(run(trial("risperidone", 6, RISP, 100, supplied=supplied))[1])
    assert t.adherence == adherence
    assert t.adequate is adequate


def test_no_dispensing_means_adherence_unknown_and_the_trial_is_not_adequate() -> None:
    t = only(run(trial("risperidone", 6, RISP, supplied=0))[1])
    assert t.adherence is None
    assert t.adequate is False
    assert "adherence unknown: no dispensing records" in t.reasons


# --- response --------------------------------------------------------------------------------


def panss(ref: str, day: date, value: float) -> RatingScore:
    return RatingScore(f"Observation/{ref}", "panss-total", value, at(day))


@pytest.mark.parametrize(("last", "response"), [(80, "responded"), (81, "none")])
def test_a_reduction_of_20_percent_is_a_response(last: float, response: str) -> None:
    scores = (
        panss("base", RISP - timedelta(days=3), 100),
        panss("end", RISP + timedelta(days=50), last),
    )
    t = only(run(trial("risperidone", 6, RISP, verdict=None), ratings=scores)[1])
    assert t.response == response
    assert t.adequate is (response == "none")
    assert {"Observation/base", "Observation/end"} <= set(t.evidence)


def test_the_last_score_in_the_trial_is_compared_with_the_baseline() -> None:
    scores = (
        panss("base", RISP, 100),
        panss("mid", RISP + timedelta(days=20), 70),
        panss("end", RISP + timedelta(days=55), 95),
        panss("after", RISP + timedelta(days=90), 40),
    )
    t = only(run(trial("risperidone", 6, RISP, verdict=None), ratings=scores)[1])
    assert t.response == "none"
    assert "PANSS total 100 on 2024-01-01 -> 95 on 2024-02-25 (5.0 % reduction" in t.reasons[-1]


@pytest.mark.parametrize(("days_before", "response"), [(14, "responded"), (15, "unknown")])
def test_the_baseline_must_be_at_most_14_days_before_the_start(
    days_before: int, response: str
) -> None:
    scores = (
        panss("old", RISP - timedelta(days=days_before), 100),
        panss("end", RISP + timedelta(days=50), 60),
    )
    t = only(run(trial("risperidone", 6, RISP, verdict=None), ratings=scores)[1])
    assert t.response == response
    if response == "unknown":
        assert t.reasons[-1] == (
            "response unknown: no PANSS score from 2023-12-18 to the start; "
            "no BPRS score from 2023-12-18 to the start"
        )


def test_bprs_is_used_when_there_is_no_panss() -> None:
    scores = (
        RatingScore("Observation/b1", "bprs-total", 50, at(RISP)),
        RatingScore("Observation/b2", "bprs-total", 45, at(RISP + timedelta(days=40))),
    )
    t = only(run(trial("risperidone", 6, RISP, verdict=None), ratings=scores)[1])
    assert t.response == "none"
    assert "BPRS total 50" in t.reasons[-1]


def test_a_clinician_statement_overrides_the_scores() -> None:
    scores = (panss("base", RISP, 100), panss("end", RISP + timedelta(days=50), 100))
    t = only(run(trial("risperidone", 6, RISP, verdict="responded"), ratings=scores)[1])
    assert t.response == "responded"
    assert t.adequate is False
    assert "Basic/risperidone-2024-01-01" in t.evidence


def test_no_scores_and_no_statement_leave_response_unknown() -> None:
    t = only(run(trial("risperidone", 6, RISP, verdict=None))[1])
    assert t.response == "unknown"
    assert t.adequate is True  # an unrecorded response does not disqualify the trial


# --- status ----------------------------------------------------------------------------------


def test_two_failed_adequate_trials_of_different_drugs_meet_trs() -> None:
    finding, summary = run(trial("risperidone", 6, RISP), trial("olanzapine", 20, OLZ))
    assert summary.status == "met"
    assert finding is not None
    assert (finding.code, finding.severity) == ("trs-met", "info")
    assert finding.summary == "TRS criteria met (2 adequate trials failed): consider clozapine"
    assert "MedicationRequest/olanzapine-2024-06-01" in finding.evidence
    assert "third non-clozapine antipsychotic helps is small" in finding.detail
    assert finding.source.startswith("R1 ")


def test_a_proposed_third_antipsychotic_turns_trs_met_into_a_warning() -> None:
    third = med("MedicationRequest/draft", "quetiapine", 750, AS_OF, None, proposed=True)
    finding, _ = run(trial("risperidone", 6, RISP), trial("olanzapine", 20, OLZ), extra=(third,))
    assert finding is not None
    assert (finding.code, finding.severity) == ("trs-met", "warning")
    assert finding.summary == (
        "TRS criteria met (2 adequate trials failed): consider clozapine rather than a third "
        "antipsychotic"
    )
    assert "MedicationRequest/draft" in finding.evidence


def test_on_clozapine_trs_is_still_reported_as_info() -> None:
    cloz = med("MedicationRequest/cloz", "clozapine", 300, date(2025, 1, 1), None)
    third = med("MedicationRequest/draft", "aripiprazole", 10, AS_OF, None, proposed=True)
    finding, _ = run(
        trial("risperidone", 6, RISP), trial("olanzapine", 20, OLZ), extra=(cloz, third)
    )
    assert finding is not None
    assert (finding.code, finding.severity) == ("trs-met", "info")
    assert finding.summary == "TRS criteria met (2 adequate trials failed); clozapine is prescribed"


def test_unknown_adherence_makes_trs_possible() -> None:
    finding, summary = run(trial("risperidone", 6, RISP, supplied=0), trial("olanzapine", 20, OLZ))
    assert summary.status == "possible"
    assert finding is not None and (finding.code, finding.severity) == ("trs-possible", "info")


def test_trs_possible_becomes_a_warning_when_a_third_antipsychotic_is_proposed() -> None:
    third = med("MedicationRequest/draft", "quetiapine", 750, AS_OF, None, proposed=True)
    finding, _ = run(
        trial("risperidone", 6, RISP, supplied=0), trial("olanzapine", 20, OLZ), extra=(third,)
    )
    assert finding is not None and (finding.code, finding.severity) == ("trs-possible", "warning")


def test_an_unrecorded_response_gives_possible_by_default_and_met_when_configured() -> None:
    parts = (trial("risperidone", 6, RISP, verdict=None), trial("olanzapine", 20, OLZ))
    assert run(*parts)[1].status == "possible"
    lenient = ctx(overrides={"trs.met_requires_documented_nonresponse": False})
    assert run(*parts, context=lenient)[1].status == "met"


def test_two_trials_of_the_same_drug_count_as_one_drug() -> None:
    finding, summary = run(trial("risperidone", 6, RISP), trial("risperidone", 8, OLZ))
    assert [t.adequate for t in summary.trials] == [True, True]
    assert summary.status == "not-met"
    assert finding is not None and (finding.code, finding.severity) == ("trs-not-met", "info")
    assert finding.summary == "TRS criteria not met: 1 of 2 adequate antipsychotic trials"


def test_oral_and_depot_haloperidol_are_one_drug() -> None:
    depot = med("MedicationRequest/lai", "haloperidol", None, OLZ, OLZ + timedelta(days=84),
                lai=(150, 28))  # fmt: skip
    shots = [
        med(f"MedicationAdministration/a{i}", "haloperidol", None, OLZ + timedelta(days=28 * i),
            None, source="administration", lai=(150, 28))
        for i in range(3)
    ]  # fmt: skip
    _, summary = run(trial("haloperidol", 10, RISP), ([depot, *shots], []))
    assert len(summary.trials) == 2
    assert summary.status == "not-met"


def test_documented_poor_adherence_does_not_count_towards_possible() -> None:
    _, summary = run(trial("risperidone", 6, RISP, supplied=20), trial("olanzapine", 20, OLZ))
    assert summary.status == "not-met"


def test_a_responded_trial_does_not_count() -> None:
    _, summary = run(
        trial("risperidone", 6, RISP, verdict="responded"), trial("olanzapine", 20, OLZ)
    )
    assert summary.status == "not-met"


def test_no_antipsychotic_trial_is_not_applicable_and_silent() -> None:
    cloz = med("MedicationRequest/cloz", "clozapine", 300, date(2025, 1, 1), None)
    finding, summary = run(extra=(cloz,))
    assert finding is None
    assert summary == TrsSummary("not-applicable", (), "gardner-2010")


def test_a_statement_applies_to_the_latest_trial_of_that_drug_started_before_it() -> None:
    first, _ = trial("risperidone", 6, RISP, verdict=None)
    second, said = trial("risperidone", 6, OLZ, verdict="responded")
    _, summary = run((first + second, said))
    assert [t.response for t in summary.trials] == ["unknown", "responded"]


def test_every_summary_is_shorter_than_140_characters() -> None:
    third = med("MedicationRequest/draft", "quetiapine", 750, AS_OF, None, proposed=True)
    cases = [
        run(trial("risperidone", 6, RISP), trial("olanzapine", 20, OLZ), extra=(third,)),
        run(
            trial("risperidone", 6, RISP, supplied=0), trial("olanzapine", 20, OLZ), extra=(third,)
        ),
        run(trial("risperidone", 6, RISP, supplied=0), trial("olanzapine", 20, OLZ)),
        run(trial("risperidone", 6, RISP)),
    ]
    for finding, _ in cases:
        assert finding is not None
        assert 0 < len(finding.summary) < 140
        assert finding.detail


def test_an_unknown_equivalence_method_is_an_error() -> None:
    with pytest.raises(RulesetError):
        run(trial("risperidone", 6, RISP), context=ctx("made-up-2030"))


def test_adherence_just_below_80_percent_is_not_rounded_up_into_possible() -> None:
    # 199 of 250 days = 0.796: shown as 0.80 when rounded, but documented poor adherence
    _, summary = run(
        trial("risperidone", 6, RISP, 250, supplied=199, verdict=None),
        trial("olanzapine", 20, date(2025, 1, 1)),
    )
    first = summary.trials[0]
    assert first.adherence == pytest.approx(0.796)
    assert first.adequate is False
    assert "adherence 0.796: 199 of 250 days covered" in first.reasons[2]
    assert summary.status == "not-met"
