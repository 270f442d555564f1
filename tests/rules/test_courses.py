"""Clozapine courses and interruptions (rulebook §1): gaps of 29, 30 and 31 days, re-titration
gaps, proposed orders and the dose in force."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from smartapp.domain import MedicationExposure, PatientRecord
from smartapp.rules.courses import clozapine_history, current_daily_dose
from smartapp.rules.ruleset import RuleContext
from tests.rules.builders import clozapine as cloz
from tests.rules.builders import rule_context

AS_OF = date(2026, 3, 1)


def ctx(as_of: date = AS_OF) -> RuleContext:
    return rule_context(as_of)


def record(*meds: MedicationExposure) -> PatientRecord:
    return PatientRecord(patient="Patient/p1", medications=meds)


FIRST_END = date(2025, 12, 1)


@pytest.mark.parametrize(("gap", "new_course"), [(29, False), (30, True), (31, True)])
def test_gap_of_thirty_days_or_more_starts_a_new_course(gap: int, new_course: bool) -> None:
    restart = FIRST_END + timedelta(days=gap)
    h = clozapine_history(
        record(
            cloz("MedicationRequest/a", date(2025, 1, 1), FIRST_END),
            cloz("MedicationRequest/b", restart),
        ),
        ctx(),
    )
    assert h.current is not None
    assert h.new_course is new_course
    assert len(h.courses) == (2 if new_course else 1)
    assert h.current.start == (restart if new_course else date(2025, 1, 1))
    if new_course:
        assert h.restart_gap_days == gap
        assert h.current.gap_before_days == gap
    else:
        assert h.current.interruptions == ((restart, gap),)


@pytest.mark.parametrize(("gap", "interrupted"), [(0, False), (1, False), (2, True)])
def test_gap_of_two_days_is_an_interruption_inside_the_course(gap: int, interrupted: bool) -> None:
    restart = FIRST_END + timedelta(days=gap)
    h = clozapine_history(
        record(
            cloz("MedicationRequest/a", date(2025, 11, 1), FIRST_END),
            cloz("MedicationRequest/b", restart),
        ),
        ctx(),
    )
    assert h.current is not None and len(h.courses) == 1
    assert h.current.interruptions == (((restart, gap),) if interrupted else ())


def test_identical_intervals_do_not_crash_the_sort() -> None:
    start, end = date(2026, 1, 1), date(2026, 4, 1)
    h = clozapine_history(
        record(cloz("MedicationRequest/b", start, end), cloz("MedicationRequest/a", start, end)),
        ctx(),
    )
    assert h.current is not None
    assert h.current.evidence == ("MedicationRequest/a", "MedicationRequest/b")


def test_open_order_makes_an_ongoing_course() -> None:
    h = clozapine_history(record(cloz("MedicationRequest/a", date(2025, 6, 1))), ctx())
    assert h.status == "active"
    assert h.current is not None and h.current.end is None
    assert h.current.weeks_on(AS_OF) == (AS_OF - date(2025, 6, 1)).days / 7


def test_course_ending_on_as_of_is_stopped_half_open() -> None:
    h = clozapine_history(record(cloz("MedicationRequest/a", date(2026, 1, 1), AS_OF)), ctx())
    assert h.current is None and h.status == "stopped"
    h = clozapine_history(
        record(cloz("MedicationRequest/a", date(2026, 1, 1), AS_OF + timedelta(days=1))), ctx()
    )
    assert h.status == "active"


def test_never_and_future_orders() -> None:
    assert clozapine_history(record(), ctx()).status == "never"
    future = clozapine_history(
        record(cloz("MedicationRequest/a", AS_OF + timedelta(days=3))), ctx()
    )
    assert future.status == "never" and future.current is None


def test_order_without_start_is_dated_by_authored() -> None:
    h = clozapine_history(
        record(cloz("MedicationRequest/a", None, authored=date(2026, 1, 10))), ctx()
    )
    assert h.current is not None and h.current.start == date(2026, 1, 10)


def test_dispense_without_end_covers_its_supply_only() -> None:
    dispense = cloz("MedicationDispense/d", date(2025, 6, 1), source="dispense", days_supply=28)
    h = clozapine_history(record(dispense), ctx())
    assert h.status == "stopped"
    assert h.courses[0].end == date(2025, 6, 29)


def test_administration_without_end_covers_one_day() -> None:
    given = cloz("MedicationAdministration/x", date(2026, 2, 27), source="administration")
    h = clozapine_history(record(given), ctx())
    assert h.courses[0].end == date(2026, 2, 28) and h.status == "stopped"


def test_proposed_order_for_a_new_patient_starts_a_course_today() -> None:
    h = clozapine_history(record(cloz("MedicationRequest/d", None, proposed=True)), ctx())
    assert h.current is not None and h.current.start == AS_OF
    assert h.new_course is False and h.restart_gap_days is None and h.courses == ()


@pytest.mark.parametrize(("gap", "new_course"), [(29, False), (30, True)])
def test_proposed_order_after_a_gap(gap: int, new_course: bool) -> None:
    end = AS_OF - timedelta(days=gap)
    h = clozapine_history(
        record(
            cloz("MedicationRequest/a", date(2025, 1, 1), end),
            cloz("MedicationRequest/d", None, proposed=True),
        ),
        ctx(),
    )
    assert h.current is not None
    assert h.restart_gap_days == gap and h.new_course is new_course
    assert h.current.start == (AS_OF if new_course else date(2025, 1, 1))
    refs = {m.ref for m in h.current.exposures}
    assert ("MedicationRequest/a" in refs) is not new_course


def test_current_daily_dose_prefers_the_proposed_order() -> None:
    h = clozapine_history(
        record(
            cloz("MedicationRequest/a", date(2026, 1, 1), dose=200),
            cloz("MedicationRequest/d", None, dose=25, proposed=True),
        ),
        ctx(),
    )
    assert current_daily_dose(h, AS_OF) == (25, ("MedicationRequest/d",))


def test_current_daily_dose_takes_the_latest_order_in_force() -> None:
    h = clozapine_history(
        record(
            cloz("MedicationRequest/a", date(2026, 1, 1), date(2026, 2, 1), dose=200),
            cloz("MedicationRequest/b", date(2026, 2, 1), dose=350),
            cloz("MedicationRequest/c", date(2026, 2, 10), dose=None),
        ),
        ctx(),
    )
    assert current_daily_dose(h, AS_OF) == (350, ("MedicationRequest/b",))
    assert current_daily_dose(clozapine_history(record(), ctx()), AS_OF) == (None, ())


def test_current_daily_dose_adds_up_a_split_dose_of_different_products() -> None:
    """25 mg tablets in the morning and 100 mg tablets at night are two orders, one dose."""
    morning = replace(
        cloz("MedicationRequest/m", date(2026, 1, 1), dose=50),
        recognised_by="rxnorm:197536",
        display="clozapine 25 mg tablet",
    )
    night = cloz("MedicationRequest/n", date(2026, 1, 1), dose=900)
    renewal = cloz("MedicationRequest/r", date(2026, 2, 1), dose=900)  # same product: a renewal
    h = clozapine_history(record(morning, night, renewal), ctx())
    assert current_daily_dose(h, AS_OF) == (950, ("MedicationRequest/m", "MedicationRequest/r"))
