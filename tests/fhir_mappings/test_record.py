from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_mappings.record import (
    InputError,
    build_record,
    collect,
    load_json_input,
    resource_ref,
    single_patient,
)
from tests.conftest import anc, bundle, clozapine_order, patient

PATIENTS = Path(__file__).parents[1] / "patients"


def test_bundle_maps_patient_medications_and_labs() -> None:
    record = build_record(
        bundle(patient(), clozapine_order("m1", "2026-01-01"), anc("o1", "2026-02-01", 1.2))
    )
    assert record.patient == "Patient/p1"
    assert [m.ref for m in record.medications] == ["MedicationRequest/m1"]
    assert record.medications[0].ingredients == ("clozapine",)
    assert record.medications[0].daily_dose_mg == 400
    assert [(lab.concept, lab.value) for lab in record.labs] == [("anc", 1200)]


def test_duplicate_entries_counted_once() -> None:
    obs = anc("o1", "2026-02-01", 1.2)
    record = build_record(bundle(patient(), obs, obs, type_="searchset"))
    assert len(record.labs) == 1


def test_two_patients_is_an_input_error() -> None:
    with pytest.raises(InputError, match="2 patients"):
        build_record(bundle(patient("a"), anc("o1", "2026-02-01", 1.2, pid="b")))


def test_subject_by_fullurl_resolves_to_the_same_patient() -> None:
    obs = anc("o1", "2026-02-01", 1.2)
    obs["subject"] = {"reference": "urn:uuid:0"}
    record = build_record(bundle(patient("p9"), obs))
    assert record.patient == "Patient/p9"


def test_empty_bundle_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no patient data"):
        build_record(bundle())


@pytest.mark.parametrize(
    "data, message",
    [
        ({"resourceType": "Patient", "id": "p"}, "not a Bundle"),
        ({"hello": 1}, "not a FHIR resource"),
        ([1, 2], "not a FHIR resource"),
        ({"resourceType": "Bundle", "type": "collection", "entry": {}}, "not a list"),
        ({"resourceType": "Bundle", "type": "nonsense"}, "unsupported Bundle type"),
    ],
)
def test_not_a_bundle(data: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_record(data)


def test_failed_search_outcome_becomes_unavailable() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "timeout", "diagnostics": "Observation search timed out"}
        ],
    }
    data = bundle(patient(), outcome, type_="searchset")
    data["entry"][1]["search"] = {"mode": "outcome"}
    record = build_record(data)
    assert record.unavailable == ("Observation search timed out",)


def test_informational_outcome_is_not_a_failure() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational"}],
    }
    record = build_record(bundle(patient(), outcome, anc("o1", "2026-02-01", 1.2)))
    assert record.unavailable == ()


def test_nested_batch_response_bundles_are_flattened() -> None:
    inner = bundle(anc("o1", "2026-02-01", 1.2), type_="searchset")
    outer = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [{"resource": patient()}, {"resource": inner}],
    }
    record = build_record(outer)
    assert [lab.ref for lab in record.labs] == ["Observation/o1"]


def test_ndjson_file(tmp_path: Path) -> None:
    path = tmp_path / "p.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in (patient(), anc("o1", "2026-02-01", 2.0))))
    record = build_record(load_json_input(path))
    assert record.labs[0].value == 2000


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "file is empty"),
        ("{not json", "not JSON"),
        ('{"resourceType": "Patient"}\n{broken', "record 2"),
    ],
)
def test_unreadable_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_json_input(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_json_input(tmp_path / "absent.json")


def test_result_without_time_takes_its_report_time() -> None:
    obs = anc("o1", "2026-02-01", 1.2)
    del obs["effectiveDateTime"]
    report = {
        "resourceType": "DiagnosticReport",
        "id": "r1",
        "status": "final",
        "code": {"text": "CBC"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-02-03T08:00:00Z",
        "result": [{"reference": "Observation/o1"}],
    }
    record = build_record(bundle(patient(), report, obs))
    assert [(lab.ref, lab.day.isoformat()) for lab in record.labs] == [
        ("Observation/o1", "2026-02-03")
    ]
    assert record.data_issues == ()


def test_resource_without_id_takes_its_urn_uuid() -> None:
    obs = anc("ignored", "2026-02-01", 1.2)
    del obs["id"]
    record = build_record(bundle(patient(), obs))
    assert record.labs[0].ref == "Observation/1"


def _aliases_from_scratch(by_ref: dict[str, Any]) -> dict[str, str]:
    """How ``single_patient`` worked the aliases out before ``collect`` kept them."""
    return {key: resource_ref(r) for key, r in by_ref.items() if key != resource_ref(r)}


def test_collect_keeps_the_aliases_single_patient_would_work_out() -> None:
    no_id = {"resourceType": "Observation", "subject": {"reference": "urn:uuid:p"}}
    entries = [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient"}},
        {"fullUrl": "http://ehr/fhir/Patient/p", "resource": patient("p")},
        {"fullUrl": "http://ehr/fhir/Observation/x", "resource": no_id},
        {"fullUrl": "urn:uuid:p", "resource": anc("o2", "2026-02-01", 1.0, pid="p")},
        {"fullUrl": "", "resource": anc("o3", "2026-02-02", 1.0, pid="p")},
        {"resource": anc("o4", "2026-02-03", 1.0, pid="p")},
    ]
    collected = collect({"resourceType": "Bundle", "type": "collection", "entry": entries})
    assert collected.aliases == _aliases_from_scratch(collected.by_ref)
    assert collected.aliases["urn:uuid:p"] == "Patient/p"
    assert collected.aliases["http://ehr/fhir/Observation/x"] == "Observation/(no id)"
    assert single_patient(collected.resources, collected.aliases) == "Patient/p"


@pytest.mark.parametrize(
    "path", sorted(p for p in PATIENTS.glob("*.json") if p.stem != "index"), ids=lambda p: p.stem
)
def test_collected_aliases_match_for_every_synthetic_patient(path: Path) -> None:
    collected = collect(json.loads(path.read_text()))
    assert collected.aliases == _aliases_from_scratch(collected.by_ref)
