"""Observation and DiagnosticReport mapping (fhir_mappings/observations.py)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_mappings.mapped import Mapped
from fhir_mappings.observations import map_diagnostic_report, map_observation
from smartapp.domain import LabResult

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"


def code(system: str, value: str, display: str = "") -> dict[str, Any]:
    coding = {"system": system, "code": value}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def quantity(value: Any, unit: str | None = None, **extra: Any) -> dict[str, Any]:
    q: dict[str, Any] = {"value": value, **extra}
    if unit is not None:
        q.update(unit=unit, system=UCUM, code=unit)
    return q


def obs(
    loinc: str = "751-8",
    value: Any = 1.5,
    unit: str | None = "10*9/L",
    oid: str = "o1",
    when: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": code(LOINC, loinc),
        **(when if when is not None else {"effectiveDateTime": "2026-02-28T08:30:00Z"}),
    }
    if value is not None:
        resource["valueQuantity"] = quantity(value, unit)
    resource.update(extra)
    return resource


def only_lab(mapped: Mapped) -> LabResult:
    assert mapped.issues == []
    assert len(mapped.labs) == 1
    return mapped.labs[0]


def problems(mapped: Mapped) -> list[str]:
    return [i.problem for i in mapped.issues]


# --- labs and units -----------------------------------------------------------------------


def test_anc_in_giga_per_litre_maps_to_1500_per_microlitre() -> None:
    lab = only_lab(map_observation(obs()))
    assert lab == LabResult(
        ref="Observation/o1",
        concept="anc",
        value=1500.0,
        unit="/uL",
        when=datetime(2026, 2, 28, 8, 30, tzinfo=UTC),
        original="1.5 10*9/L",
        code="751-8",
    )


@pytest.mark.parametrize(
    ("loinc", "value", "unit", "concept", "expected"),
    [
        ("753-4", 1.5, "10*3/uL", "anc", 1500.0),
        ("26499-4", 1200, "cells/mm3", "anc", 1200.0),
        ("6690-2", 4.2, "10*9/L", "wbc", 4200.0),
        ("770-8", 55, "%", "neutrophil-pct", 55.0),
        ("26508-2", 3, "%", "band-pct", 3.0),
        ("6896-5", 1.2, "umol/L", "clozapine", 392.196),
        ("6896-5", 0.35, "mg/L", "clozapine", 350.0),
        ("10992-6", 250, "ng/mL", "norclozapine", 250.0),
        ("12375-2", 600, "ug/L", "clozapine-total", 600.0),
        ("10839-9", 0.05, "ng/mL", "troponin-i", 50.0),
        ("89579-7", 12, "ng/L", "troponin-i", 12.0),
        ("67151-1", 14, "pg/mL", "troponin-t", 14.0),
        ("1988-5", 1.1, "mg/dL", "crp", 11.0),
        ("30522-7", 3, "mg/L", "crp", 3.0),
        ("29463-7", 80, "kg", "weight", 80.0),
        ("39156-5", 28.1, "kg/m2", "bmi", 28.1),
        ("4548-4", 6.1, "%", "hba1c", 6.1),
        ("2345-7", 5.5, "mmol/L", "glucose", 99.088),
        ("13457-7", 130, "mg/dL", "ldl", 130.0),
        ("2085-9", 1.0, "mmol/L", "hdl", 38.665),
        ("2093-3", 200, "mg/dL", "cholesterol", 200.0),
        ("2571-8", 150, "mg/dL", "triglycerides", 150.0),
    ],
)
def test_lab_concepts_and_units(
    loinc: str, value: float, unit: str, concept: str, expected: float
) -> None:
    lab = only_lab(map_observation(obs(loinc, value, unit)))
    assert (lab.concept, lab.code) == (concept, loinc)
    assert lab.value == pytest.approx(expected, rel=1e-9)
    assert lab.fasting is False


def test_fasting_glucose_is_flagged() -> None:
    lab = only_lab(map_observation(obs("1558-6", 100, "mg/dL")))
    assert (lab.concept, lab.fasting, lab.value) == ("glucose", True, 100.0)


def test_loinc_oid_is_read_as_loinc() -> None:
    resource = obs()
    resource["code"] = code("urn:oid:2.16.840.1.113883.6.1", "751-8")
    assert only_lab(map_observation(resource)).value == 1500.0


def test_anc_reported_in_percent_is_a_neutrophil_percentage() -> None:
    lab = only_lab(map_observation(obs("751-8", 62, "%")))
    assert (lab.concept, lab.value, lab.unit) == ("neutrophil-pct", 62.0, "%")


def test_unknown_unit_is_an_issue_and_the_result_is_left_out() -> None:
    mapped = map_observation(obs(unit="x"))
    assert mapped.labs == []
    assert problems(mapped) == ["unknown unit 'x' for ANC"]
    assert mapped.issues[0].resource == "Observation/o1"


def test_wrong_kind_of_unit_is_an_issue() -> None:
    mapped = map_observation(obs("1988-5", 5, "10*9/L"))
    assert mapped.labs == []
    assert problems(mapped) == ["unit '10*9/L' is not a unit for CRP"]


def test_missing_unit_is_an_issue() -> None:
    mapped = map_observation(obs(unit=None))
    assert mapped.labs == []
    assert problems(mapped) == ["ANC: no unit"]


def test_unit_text_is_used_when_the_code_is_not_ucum() -> None:
    resource = obs()
    resource["valueQuantity"] = {"value": 1.2, "unit": "K/uL", "system": "http://x", "code": "9"}
    assert only_lab(map_observation(resource)).value == 1200.0


def test_unit_text_is_used_when_the_ucum_code_is_unknown() -> None:
    resource = obs()
    resource["valueQuantity"] = {"value": 1.2, "unit": "x10E3/uL", "system": UCUM, "code": "?"}
    assert only_lab(map_observation(resource)).value == 1200.0


def test_comparator_keeps_the_number_and_the_original_text() -> None:
    resource = obs("10839-9", None)
    resource["valueQuantity"] = quantity(0.01, "ng/mL", comparator="<")
    lab = only_lab(map_observation(resource))
    assert (lab.value, lab.original) == (10.0, "<0.01 ng/mL")


@pytest.mark.parametrize("text", ["1.5 10*9/L", " 1.5  10*9/L ", "1500/uL", "1500 cells/mm3"])
def test_value_string_with_a_number_and_unit_is_read(text: str) -> None:
    resource = obs(value=None, valueString=text)
    assert only_lab(map_observation(resource)).value == 1500.0


@pytest.mark.parametrize("text", ["1.5", "normal", "", "1.5.2 /uL", "1.5/uL extra 2"])
def test_value_string_without_number_and_unit_is_an_issue(text: str) -> None:
    mapped = map_observation(obs(value=None, valueString=text))
    assert mapped.labs == []
    [issue] = mapped.issues
    assert "is not a number with a unit" in issue.problem or "unknown unit" in issue.problem


def test_data_absent_reason_is_an_issue() -> None:
    reason = code("http://terminology.hl7.org/CodeSystem/data-absent-reason", "error")
    mapped = map_observation(obs(value=None, dataAbsentReason=reason))
    assert problems(mapped) == ["ANC: no value (dataAbsentReason: error)"]


def test_no_value_at_all_is_an_issue() -> None:
    assert problems(map_observation(obs(value=None))) == ["ANC: no value"]


def test_coded_value_for_a_lab_is_an_issue() -> None:
    mapped = map_observation(obs(value=None, valueCodeableConcept={"text": "low"}))
    assert problems(mapped) == ["ANC: valueCodeableConcept is not a usable value"]


def test_negative_value_is_an_issue() -> None:
    mapped = map_observation(obs(value=-1.0))
    assert mapped.labs == []
    assert problems(mapped) == ["ANC: negative value -1.0"]


# --- reference ranges ---------------------------------------------------------------------


def test_reference_range_high_becomes_the_uln_in_the_canonical_unit() -> None:
    ranges = [{"low": quantity(0, "ng/mL"), "high": quantity(0.04, "ng/mL")}]
    lab = only_lab(map_observation(obs("10839-9", 0.09, "ng/mL", referenceRange=ranges)))
    assert (lab.value, lab.uln) == (90.0, 40.0)


def test_reference_range_in_another_unit_is_converted() -> None:
    ranges = [{"high": quantity(14, "ng/L")}]
    lab = only_lab(map_observation(obs("67151-1", 0.02, "ug/L", referenceRange=ranges)))
    assert (lab.value, lab.uln) == (20.0, 14.0)


def test_reference_range_without_unit_uses_the_value_unit() -> None:
    ranges = [{"high": {"value": 5}}]
    assert only_lab(map_observation(obs("1988-5", 1, "mg/dL", referenceRange=ranges))).uln == 50.0


def test_reference_range_in_an_unreadable_unit_gives_no_uln_and_no_issue() -> None:
    ranges = [{"high": {"value": 5, "unit": "furlongs"}}]
    lab = only_lab(map_observation(obs("1988-5", 1, "mg/L", referenceRange=ranges)))
    assert lab.uln is None


def test_lowest_normal_high_is_the_uln_and_therapeutic_ranges_are_not() -> None:
    normal = {"coding": [{"code": "normal"}]}
    treatment = {"coding": [{"code": "treatment"}]}
    ranges = [
        {"high": quantity(34, "ng/L"), "type": normal, "appliesTo": [{"text": "male"}]},
        {"high": quantity(16, "ng/L"), "type": normal, "appliesTo": [{"text": "female"}]},
        {"high": quantity(5, "ng/L"), "type": treatment},
        {"high": "garbage"},
    ]
    lab = only_lab(map_observation(obs("89579-7", 20, "ng/L", referenceRange=ranges)))
    assert lab.uln == 16.0


# --- effective time -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected", "date_only"),
    [
        ({"effectiveDateTime": "2026-02-28T10:00:00+02:00", "issued": "2026-03-02T00:00:00Z"},
         datetime(2026, 2, 28, 8, 0, tzinfo=UTC), False),
        ({"effectivePeriod": {"start": "2026-02-27T06:00:00Z"}, "issued": "2026-03-02T00:00:00Z"},
         datetime(2026, 2, 27, 6, 0, tzinfo=UTC), False),
        ({"effectivePeriod": {"end": "2026-02-27"}, "issued": "2026-03-02T00:00:00Z"},
         datetime(2026, 3, 2, 0, 0, tzinfo=UTC), False),
        ({"effectiveInstant": "2026-02-26T23:59:59.123Z", "issued": "2026-03-02T00:00:00Z"},
         datetime(2026, 2, 26, 23, 59, 59, 123000, tzinfo=UTC), False),
        ({"issued": "2026-03-02T12:00:00Z"}, datetime(2026, 3, 2, 12, 0, tzinfo=UTC), False),
        ({"effectiveDateTime": "2026-02-28"}, datetime(2026, 2, 28, tzinfo=UTC), True),
        ({"effectiveDateTime": "2026-02-28T10:00:00"},
         datetime(2026, 2, 28, 10, 0, tzinfo=UTC), False),
    ],
)  # fmt: skip
def test_effective_time_order_and_normalisation(
    when: dict[str, Any], expected: datetime, date_only: bool
) -> None:
    lab = only_lab(map_observation(obs(when=when)))
    assert (lab.when, lab.date_only) == (expected, date_only)
    assert lab.when.tzinfo is UTC


def test_offset_can_move_the_result_to_the_previous_utc_day() -> None:
    lab = only_lab(map_observation(obs(when={"effectiveDateTime": "2026-03-01T01:00:00+05:00"})))
    assert lab.day.isoformat() == "2026-02-28"


def test_missing_effective_time_is_an_issue() -> None:
    mapped = map_observation(obs(when={}))
    assert mapped.labs == []
    assert problems(mapped) == ["ANC: no effective time or issued date"]


@pytest.mark.parametrize("value", ["2026", "2026-02", "yesterday", 20260228, "2026-02-30"])
def test_unreadable_or_partial_effective_time_is_an_issue(value: Any) -> None:
    mapped = map_observation(obs(when={"effectiveDateTime": value, "issued": "2026-03-02"}))
    assert mapped.labs == []
    assert len(mapped.issues) == 1
    assert "effectiveDateTime" in mapped.issues[0].problem


# --- status -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_entered_in_error_and_cancelled_are_skipped_silently(status: str) -> None:
    mapped = map_observation(obs(status=status))
    assert (mapped.labs, mapped.issues, mapped.unmapped) == ([], [], [])


@pytest.mark.parametrize("status", ["final", "amended", "corrected", "preliminary"])
def test_usable_statuses(status: str) -> None:
    assert only_lab(map_observation(obs(status=status))).value == 1500.0


@pytest.mark.parametrize("status", ["registered", "unknown", None, 7, ["final"]])
def test_unusable_status_on_a_result_of_interest_is_an_issue(status: Any) -> None:
    resource = obs()
    resource["status"] = status
    mapped = map_observation(resource)
    assert mapped.labs == []
    assert problems(mapped) == [f"ANC: status '{status}' is not a usable result"]


def test_unusable_status_on_an_unrelated_result_is_ignored() -> None:
    mapped = map_observation(obs("2951-2", 140, "mmol/L", status="registered"))
    assert (mapped.labs, mapped.issues, mapped.unmapped) == ([], [], [])


# --- recognition --------------------------------------------------------------------------


def test_unrelated_lab_is_ignored_not_unmapped() -> None:
    mapped = map_observation(obs("2951-2", 140, "mmol/L"))
    assert (mapped.labs, mapped.issues, mapped.unmapped) == ([], [], [])


def test_local_code_or_text_only_is_ignored() -> None:
    for c in ({"coding": [{"system": "http://lab.local", "code": "NEUT"}]}, {"text": "Neut"}):
        mapped = map_observation(obs(code=c))
        assert (mapped.labs, mapped.issues, mapped.unmapped) == ([], [], [])


@pytest.mark.parametrize("c", [None, {}, {"coding": []}, {"coding": [{"system": LOINC}]}])
def test_observation_without_any_readable_code_is_unmapped(c: Any) -> None:
    resource = obs()
    if c is None:
        del resource["code"]
    else:
        resource["code"] = c
    mapped = map_observation(resource)
    assert (mapped.labs, mapped.issues, mapped.unmapped) == ([], [], ["Observation/o1"])


# --- panels and reports -------------------------------------------------------------------


def cbc() -> dict[str, Any]:
    def component(loinc: str, value: float, unit: str) -> dict[str, Any]:
        return {"code": code(LOINC, loinc), "valueQuantity": quantity(value, unit)}

    return {
        "resourceType": "Observation",
        "id": "cbc1",
        "status": "final",
        "code": code(LOINC, "58410-2", "CBC panel"),
        "effectiveDateTime": "2026-02-20",
        "component": [
            component("6690-2", 5.1, "10*9/L"),
            component("770-8", 60, "%"),
            component("26508-2", 2, "%"),
            component("718-7", 13.5, "g/dL"),
            component("751-8", 3.0, "10*9/L"),
        ],
    }


def test_panel_components_map_like_results_with_the_parent_reference() -> None:
    mapped = map_observation(cbc())
    assert mapped.issues == [] and mapped.unmapped == []
    got = {(lab.concept, lab.value, lab.ref, lab.date_only) for lab in mapped.labs}
    assert got == {
        ("wbc", 5100.0, "Observation/cbc1", True),
        ("neutrophil-pct", 60.0, "Observation/cbc1", True),
        ("band-pct", 2.0, "Observation/cbc1", True),
        ("anc", 3000.0, "Observation/cbc1", True),
    }


def test_component_problems_are_issues_on_the_parent() -> None:
    panel = cbc()
    panel["component"][4]["valueQuantity"]["code"] = panel["component"][4]["valueQuantity"][
        "unit"
    ] = "bananas"
    mapped = map_observation(panel)
    assert problems(mapped) == ["unknown unit 'bananas' for ANC"]
    assert len(mapped.labs) == 3


def report(*contained: dict[str, Any], status: str = "final") -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "id": "dr1",
        "status": status,
        "code": code(LOINC, "58410-2"),
        "effectiveDateTime": "2026-02-21T09:00:00Z",
        "contained": list(contained),
        "result": [{"reference": f"#{c['id']}"} for c in contained]
        + [{"reference": "Observation/elsewhere"}],
    }


def test_report_maps_contained_results_with_the_report_time_as_fallback() -> None:
    own_time = obs(oid="a", when={"effectiveDateTime": "2026-02-20T09:00:00Z"})
    no_time = obs("6690-2", 4.0, "10*9/L", oid="w", when={})
    mapped = map_diagnostic_report(report(own_time, no_time))
    assert mapped.issues == []
    got = {(lab.concept, lab.ref, lab.when.day) for lab in mapped.labs}
    assert got == {("anc", "DiagnosticReport/dr1", 20), ("wbc", "DiagnosticReport/dr1", 21)}


def test_report_follows_contained_has_member() -> None:
    member = obs(oid="m1", when={})
    panel = {"resourceType": "Observation", "id": "p", "status": "final",
             "code": code(LOINC, "58410-2"), "hasMember": [{"reference": "#m1"}]}  # fmt: skip
    dr = report(panel)
    dr["contained"].append(member)
    mapped = map_diagnostic_report(dr)
    assert [(lab.concept, lab.value) for lab in mapped.labs] == [("anc", 1500.0)]


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_withdrawn_report_is_skipped(status: str) -> None:
    mapped = map_diagnostic_report(report(obs(), status=status))
    assert (mapped.labs, mapped.issues) == ([], [])


def test_observation_takes_the_time_of_its_report_when_given() -> None:
    dr = {"resourceType": "DiagnosticReport", "issued": "2026-02-22T10:00:00Z"}
    lab = only_lab(map_observation(obs(when={}), report=dr))
    assert lab.when == datetime(2026, 2, 22, 10, tzinfo=UTC)


# --- malformed input ----------------------------------------------------------------------

MALFORMED: list[tuple[str, Any]] = [
    ("code", "751-8"),
    ("code", {"coding": "751-8"}),
    ("valueQuantity", "1.5 10*9/L"),
    ("valueQuantity", {"value": "1.5", "unit": "10*9/L"}),
    ("valueQuantity", {"value": True, "unit": "10*9/L"}),
    ("valueQuantity", {"value": float("nan"), "unit": "10*9/L"}),
    ("valueQuantity", {"value": 1.5, "unit": 9}),
    ("effectiveDateTime", ["2026-02-28"]),
    ("effectivePeriod", "2026-02-28"),
    ("referenceRange", {"high": 3}),
    ("component", "nope"),
    ("id", 12),
]


@pytest.mark.parametrize(("key", "value"), MALFORMED)
def test_malformed_input_never_raises(key: str, value: Any) -> None:
    resource = copy.deepcopy(obs())
    if key.startswith("effective"):
        del resource["effectiveDateTime"]
    resource[key] = value
    mapped = map_observation(resource)
    assert isinstance(mapped, Mapped)
    assert mapped.labs == [] or key in ("referenceRange", "component", "id")


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("code", "751-8", "Observation.code is not a CodeableConcept"),
        ("valueQuantity", "1.5", "ANC: valueQuantity is not an object"),
        ("valueQuantity", {"value": "1.5"}, "ANC: valueQuantity has no numeric value"),
        ("valueQuantity", {"value": 1.5, "unit": 9}, "ANC: no unit"),
        ("effectiveDateTime", ["x"],
         "ANC: effectiveDateTime '['x']' is not a full date or date-time"),
    ],
)  # fmt: skip
def test_malformed_fields_are_data_issues(key: str, value: Any, problem: str) -> None:
    resource = obs()
    resource[key] = value
    assert problems(map_observation(resource)) == [problem]


@pytest.mark.parametrize("resource", [None, [], "Observation", 3])
def test_non_object_resources_are_issues(resource: Any) -> None:
    assert len(map_observation(resource).issues) == 1
    assert len(map_diagnostic_report(resource).issues) == 1


def test_malformed_report_never_raises() -> None:
    for dr in (
        {"resourceType": "DiagnosticReport", "contained": "x", "result": "y"},
        {"resourceType": "DiagnosticReport", "contained": [1, {"id": 3}], "result": [1, {}]},
        {"resourceType": "DiagnosticReport", "result": [{"reference": "#missing"}]},
    ):
        mapped = map_diagnostic_report(dr)
        assert (mapped.labs, mapped.issues) == ([], [])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.sampled_from(["status", "code", "valueQuantity", "valueString", "effectiveDateTime",
                     "effectivePeriod", "issued", "referenceRange", "component", "id",
                     "dataAbsentReason", "valueCodeableConcept"]),
    st.sampled_from(["", "value", "unit", "code", "system", "comparator"]),
    JSON,
)  # fmt: skip
def test_any_json_anywhere_is_read_or_reported_never_raised(
    key: str, inner: str, value: Any
) -> None:
    resource = cbc()
    resource["valueQuantity"] = quantity(1.5, "10*9/L")
    resource["referenceRange"] = [{"high": quantity(7.5, "10*9/L")}]
    if inner and isinstance(resource.get(key), dict):
        resource[key][inner] = value
    else:
        resource[key] = value
    mapped = map_observation(resource)
    assert not [i for i in mapped.issues if i.problem.startswith("malformed")]
