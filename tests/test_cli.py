from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from smartapp.cli import main
from tests.conftest import anc, bundle, clozapine_order, patient


def write(tmp_path: Path, data: Any, name: str = "in.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write(
        tmp_path,
        bundle(patient(), clozapine_order("m1", "2026-01-01"), anc("o1", "2026-02-25", 1.2)),
    )


def test_good_bundle_json(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(good), "--as-of", "2026-03-01"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["schema"] == "smartapp.evaluation/1"
    assert out["as_of"] == "2026-03-01"
    assert out["patient"] == "Patient/p1"
    assert out["profile"] == "us-fda"
    assert out["ruleset_version"]
    assert out["clozapine"]["status"] == "active"
    assert out["anc"]["latest"]["value"] == 1200
    assert "anc-mild" in [f["code"] for f in out["findings"]]
    for finding in out["findings"]:
        assert finding["severity"] in ("info", "warning", "critical")
        assert finding["source"]


def test_good_bundle_text(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(good), "--as-of", "2026-03-01", "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "anc-mild" in out
    assert "Patient/p1" in out


def test_uk_profile(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(good), "--as-of", "2026-03-01", "--profile", "uk-mhra"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"] == "uk-mhra"
    assert "fbc-red" in [f["code"] for f in out["findings"]]


@pytest.mark.parametrize(
    "content, message",
    [
        (bundle(), "no patient data"),
        ("this is not json", "not JSON"),
        ({"resourceType": "Patient", "id": "p1"}, "not a Bundle"),
        (bundle(patient("a"), anc("o1", "2026-02-01", 1.2, pid="b")), "2 patients"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: Any, message: str
) -> None:
    assert main(["evaluate", str(write(tmp_path, content))]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "x.json", "--as-of", "yesterday"],
        ["evaluate", "x.json", "--profile", "eu"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_console_script_never_prints_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "[1, 2, 3]")
    run = subprocess.run(
        [sys.executable, "-m", "smartapp", "evaluate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.startswith("smartapp: ")


def test_db_upgrade_creates_the_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMARTAPP_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    assert main(["db", "upgrade"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (tmp_path / "cli.db").exists()


def test_malformed_configuration_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMARTAPP_AUTO_MIGRATE", "perhaps")
    assert main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert "SMARTAPP_AUTO_MIGRATE" in err
    assert err.count("\n") == 1
