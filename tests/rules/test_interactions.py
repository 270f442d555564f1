"""Interactions at prescribing (rulebook §7): each group, active and drafted, and the
valproate titration window boundary."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import pytest

from smartapp.domain import MedicationExposure, MedicationSource, PatientRecord
from smartapp.rules.findings import Finding
from smartapp.rules.interactions import evaluate_interactions, fit_summary, format_mg, name_list
from smartapp.rules.ruleset import RulesetError, default_ruleset
from tests.rules.builders import apply, medication, one_per_code, rule_context

AS_OF = date(2026, 3, 1)
LONG_AGO = date(2025, 1, 1)


def med(
    ref: str,
    ingredients: str | Sequence[str],
    start: date | None = LONG_AGO,
    end: date | None = None,
    dose: float | None = None,
    proposed: bool = False,
    source: MedicationSource = "request",
) -> MedicationExposure:
    names = (ingredients,) if isinstance(ingredients, str) else tuple(ingredients)
    display = " / ".join(names).title()
    return medication(
        ref, names, dose, start, end, source=source, proposed=proposed, display=display
    )


def clozapine(
    start: date | None = LONG_AGO, dose: float | None = 300, proposed: bool = False
) -> MedicationExposure:
    return med("MedicationRequest/cloz", "clozapine", start, dose=dose, proposed=proposed)


def run(
    *meds: MedicationExposure, as_of: date = AS_OF, overrides: dict[str, Any] | None = None
) -> dict[str, Finding]:
    record = PatientRecord("Patient/p1", medications=meds)
    ctx = rule_context(as_of, overrides=overrides)
    return one_per_code(apply(evaluate_interactions, record, ctx))


GROUPS = [
    ("fluvoxamine", "interaction-cyp1a2-inhibitor", "warning"),
    ("ciprofloxacin", "interaction-cyp1a2-inhibitor", "warning"),
    ("enoxacin", "interaction-cyp1a2-inhibitor", "warning"),
    ("phenytoin", "interaction-inducer", "warning"),
    ("rifampin", "interaction-inducer", "warning"),
    ("st-johns-wort", "interaction-inducer", "warning"),
    ("carbimazole", "interaction-agranulocytosis", "critical"),
    ("methimazole", "interaction-agranulocytosis", "critical"),
    ("propylthiouracil", "interaction-agranulocytosis", "critical"),
    ("chloramphenicol", "interaction-agranulocytosis", "critical"),
    ("metamizole", "interaction-agranulocytosis", "critical"),
    ("benztropine", "interaction-anticholinergic", "warning"),
    ("trihexyphenidyl", "interaction-anticholinergic", "warning"),
    ("oxybutynin", "interaction-anticholinergic", "warning"),
]


@pytest.mark.parametrize(("drug", "code", "severity"), GROUPS)
def test_active_interacting_drug_fires_with_both_refs(drug: str, code: str, severity: str) -> None:
    found = run(clozapine(), med("MedicationRequest/x", drug, date(2026, 2, 1)))
    assert list(found) == [code]
    f = found[code]
    assert f.severity == severity
    assert f.evidence == ("MedicationRequest/cloz", "MedicationRequest/x")
    assert f.summary.startswith(f"{drug[:1].upper()}{drug[1:]} with clozapine: ")


@pytest.mark.parametrize(("drug", "code", "severity"), GROUPS)
def test_draft_order_of_interacting_drug_fires_and_says_new(
    drug: str, code: str, severity: str
) -> None:
    found = run(clozapine(), med("MedicationRequest/new", drug, None, proposed=True))
    assert list(found) == [code]
    assert found[code].summary.startswith(f"New {drug} order: ")
    assert "new draft order" in found[code].detail


def test_new_ciprofloxacin_order_summary_and_one_third_dose() -> None:
    found = run(clozapine(dose=300), med("MedicationRequest/cip", "ciprofloxacin", proposed=True))
    f = found["interaction-cyp1a2-inhibitor"]
    assert f.summary == (
        "New ciprofloxacin order: strong CYP1A2 inhibitor - clozapine levels may triple"
    )
    assert "One-third of the current clozapine dose of 300 mg/day" in f.detail
    assert "about 100 mg/day" in f.detail
    assert f.actions == ("clozapine-level",)
    assert f.source.startswith("I1 ")


def test_one_third_of_an_uneven_dose_is_not_rounded_to_a_safe_looking_number() -> None:
    f = run(clozapine(dose=250), med("MedicationRequest/f", "fluvoxamine"))
    assert "about 83.33 mg/day" in f["interaction-cyp1a2-inhibitor"].detail


def test_inhibitor_with_unknown_clozapine_dose_says_so() -> None:
    f = run(clozapine(dose=None), med("MedicationRequest/f", "fluvoxamine"))
    detail = f["interaction-cyp1a2-inhibitor"].detail
    assert "could not be read" in detail
    assert "One-third of the current" not in detail


def test_inducer_suggests_a_level() -> None:
    f = run(clozapine(), med("MedicationRequest/p", "phenytoin"))["interaction-inducer"]
    assert f.actions == ("clozapine-level",)
    assert "not recommended" in f.detail


def test_carbamazepine_is_both_inducer_and_agranulocytosis() -> None:
    found = run(clozapine(), med("MedicationRequest/cbz", "carbamazepine", proposed=True))
    assert set(found) == {"interaction-inducer", "interaction-agranulocytosis"}
    assert found["interaction-agranulocytosis"].severity == "critical"
    assert found["interaction-inducer"].severity == "warning"
    assert found["interaction-agranulocytosis"].actions == ("anc",)


def test_co_trimoxazole_is_named_as_the_combination() -> None:
    cotrim = med("MedicationRequest/ct", ("sulfamethoxazole", "trimethoprim"), proposed=True)
    f = run(clozapine(), cotrim)["interaction-agranulocytosis"]
    assert f.summary.startswith("New sulfamethoxazole/trimethoprim order: ")


def test_trimethoprim_alone_is_a_local_addition_that_can_be_switched_off() -> None:
    alone = med("MedicationRequest/tmp", "trimethoprim")
    f = run(clozapine(), alone)["interaction-agranulocytosis"]
    assert "Local policy" in f.source
    assert run(clozapine(), alone, overrides={"interactions.agranulocytosis.extra_drugs": []}) == {}


def test_published_drug_list_cannot_be_overridden() -> None:
    with pytest.raises(RulesetError):
        default_ruleset().with_overrides({"interactions.inducer.drugs": []})


def test_unknown_lab_action_in_rule_data_is_refused() -> None:
    with pytest.raises(RulesetError, match="unknown lab action"):
        run(
            clozapine(),
            med("MedicationRequest/f", "fluvoxamine"),
            overrides={"interactions.cyp1a2_inhibitor.actions": ["x-ray"]},
        )


def test_severity_is_rule_data() -> None:
    found = run(
        clozapine(),
        med("MedicationRequest/b", "benztropine"),
        overrides={"interactions.anticholinergic.severity": "critical"},
    )
    assert found["interaction-anticholinergic"].severity == "critical"


def test_new_clozapine_order_for_a_patient_on_fluvoxamine() -> None:
    found = run(clozapine(start=None, proposed=True), med("MedicationRequest/f", "fluvoxamine"))
    f = found["interaction-cyp1a2-inhibitor"]
    assert f.summary.startswith("New clozapine order with fluvoxamine: ")
    assert f.evidence == ("MedicationRequest/cloz", "MedicationRequest/f")


def test_new_and_existing_partners_in_one_finding() -> None:
    found = run(
        clozapine(),
        med("MedicationRequest/f", "fluvoxamine"),
        med("MedicationRequest/c", "ciprofloxacin", proposed=True),
    )
    f = found["interaction-cyp1a2-inhibitor"]
    assert f.summary.startswith("New ciprofloxacin order (also on fluvoxamine): ")
    assert f.evidence == ("MedicationRequest/cloz", "MedicationRequest/f", "MedicationRequest/c")


def test_many_partners_keep_the_summary_short() -> None:
    drugs = ["carbimazole", "methimazole", "propylthiouracil", "chloramphenicol", "metamizole"]
    meds = [med(f"MedicationRequest/{d}", d) for d in drugs]
    f = run(clozapine(), *meds)["interaction-agranulocytosis"]
    assert "and 2 more" in f.summary
    assert len(f.evidence) == 6


def test_request_and_dispense_of_one_drug_are_named_once() -> None:
    found = run(
        clozapine(),
        med("MedicationRequest/f", "fluvoxamine"),
        med("MedicationDispense/f", "fluvoxamine", date(2026, 2, 20), source="dispense"),
    )
    f = found["interaction-cyp1a2-inhibitor"]
    assert f.summary.startswith("Fluvoxamine with clozapine:")
    assert "MedicationDispense/f" in f.evidence


def test_drugs_not_in_force_do_not_interact() -> None:
    ended = med("MedicationRequest/old", "ciprofloxacin", date(2026, 2, 1), end=AS_OF)
    later = med("MedicationRequest/later", "fluvoxamine", AS_OF + timedelta(days=1))
    assert run(clozapine(), ended, later) == {}


def test_no_clozapine_no_findings() -> None:
    meds = [
        med("MedicationRequest/a", "ciprofloxacin", proposed=True),
        med("MedicationRequest/b", "carbamazepine"),
        med("MedicationRequest/c", "valproate"),
        med("MedicationRequest/d", "benztropine"),
    ]
    assert run(*meds) == {}


def test_stopped_clozapine_no_findings() -> None:
    stopped = med("MedicationRequest/cloz", "clozapine", LONG_AGO, end=date(2025, 6, 1), dose=300)
    assert run(stopped, med("MedicationRequest/f", "fluvoxamine")) == {}


@pytest.mark.parametrize(("day", "fires"), [(0, True), (27, True), (28, True), (29, False)])
def test_valproate_window_counts_day_28_in(day: int, fires: bool) -> None:
    start = AS_OF - timedelta(days=day)
    found = run(clozapine(start=start, dose=100), med("MedicationRequest/vpa", "valproate", start))
    assert ("interaction-valproate-titration" in found) is fires
    if fires:
        f = found["interaction-valproate-titration"]
        assert f"day {day} " in f.detail
        assert f.summary == (
            f"Valproate with clozapine: myocarditis risk (odds ratio 2.59) in titration "
            f"(course day {day})"
        )
        assert f.actions == ("troponin-crp",)
        assert "M3 " in f.source
        assert f.evidence == ("MedicationRequest/cloz", "MedicationRequest/vpa")


def test_valproate_with_a_drafted_new_course() -> None:
    found = run(
        clozapine(start=None, dose=12.5, proposed=True), med("MedicationRequest/v", "valproate")
    )
    assert found["interaction-valproate-titration"].summary.startswith(
        "New clozapine order with valproate: myocarditis risk"
    )


def test_valproate_with_a_drafted_restart_after_30_days_is_a_new_course() -> None:
    old = med("MedicationRequest/old", "clozapine", LONG_AGO, end=AS_OF - timedelta(days=30))
    found = run(old, clozapine(start=AS_OF, proposed=True), med("MedicationRequest/v", "valproate"))
    assert "interaction-valproate-titration" in found


def test_valproate_with_a_drafted_dose_change_in_an_old_course_is_quiet() -> None:
    found = run(
        clozapine(),
        med("MedicationRequest/cloz2", "clozapine", None, dose=350, proposed=True),
        med("MedicationRequest/v", "valproate"),
    )
    assert found == {}


def test_valproate_before_a_drafted_course_that_starts_later() -> None:
    later = clozapine(start=AS_OF + timedelta(days=3), dose=12.5, proposed=True)
    f = run(later, med("MedicationRequest/v", "valproate"))["interaction-valproate-titration"]
    assert f.summary.endswith("in titration (starts 2026-03-04)")


def test_new_valproate_order_early_in_a_course() -> None:
    start = AS_OF - timedelta(days=10)
    found = run(clozapine(start=start), med("MedicationRequest/v", "valproate", proposed=True))
    assert found["interaction-valproate-titration"].summary.startswith("New valproate order: ")


def test_wording_helpers() -> None:
    assert format_mg(12.5) == "12.5"
    assert format_mg(300.0) == "300"
    assert format_mg(1000) == "1,000"
    assert format_mg(6.25) == "6.25"
    assert name_list(["a"]) == "a"
    assert name_list(["a", "b"]) == "a and b"
    assert name_list(["a", "b", "c"]) == "a, b and c"
    assert name_list(["a", "b", "c", "d", "e"]) == "a, b, c and 2 more"
    assert fit_summary("x" * 139) == "x" * 139
    assert len(fit_summary("x" * 200)) == 139
    assert fit_summary("x" * 200).endswith("…")
