"""Antipsychotic trials and their dose (rulebook §10 criteria 1-2, table 10.1): gap splitting,
one drug across oral and long-acting forms, chlorpromazine equivalents with method fallback,
and the longest continuous stretch at adequate dose."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from smartapp.domain import MedicationExposure, PatientRecord
from smartapp.rules.ruleset import RuleContext, RulesetError
from smartapp.rules.trials import (
    Equivalent,
    Trial,
    antipsychotics,
    assess_dose,
    build_trials,
    equivalent,
)
from tests.rules.builders import medication as med
from tests.rules.builders import rule_context

AS_OF = date(2026, 3, 1)
START = date(2025, 1, 1)


def ctx(method: str = "gardner-2010", overrides: dict[str, object] | None = None) -> RuleContext:
    return rule_context(AS_OF, cpz_method=method, overrides=overrides)


def trials_of(*meds: MedicationExposure, context: RuleContext | None = None) -> list[Trial]:
    return build_trials(PatientRecord("Patient/p1", medications=meds), context or ctx())


def days(n: int) -> date:
    return START + timedelta(days=n)


# --- building trials -------------------------------------------------------------------------


@pytest.mark.parametrize(("gap", "count"), [(0, 1), (29, 1), (30, 2), (31, 2)])
def test_a_gap_of_thirty_days_or_more_splits_a_drug_into_two_trials(gap: int, count: int) -> None:
    found = trials_of(
        med("MedicationRequest/a", "risperidone", 6, START, days(60)),
        med("MedicationRequest/b", "risperidone", 6, days(60 + gap), days(120 + gap)),
    )
    assert len(found) == count
    assert found[0].start == START
    assert found[-1].end == days(120 + gap)


def test_clozapine_proposed_future_and_non_antipsychotic_exposures_are_not_trials() -> None:
    found = trials_of(
        med("MedicationRequest/c", "clozapine", 300, START, days(90)),
        med("MedicationRequest/v", "valproate", 1000, START, days(90)),
        med("MedicationRequest/d", "olanzapine", 20, None, None, proposed=True),
        med("MedicationRequest/f", "quetiapine", 750, AS_OF + timedelta(days=1), None),
    )
    assert found == []


def test_oral_and_long_acting_forms_of_one_ingredient_are_one_trial() -> None:
    found = trials_of(
        med("MedicationRequest/oral", "haloperidol", 10, START, days(30)),
        med("MedicationRequest/lai", "haloperidol", None, days(30), days(120), lai=(150, 28)),
    )
    assert [(t.drug, t.start, t.end) for t in found] == [("haloperidol", START, days(120))]
    assert found[0].evidence == ("MedicationRequest/oral", "MedicationRequest/lai")


def test_an_open_order_runs_through_as_of_and_the_trial_is_ongoing() -> None:
    [trial] = trials_of(med("MedicationRequest/a", "olanzapine", 20, START, None))
    assert trial.ongoing
    assert trial.end == AS_OF + timedelta(days=1)


def test_a_finished_trial_is_not_ongoing() -> None:
    [trial] = trials_of(med("MedicationRequest/a", "olanzapine", 20, START, days(50)))
    assert not trial.ongoing
    assert trial.end == days(50)


def test_an_order_without_a_start_is_dated_by_when_it_was_written() -> None:
    [trial] = trials_of(
        med("MedicationRequest/a", "olanzapine", 20, None, days(50), authored=START)
    )
    assert trial.start == START


def test_a_drug_known_only_from_dispensing_takes_its_period_from_the_supply() -> None:
    [trial] = trials_of(
        med("MedicationDispense/d1", "aripiprazole", 30, START, None, source="dispense",
            days_supply=28),
        med("MedicationDispense/d2", "aripiprazole", 30, days(28), None, source="dispense",
            days_supply=28),
    )  # fmt: skip
    assert not trial.period_from_orders
    assert (trial.start, trial.end) == (START, days(56))


def test_every_table_drug_is_an_antipsychotic_and_clozapine_is_not() -> None:
    drugs = antipsychotics(ctx())
    assert {"lurasidone", "asenapine", "pimozide", "brexpiprazole"} <= drugs
    assert "clozapine" not in drugs


# --- equivalents -----------------------------------------------------------------------------


def test_gardner_and_ddd_equivalents_come_from_table_10_1() -> None:
    gardner = equivalent("risperidone", False, ctx())
    ddd = equivalent("risperidone", False, ctx("ddd-leucht-2016"))
    assert isinstance(gardner, Equivalent) and isinstance(ddd, Equivalent)
    assert (gardner.mg_per_day, ddd.mg_per_day) == (6, 10)
    assert gardner.note is None


def test_a_drug_without_a_value_in_the_selected_method_falls_back_and_says_so() -> None:
    lurasidone = equivalent("lurasidone", False, ctx())
    assert isinstance(lurasidone, Equivalent)
    assert lurasidone.mg_per_day == 120
    assert lurasidone.note == (
        "no Gardner 2010 value for lurasidone; used DDD method (Leucht 2016): 120 mg/day"
    )
    depot = equivalent("haloperidol", True, ctx("ddd-leucht-2016"))
    assert isinstance(depot, Equivalent)
    assert depot.mg_per_day == pytest.approx(150 / 28)
    assert depot.text == ">= 150 mg every 28 days"
    assert depot.note is not None and "used Gardner 2010" in depot.note


def test_drugs_without_an_agreed_equivalent_are_unknown_unless_configured() -> None:
    assert equivalent("brexpiprazole", False, ctx()) == (
        "no agreed chlorpromazine equivalent for brexpiprazole"
    )
    configured = equivalent(
        "brexpiprazole", False, ctx(overrides={"trs.cpz.local_oral": {"brexpiprazole": 4}})
    )
    assert isinstance(configured, Equivalent)
    assert configured.mg_per_day == 4
    assert configured.note == "locally configured equivalent for brexpiprazole"


def test_a_long_acting_form_missing_from_both_methods_is_unknown() -> None:
    assert equivalent("paliperidone", True, ctx()) == (
        "no chlorpromazine equivalent for paliperidone long-acting injection in table 10.1"
    )


def test_an_unknown_method_is_refused() -> None:
    with pytest.raises(RulesetError):
        equivalent("risperidone", False, ctx("made-up-2030"))


# --- dose and stretch ------------------------------------------------------------------------


@pytest.mark.parametrize(("dose", "adequate", "cpz"), [(6, True, 600), (5.9, False, 590)])
def test_exactly_the_equivalent_of_600_mg_chlorpromazine_is_adequate(
    dose: float, adequate: bool, cpz: float
) -> None:
    [trial] = trials_of(med("MedicationRequest/a", "risperidone", dose, START, days(60)))
    result = assess_dose(trial, ctx())
    assert result.dose_adequate is adequate
    assert result.cpz_equivalent_mg == pytest.approx(cpz)
    assert result.max_daily_dose_mg == dose
    assert result.stretch == ((START, days(60)) if adequate else None)


def test_a_dose_below_the_threshold_says_what_was_needed() -> None:
    [trial] = trials_of(med("MedicationRequest/a", "risperidone", 4, START, days(60)))
    result = assess_dose(trial, ctx())
    assert result.reasons[0] == (
        "dose below 600 mg/day chlorpromazine equivalent: highest 4 mg/day = 400 mg/day "
        "(needs >= 6 mg/day)"
    )


@pytest.mark.parametrize(("interval_dose", "adequate"), [(150, True), (100, False)])
def test_haloperidol_decanoate_is_judged_per_interval(interval_dose: float, adequate: bool) -> None:
    [trial] = trials_of(
        med("MedicationRequest/lai", "haloperidol", None, START, days(84), lai=(interval_dose, 28))
    )
    result = assess_dose(trial, ctx())
    assert result.dose_adequate is adequate
    assert result.cpz_equivalent_mg == pytest.approx(interval_dose * 4)
    assert f"highest {interval_dose} mg every 28 days" in result.reasons[0].replace("dose ", "")


def test_the_ddd_method_needs_a_higher_risperidone_dose() -> None:
    [trial] = trials_of(med("MedicationRequest/a", "risperidone", 6, START, days(60)))
    result = assess_dose(trial, ctx("ddd-leucht-2016"))
    assert result.dose_adequate is False
    assert result.cpz_equivalent_mg == pytest.approx(360)


def test_the_longest_continuous_stretch_counts_not_the_sum_of_stretches() -> None:
    [trial] = trials_of(
        med("MedicationRequest/a", "olanzapine", 20, START, days(30)),
        med("MedicationRequest/b", "olanzapine", 10, days(30), days(40)),
        med("MedicationRequest/c", "olanzapine", 20, days(40), days(75)),
    )
    result = assess_dose(trial, ctx())
    assert result.stretch == (days(40), days(75))


def test_abutting_adequate_orders_make_one_stretch() -> None:
    [trial] = trials_of(
        med("MedicationRequest/a", "olanzapine", 20, START, days(30)),
        med("MedicationRequest/b", "olanzapine", 25, days(30), days(60)),
    )
    assert assess_dose(trial, ctx()).stretch == (START, days(60))


def test_overlapping_orders_are_not_added_together() -> None:
    [trial] = trials_of(
        med("MedicationRequest/a", "risperidone", 3, START, days(60)),
        med("MedicationRequest/b", "risperidone", 3, START, days(60)),
    )
    result = assess_dose(trial, ctx())
    assert result.dose_adequate is False
    assert result.cpz_equivalent_mg == pytest.approx(300)


def test_an_unreadable_dose_makes_the_dose_criterion_unknown_not_inadequate() -> None:
    [trial] = trials_of(
        med("MedicationRequest/a", "risperidone", 4, START, days(30)),
        med("MedicationRequest/b", "risperidone", None, days(30), days(60)),
    )
    result = assess_dose(trial, ctx())
    assert result.dose_adequate is None
    assert "dose unknown for MedicationRequest/b" in result.reasons


def test_a_drug_without_equivalent_has_no_dose_verdict() -> None:
    [trial] = trials_of(med("MedicationRequest/a", "cariprazine", 6, START, days(60)))
    result = assess_dose(trial, ctx())
    assert (result.dose_adequate, result.cpz_equivalent_mg, result.stretch) == (None, None, None)
    assert result.reasons == ("dose criterion unknown: no agreed chlorpromazine equivalent for "
                              "cariprazine",)  # fmt: skip
