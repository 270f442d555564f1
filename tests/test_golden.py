"""The golden set: ``smartapp evaluate`` on every synthetic patient gives the reviewed output.

Golden files live in ``tests/golden/<name>.json``. After a deliberate change to the rules,
regenerate them with ``SMARTAPP_UPDATE_GOLDEN=1 pytest tests/test_golden.py`` and review the
diff: that diff is the clinical change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from smartapp.cli import main
from smartapp.rules.findings import FINDING_CODES

HERE = Path(__file__).parent
PATIENTS = HERE / "patients"
GOLDEN = HERE / "golden"
INDEX: list[dict[str, Any]] = json.loads((PATIENTS / "index.json").read_text(encoding="utf-8"))


def run_evaluate(entry: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    argv = [
        "evaluate",
        str(PATIENTS / f"{entry['name']}.json"),
        "--as-of",
        entry["as_of"],
        "--profile",
        entry["profile"],
    ]
    assert main(argv) == 0, capsys.readouterr().err
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


@pytest.mark.parametrize("entry", INDEX, ids=[e["name"] for e in INDEX])
def test_golden(entry: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    result = run_evaluate(entry, capsys)
    path = GOLDEN / f"{entry['name']}.json"
    if os.environ.get("SMARTAPP_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert result == expected


@pytest.mark.parametrize("entry", INDEX, ids=[e["name"] for e in INDEX])
def test_designed_codes_are_produced(
    entry: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    codes = {f["code"] for f in run_evaluate(entry, capsys)["findings"]}
    missing = set(entry["expected_codes"]) - codes
    assert not missing, f"{entry['name']} should produce {sorted(missing)}"


def test_every_finding_code_is_produced_by_some_patient() -> None:
    produced = {
        f["code"]
        for path in GOLDEN.glob("*.json")
        for f in json.loads(path.read_text(encoding="utf-8"))["findings"]
    }
    assert sorted(set(FINDING_CODES) - produced) == []


def test_at_least_twenty_patients() -> None:
    assert len(INDEX) >= 20
    assert {p.stem for p in GOLDEN.glob("*.json")} == {e["name"] for e in INDEX}
