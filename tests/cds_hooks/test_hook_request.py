"""Hook request validation (CDS Hooks 2.0 HTTP Request; Hook Library context per hook):
valid bodies become a HookRequest, every malformed field is a 400 naming it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from smartapp.cds_hooks.hook_request import (
    FhirAuthorization,
    parse_hook_request,
    read_json_body,
)
from smartapp.errors import ClientError

TOKEN = "secret-access-token-123"  # noqa: S105 - test data
BEARER = "Bearer"


def draft_bundle() -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "MedicationRequest", "id": "d1"}}],
    }


def body(hook: str = "order-sign", **changes: Any) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/7", "patientId": "p1"}
    if hook in ("order-sign", "order-select"):
        context["draftOrders"] = draft_bundle()
    if hook == "order-select":
        context["selections"] = ["MedicationRequest/d1"]
    out: dict[str, Any] = {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": "https://ehr.example.org/fhir",
        "fhirAuthorization": {
            "access_token": TOKEN,
            "token_type": BEARER,
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "cds-service",
        },
        "context": context,
        "prefetch": {"patient": {"resourceType": "Patient", "id": "p1"}, "labs": None},
    }
    out.update(changes)
    return out


def refused(data: Any, hook: str = "order-sign") -> ClientError:
    with pytest.raises(ClientError) as caught:
        parse_hook_request(data, hook)
    return caught.value


def test_a_full_order_sign_request_is_read() -> None:
    request = parse_hook_request(body(), "order-sign")
    assert request.hook == "order-sign"
    assert request.hook_instance == "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
    assert request.fhir_server == "https://ehr.example.org/fhir"
    assert request.fhir_authorization == FhirAuthorization(
        access_token=TOKEN, token_type=BEARER, expires_in=300, scope="patient/*.read",
        subject="cds-service",
    )  # fmt: skip
    assert request.patient_id == "p1"
    assert request.context.user_id == "Practitioner/7"
    assert request.context.draft_orders == draft_bundle()
    assert request.prefetch == {"patient": {"resourceType": "Patient", "id": "p1"}, "labs": None}


def test_the_token_never_shows_in_repr() -> None:
    request = parse_hook_request(body(), "order-sign")
    assert TOKEN not in repr(request)
    assert TOKEN not in repr(request.fhir_authorization)


def test_order_select_reads_selections() -> None:
    request = parse_hook_request(body("order-select"), "order-select")
    assert request.context.selections == ("MedicationRequest/d1",)


def test_patient_view_needs_no_draft_orders_and_keeps_the_encounter() -> None:
    data = body("patient-view")
    data["context"]["encounterId"] = "e9"
    request = parse_hook_request(data, "patient-view")
    assert request.context.encounter_id == "e9"
    assert request.context.draft_orders is None


def test_optional_members_may_be_absent_or_null() -> None:
    data = body("patient-view", fhirServer=None, fhirAuthorization=None, prefetch=None)
    data["context"]["encounterId"] = None
    request = parse_hook_request(data, "patient-view")
    assert request.fhir_server is None
    assert request.fhir_authorization is None
    assert request.prefetch == {}
    assert request.context.encounter_id is None
    del data["fhirServer"], data["fhirAuthorization"], data["prefetch"]
    assert parse_hook_request(data, "patient-view").prefetch == {}


def test_token_type_is_compared_case_insensitively() -> None:
    data = body()
    data["fhirAuthorization"]["token_type"] = BEARER.lower()
    auth = parse_hook_request(data, "order-sign").fhir_authorization
    assert auth is not None and auth.token_type == BEARER.lower()


def test_any_non_empty_hook_instance_is_accepted() -> None:
    assert parse_hook_request(body(hookInstance="not-a-uuid"), "order-sign").hook_instance == (
        "not-a-uuid"
    )


def test_http_fhir_server_is_a_valid_url() -> None:
    data = body(fhirServer="http://localhost:8080/fhir")
    assert parse_hook_request(data, "order-sign").fhir_server == "http://localhost:8080/fhir"


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("hook",), None, "hook"),
        (("hook",), "patient-view", "hook must be 'order-sign'"),
        (("hook",), 5, "hook"),
        (("hookInstance",), "", "hookInstance"),
        (("hookInstance",), 12, "hookInstance"),
        (("fhirServer",), "ehr.example.org/fhir", "fhirServer"),
        (("fhirServer",), "ftp://ehr.example.org", "fhirServer"),
        (("fhirServer",), ["https://x"], "fhirServer"),
        (("fhirServer",), "https://[ehr.example.org/fhir", "fhirServer"),
        (("fhirServer",), "https://ehr example/fhir", "fhirServer"),
        (("fhirAuthorization",), "Bearer abc", "fhirAuthorization must be an object"),
        (("fhirAuthorization", "access_token"), None, "fhirAuthorization.access_token"),
        (("fhirAuthorization", "access_token"), 7, "fhirAuthorization.access_token"),
        (("fhirAuthorization", "token_type"), "MAC", "fhirAuthorization.token_type"),
        (("fhirAuthorization", "expires_in"), "300", "fhirAuthorization.expires_in"),
        (("fhirAuthorization", "expires_in"), True, "fhirAuthorization.expires_in"),
        (("fhirAuthorization", "expires_in"), -1, "fhirAuthorization.expires_in"),
        (("fhirAuthorization", "scope"), ["a"], "fhirAuthorization.scope"),
        (("fhirAuthorization", "subject"), 3, "fhirAuthorization.subject"),
        (("context",), None, "context must be an object"),
        (("context",), [], "context must be an object"),
        (("context", "userId"), None, "context.userId is required"),
        (("context", "patientId"), None, "context.patientId is required"),
        (("context", "patientId"), "", "context.patientId"),
        (("context", "patientId"), {"reference": "Patient/p1"}, "context.patientId"),
        (("context", "encounterId"), 5, "context.encounterId"),
        (("context", "draftOrders"), None, "context.draftOrders is required"),
        (("context", "draftOrders"), {"resourceType": "List"}, "context.draftOrders"),
        (("context", "draftOrders"), [], "context.draftOrders"),
        (("context", "draftOrders", "entry"), {}, "context.draftOrders.entry"),
        (("context", "draftOrders", "entry"), [3], "context.draftOrders.entry[0]"),
        (("context", "draftOrders", "entry"), [{}], "context.draftOrders.entry[0].resource"),
        (("prefetch",), [], "prefetch must be an object"),
        (("prefetch", "labs"), [], "prefetch.labs"),
        (("prefetch", "labs"), "Bundle", "prefetch.labs"),
    ],
)
def test_malformed_fields_are_400_naming_the_field(
    path: tuple[str, ...], value: Any, named: str
) -> None:
    data = copy.deepcopy(body())
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    error = refused(data)
    assert error.status == 400
    assert named in error.message


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (None, "context.selections is required"),
        ("MedicationRequest/d1", "context.selections must be an array"),
        ([5], "context.selections[0]"),
        ([""], "context.selections[0]"),
    ],
)
def test_order_select_selections_are_checked(value: Any, named: str) -> None:
    data = body("order-select")
    data["context"]["selections"] = value
    error = refused(data, "order-select")
    assert error.status == 400 and named in error.message


@pytest.mark.parametrize("data", [[], "x", 3, None, [body()]])
def test_a_body_that_is_not_an_object_is_400(data: Any) -> None:
    error = refused(data)
    assert error.status == 400 and "JSON object" in error.message


def test_missing_user_id_is_refused_for_patient_view() -> None:
    data = body("patient-view")
    del data["context"]["userId"]
    assert "context.userId" in refused(data, "patient-view").message


# --- the raw body --------------------------------------------------------------------------


def test_json_body_is_decoded() -> None:
    assert read_json_body("application/json; charset=utf-8", b'{"a": 1}') == {"a": 1}
    assert read_json_body("application/fhir+json", b"[1]") == [1]


@pytest.mark.parametrize(
    "content_type", [None, "", "text/plain", "application/x-www-form-urlencoded"]
)
def test_other_media_types_are_415(content_type: str | None) -> None:
    with pytest.raises(ClientError) as caught:
        read_json_body(content_type, b"{}")
    assert caught.value.status == 415


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"{", "not JSON (line 1, column 2)"),
        (b"", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_unreadable_json_is_400(data: bytes, named: str) -> None:
    with pytest.raises(ClientError) as caught:
        read_json_body("application/json", data)
    assert caught.value.status == 400
    assert named in caught.value.message
