"""The sandbox EHR's pages (issue 5 item 1): ``GET /sandbox/``, the patient picker, and
``GET /sandbox/launch``, which performs a real SMART EHR launch of our own app.

Launching creates a launch id bound to the patient (and to a CDS card's ``appContext`` when a
smart link passes one) and sends the browser to ``/launch?iss=<sandbox FHIR base>&launch=<id>``,
exactly as an EHR opens a registered app; the app then discovers the sandbox's endpoints,
authorizes with PKCE and receives the patient in the token response.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from smartapp.sandbox import PREFIX, current_urls, sandbox
from smartapp.smart.context import error_page

blueprint = Blueprint("sandbox_ehr", __name__, url_prefix=PREFIX)

PRESCRIBE_PATH = f"{PREFIX}/prescribe"
MAX_APP_CONTEXT_CHARS = 2048
PROFILES = {"us-fda": "US (FDA)", "uk-mhra": "UK (MHRA)"}


def _prescribe_url() -> str | None:
    """The CDS Hooks client page, when it is registered (it lives in its own blueprint)."""
    rules = current_app.url_map.iter_rules()
    return PRESCRIBE_PATH if any(r.rule.startswith(PRESCRIBE_PATH) for r in rules) else None


def launch_path(patient: str, app_context: str | None = None) -> str:
    """The sandbox URL that launches the app for ``patient`` (a CDS card's smart link passes
    its ``appContext`` here)."""
    params = {"patient": patient, **({"appContext": app_context} if app_context else {})}
    return f"{PREFIX}/launch?{urlencode(params)}"


@blueprint.get("/")
def home() -> str:
    urls = current_urls()
    return render_template(
        "sandbox/home.html",
        patients=sandbox().store.patients(),
        profiles=PROFILES,
        app_profile=current_app.config.get("PROFILE"),
        prescribe_url=_prescribe_url(),
        evaluation_date=current_app.config.get("EVALUATION_DATE"),
        fhir_base=urls.fhir_base,
        discovery_url=f"{urls.origin}/cds-services",
        jwks_url=urls.jwks_url,
        launch_path=launch_path,
    )


@blueprint.get("/launch")
def launch() -> BaseResponse:
    patient = request.args.get("patient") or ""
    app_context = request.args.get("appContext") or None
    if sandbox().store.patient(patient) is None:
        return error_page("No such patient", "The sandbox has no patient with that id.", 404)
    if app_context is not None and len(app_context) > MAX_APP_CONTEXT_CHARS:
        return error_page("The link is too long", "The appContext is too long.", 400)
    launch_id = sandbox().auth.create_launch(patient, app_context)
    target = url_for("smart_launch.launch", iss=current_urls().fhir_base, launch=launch_id)
    return redirect(target, code=302)
