"""Laxative prophylaxis on clozapine (rulebook §9): present, drafted, absent, ended."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from smartapp.domain import MedicationExposure, PatientRecord
from smartapp.rules.constipation import evaluate_constipation
from smartapp.rules.findings import Finding
from tests.rules.builders import apply, medication, rule_context

AS_OF = date(2026, 3, 1)
LONG_AGO = date(2025, 1, 1)


def med(
    ref: str,
    ingredient: str,
    start: date | None = LONG_AGO,
    end: date | None = None,
    proposed: bool = False,
) -> MedicationExposure:
    dose = 300 if ingredient == "clozapine" else None
    return medication(
        f"MedicationRequest/{ref}",
        ingredient,
        dose,
        start,
        end,
        proposed=proposed,
        display=ingredient.title(),
    )


CLOZAPINE = med("cloz", "clozapine")


def run(*meds: MedicationExposure, overrides: dict[str, Any] | None = None) -> list[Finding]:
    record = PatientRecord("Patient/p1", medications=meds)
    findings = apply(evaluate_constipation, record, rule_context(AS_OF, overrides=overrides))
    for f in findings:
        assert f.code == "constipation-prophylaxis"
        assert f.severity == "info"
        assert len(f.summary) < 140
        assert f.source.startswith("G1 ") and "G2 " in f.source
    return findings


def test_no_laxative_fires() -> None:
    [f] = run(CLOZAPINE)
    assert f.summary == "On clozapine with no laxative in force: start a prophylactic laxative"
    assert f.evidence == ("MedicationRequest/cloz",)
    assert "Gut hypomotility kills more clozapine patients than agranulocytosis" in f.detail
    assert "No laxative on record." in f.detail


@pytest.mark.parametrize(
    "laxative",
    ["senna", "bisacodyl", "sodium-picosulfate", "docusate", "polyethylene-glycol", "lactulose"],
)
def test_any_listed_laxative_in_force_is_enough(laxative: str) -> None:
    assert run(CLOZAPINE, med("lax", laxative, date(2026, 1, 1))) == []


def test_drafted_laxative_counts() -> None:
    assert run(CLOZAPINE, med("lax", "senna", None, proposed=True)) == []


def test_ended_laxative_fires_and_says_when_it_ended() -> None:
    ended = med("lax", "lactulose", date(2025, 6, 1), end=AS_OF)
    [f] = run(CLOZAPINE, ended)
    assert "Last laxative on record: lactulose (MedicationRequest/lax), ended 2026-03-01." in (
        f.detail
    )


def test_laxative_starting_later_is_not_in_force() -> None:
    assert len(run(CLOZAPINE, med("lax", "senna", AS_OF + timedelta(days=1)))) == 1


def test_anticholinergic_is_named() -> None:
    [f] = run(CLOZAPINE, med("btz", "benztropine", date(2026, 2, 1)))
    assert f.summary == "On clozapine and benztropine with no laxative: start a laxative"
    assert f.evidence == ("MedicationRequest/cloz", "MedicationRequest/btz")
    assert "strong anticholinergic adds to the gut hypomotility" in f.detail


def test_drafted_clozapine_without_laxative_fires() -> None:
    [f] = run(med("new", "clozapine", None, proposed=True))
    assert f.evidence == ("MedicationRequest/new",)


def test_no_clozapine_no_finding() -> None:
    assert run(med("btz", "benztropine")) == []
    assert run(med("old", "clozapine", LONG_AGO, end=date(2025, 6, 1))) == []


def test_a_site_can_accept_another_laxative() -> None:
    glycerol = med("gly", "glycerol", date(2026, 1, 1))
    assert len(run(CLOZAPINE, glycerol)) == 1
    assert run(CLOZAPINE, glycerol, overrides={"constipation.extra_laxatives": ["glycerol"]}) == []
