"""The body of a CDS Hooks 2.0 service call, validated into a ``HookRequest``.

Checks the request fields of CDS Hooks 2.0 ("HTTP Request") and the context of each hook in
the Hook Library (patient-view 1.0, order-select 1.0, order-sign 1.0). Anything of the wrong
shape is refused with a 400 ``ClientError`` naming the field (design.md, Contract 2), so no
malformed body ever reaches the clinical core.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from fhir_mappings import json_text
from smartapp.errors import ClientError

JSON_TYPES = frozenset({"application/json", "application/fhir+json"})

FieldKind = Literal["string", "strings", "bundle"]


@dataclass(frozen=True)
class ContextField:
    name: str
    kind: FieldKind
    required: bool


_USER = ContextField("userId", "string", True)
_PATIENT = ContextField("patientId", "string", True)
_ENCOUNTER = ContextField("encounterId", "string", False)

#: Context fields per hook (CDS Hooks Hook Library: patient-view, order-select, order-sign).
HOOK_CONTEXT: dict[str, tuple[ContextField, ...]] = {
    "patient-view": (_USER, _PATIENT, _ENCOUNTER),
    "order-select": (
        _USER, _PATIENT, _ENCOUNTER,
        ContextField("selections", "strings", True),
        ContextField("draftOrders", "bundle", True),
    ),
    "order-sign": (_USER, _PATIENT, _ENCOUNTER, ContextField("draftOrders", "bundle", True)),
}  # fmt: skip


@dataclass(frozen=True)
class FhirAuthorization:
    """``fhirAuthorization`` (CDS Hooks 2.0). ``repr`` hides the token so that it can never
    reach a log line through a stray ``%r``."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int | None = None
    scope: str | None = None
    subject: str | None = None
    patient: str | None = None


@dataclass(frozen=True)
class HookContext:
    user_id: str
    patient_id: str
    encounter_id: str | None = None
    selections: tuple[str, ...] = ()
    draft_orders: dict[str, Any] | None = None


@dataclass(frozen=True)
class HookRequest:
    """A validated hook call. ``prefetch`` maps each key the client sent to its resource, or to
    ``None`` when the client sent ``null`` ("no data": never refetched)."""

    hook: str
    hook_instance: str
    context: HookContext
    fhir_server: str | None = None
    fhir_authorization: FhirAuthorization | None = field(default=None, repr=False)
    prefetch: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    @property
    def patient_id(self) -> str:
        return self.context.patient_id


def bad(message: str) -> ClientError:
    return ClientError(400, message)


def read_json_body(content_type: str | None, data: bytes) -> Any:
    """The request body as JSON: 415 for another media type, 400 for unreadable JSON."""
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if mimetype not in JSON_TYPES:
        raise ClientError(415, "the request body must be application/json")
    try:
        return json_text.loads(data)
    except UnicodeDecodeError:
        raise bad("the request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise bad(f"the request body is not JSON (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise bad("the request body is nested too deeply") from None


def _required(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad(f"{name} must be a non-empty string")
    return value


def _optional(value: Any, name: str) -> str | None:
    """``null`` counts as absent for an optional field."""
    return None if value is None else _required(value, name)


def _absolute_url(value: Any, name: str) -> str:
    text = _required(value, name)
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise bad(f"{name} must be an absolute http(s) URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in text:
        raise bad(f"{name} must be an absolute http(s) URL")
    return text


def _fhir_authorization(value: Any) -> FhirAuthorization | None:
    """Access token and type are needed to call the FHIR server; the other members are
    checked for type when sent (CDS Hooks 2.0, "Passing the Access Token to the CDS Service")."""
    if value is None:
        return None
    name = "fhirAuthorization"
    if not isinstance(value, dict):
        raise bad(f"{name} must be an object")
    token = _required(value.get("access_token"), f"{name}.access_token")
    token_type = _required(value.get("token_type"), f"{name}.token_type")
    if token_type.lower() != "bearer":
        raise bad(f"{name}.token_type must be Bearer")
    expires_in = value.get("expires_in")
    if expires_in is not None and (
        isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 0
    ):
        raise bad(f"{name}.expires_in must be a non-negative integer")
    return FhirAuthorization(
        access_token=token,
        token_type=token_type,
        expires_in=expires_in,
        scope=_optional(value.get("scope"), f"{name}.scope"),
        subject=_optional(value.get("subject"), f"{name}.subject"),
        patient=_optional(value.get("patient"), f"{name}.patient"),
    )


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise bad(f"{name} must be an array of strings")
    return tuple(_required(item, f"{name}[{i}]") for i, item in enumerate(value))


def _bundle(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        raise bad(f"{name} must be a FHIR Bundle")
    entries = value.get("entry", [])
    if not isinstance(entries, list):
        raise bad(f"{name}.entry must be an array")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise bad(f"{name}.entry[{i}] must be an object")
        resource = entry.get("resource")
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise bad(f"{name}.entry[{i}].resource must be a FHIR resource")
    return value


def _context(hook: str, value: Any) -> HookContext:
    if not isinstance(value, dict):
        raise bad("context must be an object")
    fields: dict[str, Any] = {}
    for spec in HOOK_CONTEXT[hook]:
        name = f"context.{spec.name}"
        raw = value.get(spec.name)
        if raw is None and not spec.required:
            continue
        if raw is None:
            raise bad(f"{name} is required for the {hook} hook")
        if spec.kind == "string":
            fields[spec.name] = _required(raw, name)
        elif spec.kind == "strings":
            fields[spec.name] = _strings(raw, name)
        else:
            fields[spec.name] = _bundle(raw, name)
    return HookContext(
        user_id=fields["userId"],
        patient_id=fields["patientId"],
        encounter_id=fields.get("encounterId"),
        selections=fields.get("selections", ()),
        draft_orders=fields.get("draftOrders"),
    )


def _prefetch(value: Any) -> dict[str, dict[str, Any] | None]:
    """A missing or ``null`` prefetch means nothing was prefetched (every key is fetched)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad("prefetch must be an object")
    out: dict[str, dict[str, Any] | None] = {}
    for key, item in value.items():
        if item is not None and not isinstance(item, dict):
            raise bad(f"prefetch.{key} must be a FHIR resource or null")
        out[key] = item
    return out


def parse_hook_request(body: Any, expected_hook: str) -> HookRequest:
    """Validate a decoded request body for a service of hook ``expected_hook``."""
    if not isinstance(body, Mapping):
        raise bad("the request body must be a JSON object")
    hook = _required(body.get("hook"), "hook")
    if hook != expected_hook:
        raise bad(f"hook must be {expected_hook!r} for this service")
    if expected_hook not in HOOK_CONTEXT:
        raise bad(f"hook {expected_hook!r} is not supported")
    fhir_server = body.get("fhirServer")
    return HookRequest(
        hook=hook,
        hook_instance=_required(body.get("hookInstance"), "hookInstance"),
        context=_context(hook, body.get("context")),
        fhir_server=None if fhir_server is None else _absolute_url(fhir_server, "fhirServer"),
        fhir_authorization=_fhir_authorization(body.get("fhirAuthorization")),
        prefetch=_prefetch(body.get("prefetch")),
    )
