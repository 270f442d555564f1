"""Adherence as proportion of days covered (rulebook §10 criterion 3): overlapping supply is
counted once, the window is stated, and no supply record means unknown, never adherent."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartapp.domain import MedicationExposure, MedicationSource, PatientRecord
from smartapp.rules.adherence import assess_adherence, days_covered
from smartapp.rules.trials import Trial
from tests.rules.builders import medication

AS_OF = date(2026, 3, 1)
START = date(2025, 1, 1)


def days(n: int) -> date:
    return START + timedelta(days=n)


def med(
    ref: str,
    start: date | None,
    *,
    source: MedicationSource,
    days_supply: float | None = None,
    end: date | None = None,
    lai_interval: float | None = None,
    drug: str = "risperidone",
    long_acting: bool = False,
) -> MedicationExposure:
    lai = (150.0, lai_interval) if lai_interval else None
    return medication(
        ref,
        drug,
        6,
        start,
        end,
        source=source,
        lai=lai,
        long_acting=long_acting,
        status="completed",
        days_supply=days_supply,
    )


ORDER = med("MedicationRequest/o", START, source="request", end=days(100))
TRIAL = Trial("risperidone", START, days(100), False, (ORDER,))
WINDOW = (START, days(100))


def pdc(*supplies: MedicationExposure, trial: Trial = TRIAL) -> float | None:
    record = PatientRecord("Patient/p1", medications=(*trial.orders, *supplies))
    return assess_adherence(trial, WINDOW, record, AS_OF).pdc


def dispense(
    ref: str, start: date, supply: float | None, drug: str = "risperidone"
) -> MedicationExposure:
    return med(ref, start, source="dispense", days_supply=supply, drug=drug)


def test_overlapping_supplies_count_each_day_once() -> None:
    spans = [(days(0), days(30)), (days(20), days(50)), (days(60), days(70))]
    assert days_covered(spans, WINDOW) == 60


def test_supply_outside_the_window_is_clipped() -> None:
    assert days_covered([(days(-10), days(10)), (days(95), days(130))], WINDOW) == 15


@pytest.mark.parametrize(("supplied", "expected"), [(80, 0.8), (79, 0.79), (100, 1.0)])
def test_proportion_of_days_covered_is_exact_at_the_boundary(
    supplied: int, expected: float
) -> None:
    assert pdc(dispense("MedicationDispense/d", START, supplied)) == expected


def test_early_refills_do_not_push_coverage_above_one() -> None:
    assert (
        pdc(
            dispense("MedicationDispense/a", START, 60),
            dispense("MedicationDispense/b", days(30), 60),
            dispense("MedicationDispense/c", days(60), 60),
        )
        == 1.0
    )


def test_a_dispense_before_the_window_counts_for_the_days_it_reaches_into_it() -> None:
    assert pdc(dispense("MedicationDispense/a", days(-20), 30)) == 0.1


def test_no_dispensing_at_all_is_unknown_not_adherent() -> None:
    result = assess_adherence(
        TRIAL, WINDOW, PatientRecord("Patient/p1", medications=(ORDER,)), AS_OF
    )
    assert result.pdc is None
    assert result.reasons == ("adherence unknown: no dispensing records",)


def test_dispensing_of_another_drug_does_not_count() -> None:
    assert pdc(dispense("MedicationDispense/x", START, 100, drug="olanzapine")) is None


def test_dispenses_only_outside_the_window_leave_adherence_unknown() -> None:
    record = PatientRecord(
        "Patient/p1", medications=(ORDER, dispense("MedicationDispense/old", days(-200), 30))
    )
    result = assess_adherence(TRIAL, WINDOW, record, AS_OF)
    assert result.pdc is None
    assert result.reasons[0] == (
        "adherence unknown: no readable dispensing or administration records "
        "2025-01-01 to 2025-04-10"
    )


def test_a_dispense_without_days_supply_is_reported_and_left_out() -> None:
    record = PatientRecord(
        "Patient/p1",
        medications=(
            ORDER,
            dispense("MedicationDispense/ok", START, 90),
            dispense("MedicationDispense/bad", days(50), None),
        ),
    )
    result = assess_adherence(TRIAL, WINDOW, record, AS_OF)
    assert result.pdc == 0.9
    assert result.reasons == (
        "adherence 0.9: 90 of 100 days covered by 1 dispense(s), 2025-01-01 to 2025-04-10",
        "MedicationDispense/bad: days covered unknown (no days' supply or interval), left out",
    )
    assert result.evidence == ("MedicationDispense/ok",)


def test_administered_injections_cover_their_interval_taken_from_the_order() -> None:
    depot_order = med("MedicationRequest/lai", START, source="request", end=days(84),
                      lai_interval=28, drug="haloperidol")  # fmt: skip
    trial = Trial("haloperidol", START, days(84), False, (depot_order,))
    shots = [
        med(f"MedicationAdministration/a{i}", days(28 * i), source="administration",
            drug="haloperidol", long_acting=True)
        for i in (0, 1)
    ]  # fmt: skip
    record = PatientRecord("Patient/p1", medications=(depot_order, *shots))
    result = assess_adherence(trial, (START, days(84)), record, AS_OF)
    assert result.pdc == pytest.approx(56 / 84)
    assert result.reasons[0].startswith(
        "adherence 0.667: 56 of 84 days covered by 2 administration(s)"
    )


@given(st.lists(st.tuples(st.integers(-50, 150), st.integers(1, 90)), max_size=12))
def test_days_covered_is_bounded_by_the_window_and_by_any_single_supply(
    supplies: list[tuple[int, int]],
) -> None:
    spans = [(days(s), days(s + n)) for s, n in supplies]
    covered = days_covered(spans, WINDOW)
    assert 0 <= covered <= 100
    for s, n in supplies:
        assert covered >= max(0, min(s + n, 100) - max(s, 0))
    assert covered == len({d for s, n in supplies for d in range(max(s, 0), min(s + n, 100))})


def test_an_injection_recorded_as_one_day_takes_its_interval_from_the_order() -> None:
    depot_order = med("MedicationRequest/lai", START, source="request", end=days(56),
                      lai_interval=28, drug="haloperidol")  # fmt: skip
    trial = Trial("haloperidol", START, days(56), False, (depot_order,))
    shot = med("MedicationAdministration/a", START, source="administration", end=days(1),
               drug="haloperidol", long_acting=True)  # fmt: skip
    record = PatientRecord("Patient/p1", medications=(depot_order, shot))
    assert assess_adherence(trial, (START, days(56)), record, AS_OF).pdc == 0.5
