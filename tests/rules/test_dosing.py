"""Dose, titration, re-titration and seizure risk (rulebook §1, §8): the boundaries."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest

from smartapp.domain import LabResult, MedicationExposure, MedicationSource, PatientRecord
from smartapp.rules.dosing import evaluate_dosing
from smartapp.rules.findings import Finding
from tests.rules.builders import apply, lab_result, medication, one_per_code, rule_context

AS_OF = date(2026, 3, 1)
LONG_AGO = date(2025, 1, 1)


def med(
    ref: str,
    start: date | None = LONG_AGO,
    dose: float | None = 300,
    end: date | None = None,
    proposed: bool = False,
    ingredient: str = "clozapine",
    source: MedicationSource = "request",
) -> MedicationExposure:
    return medication(
        f"MedicationRequest/{ref}", ingredient, dose, start, end, source=source, proposed=proposed
    )


def level(value: float, day: date, ref: str = "Observation/lvl") -> LabResult:
    return lab_result(ref, "clozapine", value, day, hour=8)


def run(
    *meds: MedicationExposure,
    labs: tuple[LabResult, ...] = (),
    as_of: date = AS_OF,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Finding]:
    record = PatientRecord("Patient/p1", medications=meds, labs=labs)
    return one_per_code(apply(evaluate_dosing, record, rule_context(as_of, overrides=overrides)))


def test_no_clozapine_no_findings() -> None:
    assert run(med("v", dose=2000, ingredient="valproate")) == {}
    assert run(med("old", end=date(2025, 6, 1), dose=950)) == {}


# Maximum dose (L1): more than 900 mg/day.


@pytest.mark.parametrize(("dose", "fires"), [(900, False), (900.5, True)])
def test_dose_above_max_boundary(dose: float, fires: bool) -> None:
    found = run(med("c", dose=dose))
    assert ("dose-above-max" in found) is fires
    if fires:
        f = found["dose-above-max"]
        assert f.severity == "critical"
        assert f.summary == "Clozapine 900.5 mg/day is above the 900 mg/day maximum"
        assert f.evidence == ("MedicationRequest/c",)
        assert f.source.startswith("L1 ")


def test_drafted_dose_above_max() -> None:
    found = run(med("c"), med("new", start=None, dose=1000, proposed=True))
    assert found["dose-above-max"].evidence == ("MedicationRequest/new",)


def test_split_dose_over_two_products_is_added_up_for_the_maximum() -> None:
    morning = replace(med("am", dose=400), recognised_by="rxnorm:197536")  # 25 mg tablets
    night = med("pm", dose=600)
    found = run(morning, night)
    assert found["dose-above-max"].summary.startswith("Clozapine 1,000 mg/day")
    assert found["dose-above-max"].evidence == ("MedicationRequest/am", "MedicationRequest/pm")


def test_unknown_dose_is_not_read_as_safe_nor_as_above_max() -> None:
    assert "dose-above-max" not in run(med("c", dose=None))
    found = run(med("c", dose=950), med("u", start=date(2026, 1, 1), dose=None))
    assert "MedicationRequest/u" in found["dose-above-max"].detail
    assert "not assumed safe" in found["dose-above-max"].detail


# Seizure risk (Z1, T1): >= 600 mg/day or level >= 1,000 ng/mL.


@pytest.mark.parametrize(("dose", "fires"), [(599, False), (600, True)])
def test_seizure_dose_boundary(dose: float, fires: bool) -> None:
    found = run(med("c", dose=dose))
    assert ("seizure-risk" in found) is fires
    if fires:
        f = found["seizure-risk"]
        assert f.severity == "warning"
        assert f.summary == "Seizure risk: clozapine 600 mg/day - consider prophylaxis"
        assert "valproate or lamotrigine; not carbamazepine" in f.detail
        assert f.actions == ("clozapine-level",)
        assert "Z1 " in f.source


@pytest.mark.parametrize(("value", "fires"), [(999, False), (1000, True)])
def test_seizure_level_boundary(value: float, fires: bool) -> None:
    found = run(med("c", dose=300), labs=(level(value, date(2026, 2, 20)),))
    assert ("seizure-risk" in found) is fires
    if fires:
        f = found["seizure-risk"]
        assert f.summary == ("Seizure risk: level 1,000 ng/mL (2026-02-20) - consider prophylaxis")
        assert f.evidence == ("Observation/lvl",)


def test_seizure_uses_the_latest_level() -> None:
    labs = (level(1200, date(2026, 1, 5), "Observation/a"), level(500, date(2026, 2, 5)))
    assert "seizure-risk" not in run(med("c", dose=300), labs=labs)


def test_level_from_an_earlier_course_is_not_about_todays_dose() -> None:
    old = med("old", start=date(2024, 1, 1), end=date(2024, 6, 1), dose=600)
    new = med("c", start=date(2026, 1, 1), dose=300)
    assert "seizure-risk" not in run(old, new, labs=(level(1500, date(2024, 5, 1)),))


def test_seizure_by_dose_and_level_together_names_prophylaxis_in_use() -> None:
    found = run(
        med("c", dose=700),
        med("ltg", ingredient="lamotrigine", dose=200),
        labs=(level(1100, date(2026, 2, 27)),),
    )
    f = found["seizure-risk"]
    assert f.summary == (
        "Seizure risk: clozapine 700 mg/day and level 1,100 ng/mL (2026-02-27) - consider "
        "prophylaxis"
    )
    assert "Already on lamotrigine." in f.detail
    assert f.evidence == ("MedicationRequest/c", "Observation/lvl")


def test_unknown_dose_with_high_level_still_warns() -> None:
    found = run(med("c", dose=None), labs=(level(1050, date(2026, 2, 25)),))
    assert "not assumed safe" in found["seizure-risk"].detail


# Start dose (L1): more than 25 mg/day on day 1 of a new course.


@pytest.mark.parametrize(("dose", "fires"), [(25, False), (25.5, True)])
def test_drafted_first_course_start_dose_boundary(dose: float, fires: bool) -> None:
    found = run(med("new", start=None, dose=dose, proposed=True))
    assert ("titration-start-dose" in found) is fires
    if fires:
        f = found["titration-start-dose"]
        assert f.severity == "warning"
        assert f.summary == (
            "Clozapine start 25.5 mg/day on day 1 (2026-03-01): label start is 12.5 mg once or "
            "twice daily"
        )
        assert "300-450 mg/day by the end of week 2" in f.detail
        assert "at most 100 mg once or twice weekly" in f.detail
        assert f.evidence == ("MedicationRequest/new",)


@pytest.mark.parametrize(("days_ago", "fires"), [(0, True), (13, True), (14, False)])
def test_recorded_new_course_alerts_only_in_its_first_14_days(days_ago: int, fires: bool) -> None:
    start = AS_OF - timedelta(days=days_ago)
    found = run(med("c", start=start, dose=100))
    assert ("titration-start-dose" in found) is fires


def test_start_dose_is_the_first_order_not_todays_dose() -> None:
    start = AS_OF - timedelta(days=6)
    first = med("first", start=start, dose=25, end=start + timedelta(days=3))
    second = med("second", start=start + timedelta(days=3), dose=100)
    assert "titration-start-dose" not in run(first, second)


def test_first_order_preferred_over_a_same_day_dispense() -> None:
    start = AS_OF - timedelta(days=2)
    order = med("o", start=start, dose=25)
    dispense = med("d", start=start, dose=200, source="dispense")
    assert "titration-start-dose" not in run(order, dispense)


def test_unknown_start_dose_is_flagged_and_policy_can_silence_it() -> None:
    draft = med("new", start=None, dose=None, proposed=True)
    f = run(draft)["titration-start-dose"]
    assert f.summary.startswith("Clozapine start dose unknown (2026-03-01)")
    assert "MedicationRequest/new (dose unknown, new draft order)" in f.detail
    assert run(draft, overrides={"dosing.titration.alert_unknown_dose": False}) == {}


def test_dose_change_in_an_established_course_is_not_a_start() -> None:
    found = run(med("c", dose=300), med("new", start=None, dose=400, proposed=True))
    assert "titration-start-dose" not in found
    assert "retitration-needed" not in found


# Restart (L1, L3): >= 2 days off, more than 25 mg/day.


@pytest.mark.parametrize(("days_off", "fires"), [(1, False), (2, True)])
def test_drafted_restart_after_days_off(days_off: int, fires: bool) -> None:
    ended = med("old", start=date(2025, 6, 1), end=AS_OF - timedelta(days=days_off))
    draft = med("new", start=AS_OF, dose=300, proposed=True)
    found = run(ended, draft)
    assert ("retitration-needed" in found) is fires
    assert "titration-start-dose" not in found
    if fires:
        f = found["retitration-needed"]
        assert f.severity == "warning"
        assert f.summary == (
            "Clozapine restart after 2 days off at 300 mg/day: re-titrate from 12.5 mg"
        )
        assert "hypotension, bradycardia and syncope" in f.detail
        assert f.evidence == ("MedicationRequest/new",)
        assert f.source.startswith("L1 ")


def test_restart_at_the_label_start_dose_is_fine() -> None:
    ended = med("old", start=date(2025, 6, 1), end=AS_OF - timedelta(days=5))
    assert run(ended, med("new", start=AS_OF, dose=25, proposed=True)) == {}


def test_restart_with_unknown_dose_is_flagged() -> None:
    ended = med("old", start=date(2025, 6, 1), end=AS_OF - timedelta(days=5))
    found = run(ended, med("new", start=AS_OF, dose=None, proposed=True))
    assert found["retitration-needed"].summary == (
        "Clozapine restart after 5 days off, dose unknown: re-titrate from 12.5 mg"
    )


@pytest.mark.parametrize(("as_of", "fires"), [(date(2026, 3, 1), True), (date(2026, 3, 15), False)])
def test_interruption_inside_a_course(as_of: date, fires: bool) -> None:
    before = med("before", start=date(2025, 6, 1), end=date(2026, 2, 20))
    after = med("after", start=date(2026, 2, 25), dose=300)
    found = run(before, after, as_of=as_of)
    assert ("retitration-needed" in found) is fires
    if fires:
        f = found["retitration-needed"]
        assert f.summary == (
            "Clozapine restart after 5 days off at 300 mg/day: re-titrate from 12.5 mg"
        )
        assert f.evidence == ("MedicationRequest/after",)


def test_one_day_interruption_needs_no_retitration() -> None:
    before = med("before", start=date(2025, 6, 1), end=date(2026, 2, 24))
    after = med("after", start=date(2026, 2, 25), dose=300)
    assert "retitration-needed" not in run(before, after)


def test_new_course_after_a_long_gap_is_a_start_and_a_restart() -> None:
    old = med("old", start=date(2025, 1, 1), end=date(2025, 6, 1))
    restart = med("c", start=AS_OF - timedelta(days=3), dose=200)
    found = run(old, restart)
    assert set(found) == {"titration-start-dose", "retitration-needed"}
    assert "New course after 270 days without clozapine." in found["titration-start-dose"].detail
    assert found["retitration-needed"].summary.startswith("Clozapine restart after 270 days off")
