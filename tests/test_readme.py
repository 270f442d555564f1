"""The README stays the reference: every configuration key is documented there, and the quick
start is two commands."""

from __future__ import annotations

import re
from pathlib import Path

from smartapp.config import DEFAULTS
from smartapp.rules.ruleset import default_ruleset

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_configuration_key_is_documented() -> None:
    missing = [key for key in DEFAULTS if f"`SMARTAPP_{key}`" not in README]
    assert missing == []


def test_quick_start_is_two_commands() -> None:
    section = README.split("## Quick start", 1)[1].split("##", 1)[0]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2
    assert "smartapp demo" in commands[0]
    assert commands[1].endswith(".venv/bin/pytest")
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci


def test_the_rule_override_example_names_a_policy_value() -> None:
    example = re.search(r'`\{"([a-z_.]+)": \d+\}`', README)
    assert example is not None
    assert default_ruleset().param(example.group(1)).policy
