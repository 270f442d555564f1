"""The sandbox FHIR R4 API at ``/sandbox/fhir`` (issue 5 item 1): read and search over the
synthetic patients, for the app's dashboard and the CDS service's prefetch fallback.

- ``GET /metadata`` and ``GET /.well-known/smart-configuration``: open to anyone (discovery).
- Everything else needs ``Authorization: Bearer <token>`` issued by the sandbox auth server:
  401 without a current token, 403 when the granted scopes do not allow reading
  (``r``) or searching (``s``) the type (v1 ``.read`` or v2 ``.rs``).
- Patient scoped: a token sees one patient's compartment. A search naming another patient is
  403; a read of a resource in another patient's compartment is 404 (its existence is not
  disclosed); shared resources (Medication) are readable.
- Searches (``search``) answer a ``searchset`` Bundle with ``total``, absolute ``fullUrl``s,
  ``self`` and ``next`` links (``_count`` up to MAX_COUNT, paged by ``_offset``), and the
  ``_include``d resources of each page marked ``search.mode = include``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from flask import Blueprint, Response, request

from smartapp.sandbox import FHIR_PATH, current_urls, sandbox
from smartapp.sandbox.auth_server import Grant, smart_configuration
from smartapp.sandbox.search import (
    COMPARTMENT_TYPES,
    DATES,
    REFERENCES,
    SEARCHABLE_TYPES,
    TOKENS,
    SearchError,
    included,
    matches,
    parse,
)
from smartapp.sandbox.store import FhirStore, Resource
from smartapp.smart.scopes import parse_scope

blueprint = Blueprint("sandbox_fhir", __name__, url_prefix=FHIR_PATH)

FHIR_JSON = "application/fhir+json"
DEFAULT_COUNT = 50
MAX_COUNT = 1000
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


class FhirApiError(Exception):
    """An answer other than 200: HTTP status, OperationOutcome issue code, diagnostics."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def permits(scopes: Iterable[str], resource_type: str, interaction: str) -> bool:
    """Whether patient-level scopes allow ``interaction`` (``r`` read, ``s`` search) on the
    type; constrained (granular) scopes do not count, as the sandbox cannot apply them."""
    for text in scopes:
        scope = parse_scope(text)
        if (
            scope is not None
            and scope.context == "patient"
            and scope.allows(resource_type, frozenset(interaction))
        ):
            return True
    return False


def outcome(code: str, message: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": message}],
    }


# The FHIR interactions, callable without HTTP (the CDS client page prefetches with them) ---


def read(store: FhirStore, resource_type: str, resource_id: str, patient_id: str) -> Resource:
    """``GET [base]/Type/id`` for a caller scoped to ``patient_id``."""
    resource = store.read(resource_type, resource_id)
    owner = store.owner(resource_type, resource_id)
    other_patient = resource_type == "Patient" and resource_id != patient_id
    if resource is None or owner not in (None, patient_id) or other_patient:
        raise FhirApiError(404, "not-found", f"{resource_type}/{resource_id[:64]} is not known")
    return resource


def search(
    store: FhirStore,
    base: str,
    resource_type: str,
    pairs: Sequence[tuple[str, str]],
    patient_id: str,
    can_include: Iterable[str] = SEARCHABLE_TYPES,
) -> dict[str, Any]:
    """``GET [base]/Type?params`` for a caller scoped to ``patient_id``: one page."""
    try:
        wanted = parse(resource_type, pairs, default_count=DEFAULT_COUNT, max_count=MAX_COUNT)
    except SearchError as exc:
        raise FhirApiError(400, "not-supported", str(exc)) from None
    for name, value in wanted.filters:
        if name in REFERENCES and any(
            v.rsplit("/", 1)[-1] != patient_id for v in value.split(",") if v
        ):
            raise FhirApiError(403, "forbidden", "the access token is for another patient")
    failed = store.failed_search(patient_id, resource_type)
    if failed is not None:
        return _bundle(base, resource_type, pairs, 0, None, [_entry(base, failed, "outcome")])
    try:
        found = matches(store, wanted, patient_id)
    except SearchError as exc:
        raise FhirApiError(400, "not-supported", str(exc)) from None
    page = found[wanted.offset : wanted.offset + wanted.count]
    allowed = set(can_include)
    extra = [r for r in included(store, page, wanted.includes, patient_id)
             if r["resourceType"] in allowed]  # fmt: skip
    entries = [_entry(base, r, "match") for r in page] + [_entry(base, r, "include") for r in extra]
    more = wanted.count > 0 and wanted.offset + wanted.count < len(found)
    next_offset = wanted.offset + wanted.count if more else None
    return _bundle(base, resource_type, pairs, len(found), next_offset, entries)


