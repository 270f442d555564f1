"""``/healthz`` for load balancers: the process answers and its database is reachable."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from smartapp import __version__
from smartapp.rules.ruleset import default_ruleset

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> tuple[Response, int]:
    database = current_app.extensions["smartapp.db"]
    ok = database.ping()
    body = {
        "status": "ok" if ok else "degraded",
        "version": __version__,
        "ruleset_version": default_ruleset().version,
        "database": "ok" if ok else "unreachable",
    }
    return jsonify(body), 200 if ok else 503
