"""The synthetic patients: committed files equal the generator, every resource is valid FHIR
R4, every finding code is designed for, and the data looks the way real EHRs send it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from smartapp.rules.findings import FINDING_CODES
from smartapp.synthetic import longitudinal, scenarios
from smartapp.synthetic.__main__ import main
from smartapp.synthetic.scenario import Scenario

PATIENTS = Path(__file__).parent / "patients"
SCENARIOS = scenarios.all_scenarios()
BUNDLES = scenarios.bundles()
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
CLOZAPINE_SCD = {"721773", "197536", "429212", "197535", "309374", "476179", "476177"}
LAXATIVE_WORDS = ("senna", "docusate", "bisacodyl", "lactulose", "polyethylene glycol")

Json = dict[str, Any]


def resources(bundle: Json, kind: str | None = None) -> list[Json]:
    found = [e["resource"] for e in bundle["entry"]]
    return [r for r in found if kind is None or r["resourceType"] == kind]


def all_resources(kind: str) -> Iterator[tuple[str, Json]]:
    for name, bundle in BUNDLES.items():
        for r in resources(bundle, kind):
            yield name, r


def loinc(obs: Json) -> str | None:
    for c in obs["code"].get("coding", []):
        if c["system"] == "http://loinc.org":
            return str(c["code"])
    return None


def obs_of(bundle: Json, code: str) -> list[Json]:
    found = [o for o in resources(bundle, "Observation") if loinc(o) == code]
    return sorted(found, key=lambda o: o["effectiveDateTime"])


def medication_text(request: Json, bundle: Json) -> str:
    if "medicationCodeableConcept" in request:
        concept = request["medicationCodeableConcept"]
    else:
        ref = request["medicationReference"]["reference"]
        pool = request.get("contained", []) if ref.startswith("#") else resources(bundle)
        target = ref.lstrip("#").split("/")[-1]
        concept = next(r["code"] for r in pool if r["id"] == target)
    codes = " ".join(c["display"] for c in concept.get("coding", []) if "display" in c)
    return f"{concept.get('text', '')} {codes}".lower()


def clozapine_scenario(s: Scenario) -> bool:
    bundle = BUNDLES[s.name]
    return any("cloz" in medication_text(r, bundle) for r in resources(bundle, "MedicationRequest"))


# -- the generated files ---------------------------------------------------------------------


def test_committed_files_equal_the_generator() -> None:
    rendered = scenarios.rendered()
    committed = {p.name: p.read_text(encoding="utf-8") for p in PATIENTS.glob("*.json")}
    assert sorted(committed) == sorted(rendered), (
        "run: python -m smartapp.synthetic write tests/patients"
    )
    stale = [name for name, text in rendered.items() if committed[name] != text]
    assert stale == [], f"regenerate tests/patients: {stale}"


def test_generation_is_deterministic() -> None:
    assert scenarios.rendered() == scenarios.rendered()
    assert all(
        text.endswith("}\n") or text.endswith("]\n") for text in scenarios.rendered().values()
    )


def test_index_lists_every_scenario_with_story_date_profile_and_codes() -> None:
    index = json.loads((PATIENTS / "index.json").read_text(encoding="utf-8"))
    assert [e["name"] for e in index] == [s.name for s in SCENARIOS]
    for entry in index:
        assert set(entry) >= {"name", "story", "as_of", "profile", "expected_codes", "file"}
        assert (PATIENTS / entry["file"]).is_file()
        assert entry["profile"] in ("us-fda", "uk-mhra")
        date.fromisoformat(entry["as_of"])
        assert entry["expected_codes"], entry["name"]
        assert entry["expected_codes"] == sorted(set(entry["expected_codes"]))


def test_at_least_22_scenarios_with_unique_names() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) >= 22
    assert len(set(names)) == len(names)


def test_every_finding_code_is_designed_for() -> None:
    expected = {code for s in SCENARIOS for code in s.expected_codes}
    assert expected - set(FINDING_CODES) == set()
    assert set(FINDING_CODES) - expected == set()


def test_uk_codes_come_from_uk_patients_only() -> None:
    for s in SCENARIOS:
        uk_codes = {c for c in s.expected_codes if c.startswith("fbc-")}
        us_anc = {c for c in s.expected_codes if c.startswith("anc-")}
        if s.profile == "uk-mhra":
            assert uk_codes and not us_anc, s.name
        else:
            assert not uk_codes, s.name


def test_data_unavailable_note_explains_the_record_assembler() -> None:
    s = scenarios.get("data-unavailable-observation-timeout")
    assert "data-unavailable" in s.note and "outcome" in s.note


# -- FHIR validity and identity --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_bundle_is_valid_fhir_r4(name: str) -> None:
    Bundle.model_validate(BUNDLES[name])


@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s.name)
def test_one_patient_per_bundle_with_stable_ids(s: Scenario) -> None:
    bundle = BUNDLES[s.name]
    patients = resources(bundle, "Patient")
    assert [p["id"] for p in patients] == [s.name]
    seen: set[str] = set()
    for entry in bundle["entry"]:
        r = entry["resource"]
        ref = f"{r['resourceType']}/{r['id']}"
        assert FHIR_ID.match(r["id"]), ref
        assert ref not in seen
        seen.add(ref)
        assert entry["fullUrl"].endswith("/" + ref)
        subject = r.get("subject", {}).get("reference")
        assert subject in (None, f"Patient/{s.name}"), ref
        if r["resourceType"] not in ("Patient", "Medication", "OperationOutcome"):
            assert r["id"].startswith(s.name + "-"), "ids must be unique across the sandbox"


@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s.name)
def test_nothing_happens_after_as_of(s: Scenario) -> None:
    limit = s.as_of.isoformat()
    for r in resources(BUNDLES[s.name]):
        for key in ("effectiveDateTime", "authoredOn", "whenHandedOver", "onsetDateTime"):
            if key in r:
                assert r[key][:10] <= limit, (r["id"], key)


# -- clinical design of the scenarios --------------------------------------------------------


@pytest.mark.parametrize("s", [s for s in SCENARIOS if clozapine_scenario(s)], ids=lambda s: s.name)
def test_clozapine_patients_have_a_laxative_unless_the_story_is_constipation(
    s: Scenario,
) -> None:
    bundle = BUNDLES[s.name]
    laxatives = [
        r
        for r in resources(bundle, "MedicationRequest")
        if r["status"] in ("active", "draft")
        and any(w in medication_text(r, bundle) for w in LAXATIVE_WORDS)
    ]
    wants_prophylaxis = "constipation-prophylaxis" in s.expected_codes
    assert bool(laxatives) is not wants_prophylaxis


@pytest.mark.parametrize("s", [s for s in SCENARIOS if clozapine_scenario(s)], ids=lambda s: s.name)
def test_anc_is_present_unless_the_story_is_a_missing_count(s: Scenario) -> None:
    ancs = [o for o in obs_of(BUNDLES[s.name], "751-8") if o["status"] == "final"]
    missing = {"anc-missing", "anc-baseline-missing", "data-unavailable"}
    assert bool(ancs) is not bool(missing & set(s.expected_codes))


def test_mild_patient_falls_below_1500_after_a_normal_count() -> None:
    ancs = [o["valueQuantity"]["value"] for o in obs_of(BUNDLES["clozapine-week10-mild"], "751-8")]
    assert ancs[-1] == 1.2
    assert ancs[-2] >= 1.5


def test_ben_patients_have_two_baselines_and_a_confirmed_low_count() -> None:
    for name, expected in (
        ("ben-two-baselines-neutropenia", (0.88, 0.86)),
        ("ben-severe", (0.62, 0.45)),
    ):
        bundle = BUNDLES[name]
        texts = [c["code"].get("text", "").lower() for c in resources(bundle, "Condition")]
        assert any("benign ethnic neutropenia" in t or "duffy-null" in t for t in texts)
        ancs = obs_of(bundle, "751-8")
        first_dose = min(
            r["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["start"]
            for r in resources(bundle, "MedicationRequest")
            if "cloz" in medication_text(r, bundle)
        )
        assert len([o for o in ancs if o["effectiveDateTime"][:10] < first_dose]) == 2
        assert tuple(o["valueQuantity"]["value"] for o in ancs[-2:]) == expected


def test_derived_anc_has_wbc_and_percentage_but_no_absolute_count() -> None:
    bundle = BUNDLES["clozapine-week30-due-soon"]
    latest = max(o["effectiveDateTime"] for o in resources(bundle, "Observation"))
    on_day = {
        loinc(o) for o in resources(bundle, "Observation") if o["effectiveDateTime"] == latest
    }
    assert on_day == {"6690-2", "770-8"}


@pytest.mark.parametrize(
    ("name", "ratio"),
    [("levels-high-fluvoxamine", 3.5), ("levels-low-ratio-low", 0.4), ("smoking-cessation", 1.5),
     ("levels-alert-seizure-risk", 2.0)],
)  # fmt: skip
def test_clozapine_norclozapine_ratio(name: str, ratio: float) -> None:
    molar = {"clozapine": 326.83, "norclozapine": 312.80}
    to_ng = {"ng/mL": 1.0, "ug/L": 1.0, "mg/L": 1000.0}

    def ng_per_ml(obs: Json, drug: str) -> float:
        q = obs["valueQuantity"]
        if q["code"] == "nmol/L":
            return float(q["value"]) * molar[drug] / 1000
        return float(q["value"]) * to_ng[q["code"]]

    bundle = BUNDLES[name]
    clozapine = ng_per_ml(obs_of(bundle, "6896-5")[-1], "clozapine")
    norclozapine = ng_per_ml(obs_of(bundle, "10992-6")[-1], "norclozapine")
    assert clozapine / norclozapine == pytest.approx(ratio, abs=0.01)


def test_myocarditis_watch_troponin_is_one_and_a_half_times_the_assay_uln() -> None:
    troponin = obs_of(BUNDLES["myocarditis-day10-watch"], "89579-7")[-1]
    high = troponin["referenceRange"][0]["high"]["value"]
    assert troponin["valueQuantity"]["value"] / high == pytest.approx(1.5)


def test_restart_gaps_are_45_and_5_days() -> None:
    for name, gap in (
        ("clozapine-restart-after-45-days", 45),
        ("clozapine-restart-after-5-days", 5),
    ):
        bundle = BUNDLES[name]
        orders = [
            r
            for r in resources(bundle, "MedicationRequest")
            if "cloz" in medication_text(r, bundle)
        ]
        ended = max(r["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"].get("end", "")
                    for r in orders if r["status"] == "completed")  # fmt: skip
        draft = next(r for r in orders if r["status"] == "draft")
        restart = draft["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["start"]
        assert (date.fromisoformat(restart) - date.fromisoformat(ended)).days == gap


# -- the EHR representations the mappers must meet (issue 2, item 5) -----------------------


def test_clozapine_orders_use_product_codes_tablets_and_bid() -> None:
    codes: set[str] = set()
    tablets = bid = 0
    for _, r in all_resources("MedicationRequest"):
        concept = r.get("medicationCodeableConcept", {})
        codes |= {c["code"] for c in concept.get("coding", []) if "rxnorm" in c["system"]}
        for d in r["dosageInstruction"]:
            dose = d["doseAndRate"][0]["doseQuantity"]
            tablets += dose.get("code") == "{tbl}"
            bid += d["timing"].get("code", {}).get("coding", [{}])[0].get("code") == "BID"
    assert {"197536", "429212", "197535", "309374"} <= codes
    assert codes & CLOZAPINE_SCD
    assert tablets > 20 and bid > 20


def test_anc_units_vary_like_real_labs() -> None:
    units = {
        o["valueQuantity"]["unit"] for _, o in all_resources("Observation") if loinc(o) == "751-8"
    }
    assert {"10*9/L", "/uL", "10*3/uL", "cells/hpf"} <= units


def test_special_representations_are_present() -> None:
    requests = [r for _, r in all_resources("MedicationRequest")]
    assert any(r.get("medicationReference", {}).get("reference") == "#med1" for r in requests)
    assert any(
        r.get("medicationCodeableConcept") == {"text": "Clozaril 100mg tablets"} for r in requests
    )
    assert {r["status"] for r in requests} >= {"draft", "active", "completed", "cancelled"}
    assert any(o["status"] == "entered-in-error" for _, o in all_resources("Observation"))
    searchset = BUNDLES["stable-monthly-searchset"]
    included = [e for e in searchset["entry"] if e["search"]["mode"] == "include"]
    assert [e["resource"]["resourceType"] for e in included] == ["Medication"]
    outcome = BUNDLES["data-unavailable-observation-timeout"]["entry"][-1]
    assert outcome["search"]["mode"] == "outcome"
    assert outcome["resource"]["issue"][0]["code"] == "timeout"


def test_dispenses_administrations_conditions_smoking_and_ratings() -> None:
    dispenses = [r for _, r in all_resources("MedicationDispense")]
    assert dispenses and all(d["daysSupply"]["code"] == "d" for d in dispenses)
    admins = [r for _, r in all_resources("MedicationAdministration")]
    assert any("decanoate" in a["medicationCodeableConcept"]["text"].lower() for a in admins)
    systems = {
        c["system"] for _, r in all_resources("Condition") for c in r["code"].get("coding", [])
    }
    assert systems == {"http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm"}
    smoking = [o for _, o in all_resources("Observation") if loinc(o) == "72166-2"]
    answers = {
        c["code"]
        for o in smoking
        for c in o["valueCodeableConcept"]["coding"]
        if c["system"] == "http://loinc.org"
    }
    assert answers == {"LA18976-3", "LA15920-4", "LA18981-3"}
    assert any(
        o["code"].get("text") == "PANSS total score" for _, o in all_resources("Observation")
    )


def test_order_sign_scenarios_carry_a_draft() -> None:
    for s in SCENARIOS:
        if (
            s.name.startswith(("new-start", "titration", "trs-", "clozapine-restart"))
            or "order-sign" in s.name
        ):
            statuses = {r["status"] for r in resources(BUNDLES[s.name], "MedicationRequest")}
            assert "draft" in statuses, s.name


# -- benchmark patients and the command line -------------------------------------------------


def test_ten_year_patient_has_the_benchmark_size_and_is_valid() -> None:
    bundle = longitudinal.ten_year_bundle()
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert 1400 <= kinds.count("Observation") <= 1600
    assert 70 <= kinds.count("MedicationRequest") <= 95
    assert kinds.count("Patient") == 1 and kinds.count("MedicationDispense") > 0
    Bundle.model_validate(bundle)
    assert bundle == longitudinal.ten_year_bundle()
    assert bundle != longitudinal.ten_year_bundle(seed=11)


def test_typical_patient_is_two_years_and_valid() -> None:
    bundle = longitudinal.typical_bundle()
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert 150 <= kinds.count("Observation") <= 400
    Bundle.model_validate(bundle)
    clozapine = [
        r for r in resources(bundle, "MedicationRequest") if "cloz" in medication_text(r, bundle)
    ]
    first = min(r["authoredOn"][:10] for r in clozapine)
    assert (date(2026, 3, 1) - date.fromisoformat(first)).days == 730


def test_cli_writes_scenarios_and_benchmark_patients(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["write", str(tmp_path / "out")]) == 0
    written = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "out").iterdir()}
    assert written == scenarios.rendered()
    path = tmp_path / "big" / "ten.json"
    assert main(["longitudinal", str(path), "--as-of", "2025-01-01"]) == 0
    assert path.read_text(encoding="utf-8") == scenarios.dumps(
        longitudinal.ten_year_bundle(date(2025, 1, 1))
    )
    assert main(["typical", str(tmp_path / "typical.json")]) == 0
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["nonsense"])
