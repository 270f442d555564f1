"""Shared FHIR value readers (fhir_mappings/fhir_values.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fhir_mappings.fhir_values import (
    absent,
    finite_number,
    normalise_text,
    parse_datetime,
    reference,
    system_of,
)


def test_parse_datetime_rejects_space_separator() -> None:
    assert parse_datetime("2026-02-28 10:00:00Z") is None
    assert parse_datetime("2026-02-28T10:00:00Z") == (datetime(2026, 2, 28, 10, tzinfo=UTC), False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-02-28", (datetime(2026, 2, 28, tzinfo=UTC), True)),
        ("2026-03-01T01:00:00+05:00", (datetime(2026, 2, 28, 20, tzinfo=UTC), False)),
        ("2026-02-28T10:00:00", (datetime(2026, 2, 28, 10, tzinfo=UTC), False)),
        ("2026", None),
        ("2026-02", None),
        ("2026-02-30", None),
        (20260228, None),
        (None, None),
    ],
)
def test_parse_datetime_dates_offsets_and_partial_dates(
    value: Any, expected: tuple[datetime, bool] | None
) -> None:
    assert parse_datetime(value) == expected


def test_system_of_reads_oids_as_their_uri() -> None:
    assert system_of({"system": "urn:oid:2.16.840.1.113883.6.1"}) == "http://loinc.org"
    assert system_of({"system": "urn:oid:2.16.840.1.113883.6.96"}) == "http://snomed.info/sct"
    assert system_of({"system": "http://x"}) == "http://x"
    assert system_of({"system": 7}) == system_of({}) == ""


def test_normalise_text_is_padded_lower_case_words() -> None:
    assert normalise_text("Ex-smoker (finding)") == " ex smoker "
    assert " panss " in normalise_text("PANSS-total")
    assert " panss " not in normalise_text("PANSSX")


def test_reference_without_a_string_id() -> None:
    assert reference("Observation", {"id": "o1"}) == "Observation/o1"
    assert reference("Observation", {"id": ""}) == "Observation/(no id)"
    assert reference("Condition", {"id": 12}) == "Condition/(no id)"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3.0), (1.5, 1.5), (True, None), ("1.5", None), (float("nan"), None),
     (float("inf"), None), (None, None)],
)  # fmt: skip
def test_finite_number(value: Any, expected: float | None) -> None:
    assert finite_number(value) == expected


def test_absent_names_the_unusable_value_or_the_absent_reason() -> None:
    assert absent({"valueBoolean": True}, "ANC") == "ANC: valueBoolean is not a usable value"
    reason = {"coding": [{"code": "masked"}]}
    assert absent({"dataAbsentReason": reason}, "ANC") == "ANC: no value (dataAbsentReason: masked)"
    assert absent({"dataAbsentReason": {}}, "ANC") == "ANC: no value (dataAbsentReason: unstated)"
    assert absent({}, "ANC") == "ANC: no value"
