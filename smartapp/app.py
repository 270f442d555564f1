"""The Flask application factory (design.md, Architecture): one app, one blueprint per surface."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import date
from typing import Any

from flask import Flask

from smartapp import health, rules_page
from smartapp.cds_hooks import views as cds_views
from smartapp.cds_hooks.views import TODAY
from smartapp.config import PROJECT_ROOT, ConfigError, load_config
from smartapp.dashboard import views as dashboard_views
from smartapp.errors import register_error_handlers
from smartapp.persistence import Database, default_sqlite_url
from smartapp.rules.ruleset import default_ruleset
from smartapp.smart.launch import init_smart
from smartapp.smart.security import init_security

log = logging.getLogger(__name__)


def default_instance_path() -> str:
    """Flask's instance folder for this package (``instance/`` beside it, or under the
    environment's ``var/`` when installed): where the embedded SQLite database lives."""
    return Flask(__name__).instance_path


def instance_database_url(config: Mapping[str, Any], instance_path: str | None = None) -> str:
    return str(
        config["DATABASE_URL"] or default_sqlite_url(instance_path or default_instance_path())
    )


def upgrade_database(config: Mapping[str, Any]) -> None:
    """Migrate the configured database (the instance folder's SQLite file by default) to the
    latest schema, outside any app: ``smartapp db upgrade`` and ``serve`` before forking."""
    os.makedirs(default_instance_path(), exist_ok=True)
    database = Database(instance_database_url(config))
    try:
        database.upgrade()
    finally:
        database.dispose()


def _fix_evaluation_date(app: Flask) -> None:
    text = app.config["EVALUATION_DATE"]
    if not text:
        return
    try:
        day = date.fromisoformat(str(text))
    except ValueError:
        raise ConfigError(f"SMARTAPP_EVALUATION_DATE: not a date (YYYY-MM-DD): {text!r}") from None
    app.extensions[TODAY] = lambda: day
    log.warning("Evaluation date fixed at %s (EVALUATION_DATE): not for clinical use", day)


def _register_sandbox(app: Flask) -> None:
    """The sandbox EHR, only when SANDBOX_ENABLED (the demo): the product never imports it
    otherwise. Runs before ``init_security``, which reads the CSRF exemptions it adds."""
    if not app.config["SANDBOX_ENABLED"]:
        return
    from smartapp import sandbox
    from smartapp.sandbox import cds_client

    log.warning("Sandbox EHR enabled (SANDBOX_ENABLED): synthetic patients, not for clinical use")
    sandbox.allow_sandbox_callers(app)
    sandbox.register(app)
    app.register_blueprint(cds_client.blueprint)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: configuration (defaults < launch.json < SMARTAPP_* < ``config``), the
    database (migrated to the latest schema unless AUTO_MIGRATE is off), the rule data with
    local policy overrides, and the blueprints."""
    app = Flask(__name__, instance_relative_config=True, static_folder=str(PROJECT_ROOT / "static"))
    app.config.update(load_config(config))
    os.makedirs(app.instance_path, exist_ok=True)
    database = Database(instance_database_url(app.config, app.instance_path))
    if app.config["AUTO_MIGRATE"]:
        database.upgrade()
    app.extensions["smartapp.db"] = database
    app.extensions["smartapp.rules"] = default_ruleset().with_overrides(
        app.config["RULE_OVERRIDES"]
    )
    _fix_evaluation_date(app)
    register_error_handlers(app)
    _register_sandbox(app)
    init_security(app)
    init_smart(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(rules_page.blueprint)
    app.register_blueprint(cds_views.blueprint)
    app.register_blueprint(dashboard_views.blueprint)
    if not app.config["CDS_VERIFY_JWT"]:
        log.warning(
            "!!! CDS client JWT verification is OFF (SMARTAPP_CDS_VERIFY_JWT=false): any caller "
            "can invoke the CDS services. Use this for local development only. !!!"
        )
    return app
