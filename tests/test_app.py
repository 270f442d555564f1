from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flask import Flask

from smartapp.app import create_app
from smartapp.rules.findings import FINDING_CODES


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/app.db", "CDS_VERIFY_JWT": False})


def test_healthz_reports_database_and_versions(app: Flask) -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {
        "status": "ok",
        "version": "0.1.0",
        "ruleset_version": "2026.1",
        "database": "ok",
    }


def test_healthz_is_503_when_the_database_is_gone(app: Flask, tmp_path: Path) -> None:
    app.extensions["smartapp.db"].engine.dispose()
    (tmp_path / "app.db").unlink()
    (tmp_path / "app.db").mkdir()  # the path now cannot be opened as a database
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["database"] == "unreachable"


def test_rules_page_has_an_anchor_per_finding_code(app: Flask) -> None:
    page = app.test_client().get("/rules").get_data(as_text=True)
    for code in FINDING_CODES:
        assert f'id="{code}"' in page
    assert "anc.general" in page or "anc." in page


def test_unknown_route_is_an_operation_outcome(app: Flask) -> None:
    response = app.test_client().get("/no-such-page")
    assert response.status_code == 404
    assert response.json["resourceType"] == "OperationOutcome"


def test_disabled_jwt_verification_is_announced_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/a.db", "CDS_VERIFY_JWT": False})
    assert any("JWT verification is OFF" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/b.db"})
    assert not any("JWT verification is OFF" in r.getMessage() for r in caplog.records)


def test_rules_page_has_no_inline_style_or_script(app: Flask) -> None:
    """The CSP allows styles and scripts from our origin only."""
    page = app.test_client().get("/rules").get_data(as_text=True)
    assert "<style" not in page
    assert "<script" not in page
    assert app.test_client().get("/static/rules.css").status_code == 200


def test_evaluation_date_can_be_fixed_for_the_whole_app(tmp_path: Path) -> None:
    from datetime import date

    from smartapp.cds_hooks.views import TODAY
    from smartapp.config import ConfigError

    app = create_app(
        {"DATABASE_URL": f"sqlite:///{tmp_path}/d.db", "EVALUATION_DATE": "2026-03-01"}
    )
    assert app.extensions[TODAY]() == date(2026, 3, 1)
    assert TODAY not in create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/e.db"}).extensions
    with pytest.raises(ConfigError, match="EVALUATION_DATE"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/f.db", "EVALUATION_DATE": "March"})
