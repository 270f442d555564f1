"""The suicidal-behaviour indication for clozapine (rulebook §10, R3): fires for schizophrenia
or schizoaffective disorder with a history of suicidal behaviour, and only off clozapine."""

from __future__ import annotations

from datetime import date

import pytest

from smartapp.domain import ConditionFact, MedicationExposure, PatientRecord
from smartapp.rules.findings import Finding
from smartapp.rules.suicidality import evaluate_suicidality
from tests.rules import builders
from tests.rules.builders import apply, rule_context

AS_OF = date(2026, 3, 1)
CTX = rule_context(AS_OF)

SCZ = ConditionFact("Condition/scz", "schizophrenia", "Paranoid schizophrenia", True)
SCA = ConditionFact("Condition/sca", "schizoaffective", "Schizoaffective disorder", True)
ATTEMPT = ConditionFact("Condition/sa", "suicidal-behaviour", "Suicide attempt", False)


def clozapine(*, proposed: bool = False) -> MedicationExposure:
    start = AS_OF if proposed else date(2025, 6, 1)
    return builders.clozapine("MedicationRequest/cloz", start, proposed=proposed)


def evaluate(
    *conditions: ConditionFact, meds: tuple[MedicationExposure, ...] = ()
) -> list[Finding]:
    record = PatientRecord("Patient/p1", medications=meds, conditions=conditions)
    return apply(evaluate_suicidality, record, CTX)


@pytest.mark.parametrize("diagnosis", [SCZ, SCA])
def test_a_history_of_suicidal_behaviour_off_clozapine_is_an_indication(
    diagnosis: ConditionFact,
) -> None:
    [finding] = evaluate(diagnosis, ATTEMPT)
    assert (finding.code, finding.severity) == ("clozapine-suicidality-indication", "info")
    assert finding.evidence == (diagnosis.ref, "Condition/sa")
    assert len(finding.summary) < 140
    assert "Suicide attempt (resolved)" in finding.detail
    assert "n = 980" in finding.detail
    assert "hazard ratio 0.76 (95 % CI 0.58-0.97)" in finding.detail
    assert "suicide attempts 34 vs 55" in finding.detail
    assert "R3 Meltzer H.Y. et al. (InterSePT)" in finding.source


def test_no_indication_on_clozapine() -> None:
    assert evaluate(SCZ, ATTEMPT, meds=(clozapine(),)) == []


def test_no_indication_when_clozapine_is_being_ordered() -> None:
    assert evaluate(SCZ, ATTEMPT, meds=(clozapine(proposed=True),)) == []


def test_a_stopped_clozapine_course_does_not_suppress_the_indication() -> None:
    stopped = MedicationExposure(
        ref="MedicationRequest/old",
        source="request",
        display="clozapine",
        ingredients=("clozapine",),
        recognised_by="text:clozapine",
        status="stopped",
        start=date(2020, 1, 1),
        end=date(2020, 6, 1),
        daily_dose_mg=200,
    )
    assert [f.code for f in evaluate(SCZ, ATTEMPT, meds=(stopped,))] == [
        "clozapine-suicidality-indication"
    ]


def test_both_a_diagnosis_and_suicidal_behaviour_are_needed() -> None:
    assert evaluate(SCZ) == []
    assert evaluate(ATTEMPT) == []
    other = ConditionFact("Condition/x", "ben", "Benign ethnic neutropenia", True)
    assert evaluate(other, ATTEMPT) == []


def test_suicidal_behaviour_recorded_after_as_of_does_not_count() -> None:
    later = ConditionFact("Condition/later", "suicidal-behaviour", "Suicide attempt", True,
                          onset=date(2026, 3, 2))  # fmt: skip
    assert evaluate(SCZ, later) == []
    today = ConditionFact("Condition/today", "suicidal-behaviour", "Suicide attempt", True,
                          onset=AS_OF)  # fmt: skip
    assert len(evaluate(SCZ, today)) == 1
