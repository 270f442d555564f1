"""The clinician dashboard (issue 4 item 4; design.md Contract 3): ``GET /app`` shows the
patient of the current SMART launch, ``POST /app/statements`` records a clinician statement.

``GET /app``: fetch the patient's data with the launch's token (``data.py``: the CDS prefetch
queries, in parallel, only for granted resource types), read the clinician statements kept
for this patient, evaluate as of today (UTC) with the configured profile, and render. A FHIR
401 is retried once with a refreshed token, then the page asks for a relaunch; a 403 names the
resource type refused. A card link (``appContext`` naming a finding) highlights that finding; the
launch callback lands on ``/app#<code>`` so the browser scrolls to it.

``POST /app/statements`` (CSRF-checked by ``smart.security``): "BEN confirmed" (kind
``ben-confirmed``, value ``true``/``false``) or "response to a trial" (kind ``trial-response``,
value ``<drug>:responded`` / ``<drug>:no-response``), stored with the launch's user and the time;
then back to ``/app#statements`` (post/redirect/get), where the evaluation reads it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from datetime import UTC, date, datetime

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from fhir_mappings.record import InputError, build_record
from smartapp.cds_hooks.views import TODAY
from smartapp.dashboard.data import (
    AccessDenied,
    AuthorizationExpired,
    NoPatient,
    PatientData,
    fetch_patient_data,
)
from smartapp.dashboard.page import DashboardPage, app_context_finding, assemble
from smartapp.domain import ClinicianStatement, PatientRecord
from smartapp.fhir_client import FhirClient
from smartapp.persistence import Database, store
from smartapp.rules.evaluate import evaluate
from smartapp.rules.ruleset import RuleContext, Ruleset
from smartapp.smart import context
from smartapp.smart.context import LaunchContext, LaunchExpired, error_page

log = logging.getLogger(__name__)

blueprint = Blueprint("dashboard", __name__)

DRUG = re.compile(r"[a-z][a-z0-9\-]{1,63}")
VERDICTS = ("responded", "no-response")
MAX_PATIENT_KEY = 256


def _current_launch() -> LaunchContext | None:
    return context.current_launch()


def _fhir_client(launch: LaunchContext, force_refresh: bool = False) -> FhirClient:
    return context.fhir_client(launch, force_refresh=force_refresh)


# Seams: tests put a launch and a FHIR client in place through these.
launch_provider: Callable[[], LaunchContext | None] = _current_launch
client_provider: Callable[[LaunchContext, bool], FhirClient] = _fhir_client


def patient_key(launch: LaunchContext) -> str:
    """Statements are kept per patient of one FHIR server: the patient's absolute URL
    (``https://ehr/fhir/Patient/123``), hashed when longer than the column allows."""
    key = f"{launch.fhir_base.rstrip('/')}/Patient/{launch.patient_id}"
    if len(key) <= MAX_PATIENT_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest() + f"/Patient/{launch.patient_id}"


def evaluation_day() -> tuple[date, bool]:
    """Today in UTC, or the day the sandbox or a test fixed for the whole app (the
    ``smartapp.today`` extension the CDS service reads too); True when fixed."""
    fixed = current_app.extensions.get(TODAY)
    if fixed is not None:
        return fixed(), True
    return datetime.now(UTC).date(), False


def recorded_at() -> datetime:
    """Now, in UTC. When the sandbox or a test fixed the evaluation day in the past, the
    statement is dated on that day (at the current time of day), so the evaluation of that day
    sees it: the rules ignore statements recorded after the day they evaluate."""
    now = datetime.now(UTC)
    day, fixed = evaluation_day()
    if fixed and day < now.date():
        return datetime.combine(day, now.timetz())
    return now


def _database() -> Database:
    db: Database = current_app.extensions["smartapp.db"]
    return db


def _no_launch() -> Response:
    return error_page(
        "No patient open",
        "The app has no current launch: open it from the patient's chart in the EHR.",
        401,
        relaunch=True,
    )


def _record(
    data: PatientData, launch: LaunchContext, statements: list[ClinicianStatement]
) -> PatientRecord:
    expected = f"Patient/{launch.patient_id}"
    try:
        record = build_record(data.resources, statements=statements, unavailable=data.unavailable)
    except InputError as error:
        if data.resources:
            raise
        log.info("dashboard: no data for the patient (%s)", error)
        record = PatientRecord(
            patient=expected, statements=tuple(statements), unavailable=tuple(data.unavailable)
        )
    if record.patient not in (None, expected):
        raise InputError(f"the EHR returned data about {record.patient}, not {expected}")
    return record


def _page(launch: LaunchContext) -> DashboardPage:
    client = client_provider(launch, False)
    data = fetch_patient_data(
        client,
        launch.patient_id,
        lambda resource_type: context.can_read(launch, resource_type),
        workers=int(current_app.config["FHIR_PARALLEL"]),
        refresh=lambda: client_provider(launch, True),
    )
    statements = store.list_statements(_database(), patient_key(launch))
    record = _record(data, launch, statements)
    as_of, pinned = evaluation_day()
    rules: Ruleset = current_app.extensions["smartapp.rules"]
    profile = current_app.config["PROFILE"]
    cpz = current_app.config["CPZ_METHOD"]
    evaluation = evaluate(record, as_of, profile, rules=rules, cpz_method=cpz)
    ctx = RuleContext(as_of=as_of, profile=profile, rules=rules, cpz_method=cpz)
    return assemble(
        record,
        evaluation,
        ctx,
        patient=data.patient,
        patient_id=launch.patient_id or "",
        show_banner=launch.need_patient_banner,
        refused=tuple(data.refused),
        statements=statements,
        highlight=app_context_finding(launch.app_context, launch.patient_id),
        as_of_pinned=pinned,
    )


@blueprint.get("/app")
def dashboard() -> BaseResponse:
    launch = launch_provider()
    if launch is None:
        return _no_launch()
    try:
        page = _page(launch)
    except (LaunchExpired, AuthorizationExpired):
        return context.relaunch_page()
    except AccessDenied as denied:
        return error_page(
            "Access refused by the EHR",
            f"The EHR's FHIR server refused access to {denied.resource_type} (HTTP 403), "
            "although the launch granted it. Ask your EHR administrator.",
            403,
        )
    except NoPatient as error:
        return error_page(
            "No patient in context", f"{error}. Open the app from a patient's chart.", 400
        )
    except InputError as error:
        log.warning("dashboard: unusable patient data (%s)", error)
        return error_page(
            "The patient's data could not be shown",
            "The EHR returned data the app cannot attribute to this one patient; nothing is "
            "shown rather than something misleading.",
            502,
        )
    return Response(render_template("dashboard/app.html", page=page, launch=launch))


def _statement_value(form: dict[str, str]) -> tuple[str, str] | None:
    kind = form.get("kind", "")
    if kind == "ben-confirmed" and form.get("ben") in ("true", "false"):
        return kind, form["ben"]
    if kind == "trial-response":
        drug, verdict = form.get("drug", "").strip().lower(), form.get("verdict", "")
        if DRUG.fullmatch(drug) and verdict in VERDICTS:
            return kind, f"{drug}:{verdict}"
    return None


@blueprint.post("/app/statements")
def record_statement() -> BaseResponse:
    launch = launch_provider()
    if launch is None or not launch.patient_id:
        return _no_launch()
    chosen = _statement_value({k: str(v) for k, v in request.form.items()})
    if chosen is None:
        return error_page(
            "Statement not recorded",
            "Choose what to record: BEN confirmed yes or no, or a drug from the trial ledger "
            "with its response.",
            400,
        )
    kind, value = chosen
    statement = ClinicianStatement(
        kind=kind, value=value, author=launch.fhir_user or "unknown user", recorded=recorded_at()
    )
    store.add_statement(_database(), patient_key(launch), statement)
    log.info("dashboard: clinician statement %s recorded", kind)
    return redirect(url_for(".dashboard") + "#statements", 303)
