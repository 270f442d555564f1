from __future__ import annotations

import pytest

from smartapp.rules.ruleset import RulesetError, default_ruleset, parse_ruleset

SOURCES = {"L1": "label", "policy": "local"}


def test_default_ruleset_loads_with_version_and_sources() -> None:
    rules = default_ruleset()
    assert rules.version
    for path in rules.paths():
        assert rules.param(path).source in rules.sources


def test_cite_names_the_source_and_reference() -> None:
    rules = parse_ruleset(
        {"version": "t", "sources": SOURCES},
        {"a.json": {"anc": {"min": {"value": 1500, "source": "L1", "ref": "Table 1"}}}},
    )
    assert rules.num("anc.min") == 1500
    assert rules.cite("anc.min") == "L1 label (Table 1)"


@pytest.mark.parametrize(
    "part, message",
    [
        ({"x": {"y": {"value": 1}}}, "source"),
        ({"x": {"y": {"value": 1, "source": "NOPE"}}}, "source"),
        ({"x": 3}, "expected an object"),
        ({"_comment": "only a comment"}, "no parameters"),
    ],
)
def test_malformed_rule_data_is_refused(part: dict[str, object], message: str) -> None:
    with pytest.raises(RulesetError, match=message):
        parse_ruleset({"version": "t", "sources": SOURCES}, {"p.json": part})


def test_unknown_parameter_and_wrong_kind_raise() -> None:
    rules = parse_ruleset(
        {"version": "t", "sources": SOURCES},
        {"p.json": {"s": {"n": {"value": "text", "source": "L1"}}}},
    )
    with pytest.raises(RulesetError, match="no rule parameter"):
        rules.num("s.absent")
    with pytest.raises(RulesetError, match="not a number"):
        rules.num("s.n")


def test_only_policy_values_can_be_overridden() -> None:
    rules = parse_ruleset(
        {"version": "t", "sources": SOURCES},
        {
            "p.json": {
                "s": {
                    "published": {"value": 1500, "source": "L1"},
                    "recency": {"value": 7, "source": "policy", "policy": True},
                    "local_uln": {"value": None, "source": "policy", "policy": True},
                }
            }
        },
    )
    changed = rules.with_overrides({"s.recency": 14, "s.local_uln": 26.2})
    assert changed.num("s.recency") == 14
    assert changed.num("s.local_uln") == 26.2
    assert rules.num("s.recency") == 7
    assert "local policy override" in changed.cite("s.recency")
    with pytest.raises(RulesetError, match="published rule"):
        rules.with_overrides({"s.published": 1000})
    with pytest.raises(RulesetError, match="wrong type"):
        rules.with_overrides({"s.recency": "fourteen"})


def test_cite_groups_references_by_source() -> None:
    rules = parse_ruleset(
        {"version": "t", "sources": SOURCES},
        {"p.json": {"s": {
            "a": {"value": 1, "source": "L1", "ref": "Table 1"},
            "b": {"value": 2, "source": "L1", "ref": "Table 2"},
            "c": {"value": 3, "source": "policy"},
            "d": {"value": 4, "source": "L1", "ref": "Table 1"}}}},
    )  # fmt: skip
    assert rules.cite("s.a", "s.b", "s.c", "s.d") == "L1 label (Table 1; Table 2); policy local"