def get(store: FhirStore, base: str, relative_url: str, patient_id: str) -> dict[str, Any]:
    """The answer to ``GET [base]/<relative_url>`` (``Patient/x`` or ``Type?query``), e.g. an
    expanded prefetch template; raises FhirApiError as the HTTP API would answer."""
    path, _, query = relative_url.partition("?")
    parts = [p for p in path.split("/") if p]
    pairs = parse_qsl(query, keep_blank_values=True)
    if len(parts) == 1 and parts[0] in SEARCHABLE_TYPES:
        return search(store, base, parts[0], pairs, patient_id)
    if len(parts) == 2 and parts[0] in SEARCHABLE_TYPES and not query:
        return read(store, parts[0], parts[1], patient_id)
    raise FhirApiError(404, "not-supported", f"{path[:80]} is not supported by the sandbox")


def _entry(base: str, resource: Resource, mode: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": mode},
    }


def _page_url(base: str, rtype: str, pairs: Sequence[tuple[str, str]], offset: int | None) -> str:
    kept = [(k, v) for k, v in pairs if k != "_offset"]
    if offset:
        kept.append(("_offset", str(offset)))
    return f"{base}/{rtype}" + (f"?{urlencode(kept)}" if kept else "")


def _bundle(
    base: str,
    rtype: str,
    pairs: Sequence[tuple[str, str]],
    total: int,
    next_offset: int | None,
    entries: list[dict[str, Any]],
) -> dict[str, Any]:
    offset = next((int(v) for k, v in pairs if k == "_offset" and v.isdigit()), 0)
    links = [{"relation": "self", "url": _page_url(base, rtype, pairs, offset)}]
    if next_offset is not None:
        links.append({"relation": "next", "url": _page_url(base, rtype, pairs, next_offset)})
    return {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links,
            "entry": entries}  # fmt: skip


def capability_statement(base: str, token_url: str, authorize_url: str) -> dict[str, Any]:
    """What the sandbox serves (FHIR R4 CapabilityStatement, with SMART's oauth-uris)."""
    resources = []
    for rtype in sorted(SEARCHABLE_TYPES):
        names = sorted(
            {"_id", *TOKENS.get(rtype, {}), *DATES.get(rtype, {})}
            | (set(REFERENCES) if rtype in COMPARTMENT_TYPES - {"Patient"} else set())
        )
        resources.append({
            "type": rtype,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": n, "type": _param_type(rtype, n)} for n in names],
        })  # fmt: skip
    security = {
        "service": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR",
        }]}],
        "extension": [{"url": OAUTH_URIS, "extension": [
            {"url": "authorize", "valueUri": authorize_url},
            {"url": "token", "valueUri": token_url},
        ]}],
    }  # fmt: skip
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "date": "2026-03-01",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "implementation": {"description": "Sandbox EHR of the clozapine safety demo", "url": base},
        "rest": [{"mode": "server", "security": security, "resource": resources}],
    }


def _param_type(rtype: str, name: str) -> str:
    if name in REFERENCES:
        return "reference"
    return "date" if name in DATES.get(rtype, {}) else "token"


# HTTP ---------------------------------------------------------------------------------------


def _json(body: Mapping[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype=FHIR_JSON)


def _error(exc: FhirApiError) -> Response:
    response = _json(outcome(exc.code, str(exc)), exc.status)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="sandbox", error="invalid_token"'
    return response


def _grant(resource_type: str, interaction: str) -> Grant:
    header = request.headers.get("Authorization") or ""
    scheme, _, token = header.partition(" ")
    grant = sandbox().auth.check(token.strip()) if scheme.lower() == "bearer" else None
    if grant is None:
        raise FhirApiError(401, "login", "a current bearer token from the sandbox is required")
    if not permits(grant.scope, resource_type, interaction):
        raise FhirApiError(
            403, "forbidden", f"the granted scopes do not allow this on {resource_type}"
        )
    return grant


@blueprint.get("/metadata")
def metadata() -> Response:
    urls = current_urls()
    return _json(capability_statement(urls.fhir_base, urls.token_url, urls.authorize_url))


@blueprint.get("/.well-known/smart-configuration")
def smart_config() -> Response:
    response = _json(smart_configuration(current_urls()))
    response.mimetype = "application/json"
    return response


@blueprint.get("/<resource_type>")
def search_type(resource_type: str) -> Response:
    try:
        grant = _grant(resource_type, "s")
        pairs = list(request.args.items(multi=True))
        allowed = [t for t in SEARCHABLE_TYPES if permits(grant.scope, t, "r")]
        body = search(sandbox().store, current_urls().fhir_base, resource_type, pairs,
                      grant.patient, allowed)  # fmt: skip
    except FhirApiError as exc:
        return _error(exc)
    return _json(body)


@blueprint.get("/<resource_type>/<resource_id>")
def read_instance(resource_type: str, resource_id: str) -> Response:
    try:
        grant = _grant(resource_type, "r")
        body = read(sandbox().store, resource_type, resource_id, grant.patient)
    except FhirApiError as exc:
        return _error(exc)
    return _json(body)
