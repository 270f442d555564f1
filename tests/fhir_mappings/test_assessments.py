"""Smoking status and rating-scale totals (fhir_mappings.assessments), tested through
``map_observation``, the way the mapping uses them."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_mappings.observations import map_observation
from tests.fhir_mappings.test_observations import LOINC, SNOMED, code, obs, problems

# --- smoking status -----------------------------------------------------------------------


def smoking(answer: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    resource = obs("72166-2", value=None, oid="s1", **extra)
    if answer is not None:
        resource["valueCodeableConcept"] = answer
    return resource


@pytest.mark.parametrize(
    ("answer", "state", "e_cig"),
    [
        (code(LOINC, "LA18976-3"), "smoker", False),
        (code(LOINC, "LA18977-1"), "smoker", False),
        (code(LOINC, "LA18979-7"), "smoker", False),
        (code(LOINC, "LA18981-3"), "smoker", False),
        (code(LOINC, "LA18982-1"), "smoker", False),
        (code(LOINC, "LA15920-4"), "non-smoker", False),
        (code(LOINC, "LA18978-9"), "non-smoker", False),
        (code(LOINC, "LA18980-5"), "unknown", False),
        (code(SNOMED, "449868002"), "smoker", False),
        (code(SNOMED, "77176002"), "smoker", False),
        (code(SNOMED, "8517006"), "non-smoker", False),
        (code(SNOMED, "266919005"), "non-smoker", False),
        (code(SNOMED, "266927001"), "unknown", False),
        (code(SNOMED, "722499006"), "non-smoker", True),
        ({"text": "Former smoker."}, "non-smoker", False),
        ({"text": "Ex-smoker (finding)"}, "non-smoker", False),
        ({"text": "E-cigarette user"}, "non-smoker", True),
        ({"coding": [{"system": "http://x", "code": "1", "display": "Current smoker"}]},
         "smoker", False),
        ({"text": "trying to quit"}, "unknown", False),
        ({"coding": [{"system": "http://x", "code": "zz"}]}, "unknown", False),
    ],
)  # fmt: skip
def test_smoking_answers(answer: dict[str, Any], state: str, e_cig: bool) -> None:
    mapped = map_observation(smoking(answer))
    assert mapped.issues == []
    [status] = mapped.smoking
    assert (status.state, status.e_cigarette_only, status.ref) == (state, e_cig, "Observation/s1")


def test_smoking_value_string_is_read_as_text() -> None:
    [status] = map_observation(smoking(valueString="never smoker")).smoking
    assert status.state == "non-smoker"


def test_smoking_without_answer_is_an_issue() -> None:
    mapped = map_observation(smoking())
    assert mapped.smoking == []
    assert problems(mapped) == ["smoking status: no value"]


# --- rating scales ------------------------------------------------------------------------


def rating(text: str, value: Any = 95, key: str = "valueInteger") -> dict[str, Any]:
    resource = obs("x", value=None, oid="r1")
    resource["code"] = {"coding": [{"system": "http://local", "code": "P"}], "text": text}
    resource[key] = value
    return resource


@pytest.mark.parametrize(
    ("text", "scale"),
    [
        ("PANSS total score", "panss-total"),
        ("Positive and Negative Syndrome Scale", "panss-total"),
        ("BPRS", "bprs-total"),
        ("Brief Psychiatric Rating Scale total", "bprs-total"),
        ("CGI-S", "cgi-s"),
        ("Clinical Global Impression - Severity", "cgi-s"),
    ],
)
def test_rating_scales_are_recognised_by_text(text: str, scale: str) -> None:
    value = 5 if scale == "cgi-s" else 95
    mapped = map_observation(rating(text, value))
    assert mapped.issues == []
    [score] = mapped.ratings
    assert (score.scale, score.value, score.ref) == (scale, float(value), "Observation/r1")


@pytest.mark.parametrize("text", ["PANSS positive subscale", "PANSS item P1", "CGI-I", "PHQ-9"])
def test_subscales_and_other_scales_are_not_totals(text: str) -> None:
    mapped = map_observation(rating(text, 20))
    assert (mapped.ratings, mapped.issues) == ([], [])


def test_rating_from_value_quantity() -> None:
    [score] = map_observation(rating("PANSS", {"value": 88}, "valueQuantity")).ratings
    assert score.value == 88.0


@pytest.mark.parametrize(("text", "value"), [("PANSS", 12), ("CGI-S", 9), ("BPRS", "many")])
def test_rating_out_of_range_or_not_a_number_is_an_issue(text: str, value: Any) -> None:
    mapped = map_observation(rating(text, value))
    assert mapped.ratings == []
    [issue] = mapped.issues
    assert issue.problem.endswith("score is not a number from " + {"PANSS": "30 to 210",
        "CGI-S": "1 to 7", "BPRS": "0 to 168"}[text])  # fmt: skip


def test_rating_without_value_is_an_issue() -> None:
    resource = rating("PANSS total")
    del resource["valueInteger"]
    assert problems(map_observation(resource)) == ["PANSS total: no value"]
