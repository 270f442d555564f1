"""``json_text.loads`` reads JSON as ``json.loads`` does (orjson first, the standard library for
whatever orjson refuses), except integers beyond 64 bits, which read as floats."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_mappings.json_text import loads

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(blacklist_categories=())),  # lone surrogates too
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


def beyond_64_bits(number: Any) -> bool:
    return type(number) is int and not -(2**63) <= number < 2**64


def same(a: Any, b: Any) -> bool:
    """``a`` (ours) equals ``b`` (the standard library's) with equal types all the way down
    (NaN equals NaN, 1 is not 1.0), but for an integer beyond 64 bits, which ``a`` may hold
    as the nearest float."""
    if type(a) is float and beyond_64_bits(b):
        return a == float(b)
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and str(a) == str(b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def reference(text: str | bytes) -> Any:
    """``json.loads`` of UTF-8 text."""
    return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)


def outcome(parse: Any, text: Any) -> tuple[str, Any]:
    try:
        return "ok", parse(text)
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


@settings(max_examples=300, deadline=None)
@given(value=json_values, ensure_ascii=st.booleans())
def test_any_json_reads_as_the_standard_library_reads_it(value: Any, ensure_ascii: bool) -> None:
    text = json.dumps(value, ensure_ascii=ensure_ascii)
    assert same(loads(text), reference(text))
    data = text.encode("utf-8", "surrogatepass")
    ours, theirs = outcome(loads, data), outcome(reference, data)
    assert ours[0] == theirs[0]
    assert same(ours[1], theirs[1]) if ours[0] == "ok" else ours[1] == theirs[1]


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet='{}[]":,.0123456789-+eE tfnrulasNIaIy\\\n\x00', max_size=30))
def test_near_json_text_reads_or_fails_as_the_standard_library(text: str) -> None:
    ours, theirs = outcome(loads, text), outcome(reference, text)
    assert ours[0] == theirs[0]
    assert same(ours[1], theirs[1]) if ours[0] == "ok" else ours[1] == theirs[1]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=30))
def test_bytes_read_or_fail_as_decode_then_json(data: bytes) -> None:
    ours, theirs = outcome(loads, data), outcome(reference, data)
    assert ours[0] == theirs[0]
    assert same(ours[1], theirs[1]) if ours[0] == "ok" else ours[1] == theirs[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NaN", math.nan),
        ("[Infinity, -Infinity]", [math.inf, -math.inf]),
        ("1e400", math.inf),
        ('"\\ud800"', "\ud800"),
    ],
)
def test_what_only_the_standard_library_accepts_still_reads(text: str, expected: Any) -> None:
    assert same(loads(text), expected)
    assert same(loads(text.encode()), expected)


def test_malformed_json_names_the_standard_library_position() -> None:
    text = '{\n  "a": [1, 2,,]\n}'
    with pytest.raises(json.JSONDecodeError) as caught:
        loads(text)
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    assert (caught.value.lineno, caught.value.colno) == (2, 14)
    assert str(caught.value) == str(expected.value)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b'{"a": "\xff"}', UnicodeDecodeError),
        (b"\xef\xbb\xbf{}", json.JSONDecodeError),  # a BOM is not JSON text
        (b"[" * 100_000 + b"]" * 100_000, RecursionError),
    ],
)
def test_unreadable_bytes_raise_as_before(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        loads(data)


def test_integers_within_64_bits_stay_integers() -> None:
    assert loads(f"[{2**64 - 1}, {-(2**63)}, 0, -0]") == [2**64 - 1, -(2**63), 0, 0]
    assert all(type(n) is int for n in loads(f"[{2**64 - 1}, {-(2**63)}]"))


def test_integers_beyond_64_bits_read_as_floats() -> None:
    """The one documented difference: orjson reads them as the nearest float."""
    big = loads(str(2**70))
    assert type(big) is float and big == float(2**70)
    assert type(loads(str(-(2**63) - 1))) is float
