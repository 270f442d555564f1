"""Tokens on the server only (SMART App Launch 2.2, app-launch "access token response" and
"refresh"; standards-checklist.md "Callback and token" ★; design.md Contract 3).

The whole token response is read (unknown members ignored) into a :class:`LaunchRecord` that
is kept in the ``server_session`` table, encrypted with Fernet; the browser holds only an opaque
session id. Pending authorizations are kept the same way, keyed by a hash of ``state``, so a
browser that drops cookies inside an EHR iframe still completes the launch; each ``state`` is
honoured once (the JWT replay table's unique key makes that atomic across processes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from smartapp.config import ConfigError
from smartapp.persistence import Database, store
from smartapp.smart.keyfiles import read_or_create
from smartapp.smart.scopes import split_scope

log = logging.getLogger(__name__)

STATE_PREFIX = "smart-state:"
LAUNCH_PREFIX = "smart-launch:"
STATE_ISSUER = "smartapp:oauth-state"
TOKEN_KEY_FILE = "token_key"  # noqa: S105 (a file name)
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class TokenResponseError(Exception):
    """The token endpoint's answer cannot be used; the message is safe to display."""


class StateError(Exception):
    """The callback's ``state`` is unknown, expired or already used."""


class RefreshError(Exception):
    """The access token could not be refreshed; the user must launch again."""


@dataclass(frozen=True)
class PendingLaunch:
    """What the callback needs from the authorize step; never leaves the server."""

    iss: str
    launch: str | None
    code_verifier: str
    requested_scope: str
    token_endpoint: str
    issuer: str | None
    jwks_uri: str | None


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    token_type: str
    expires_at: datetime | None  # None: the server did not say (refresh then follows a 401)
    refresh_token: str | None
    scope: tuple[str, ...]
    id_token: str | None

    def expiring(self, now: datetime, margin: timedelta) -> bool:
        return self.expires_at is not None and self.expires_at - now <= margin


@dataclass(frozen=True)
class LaunchParams:
    """The launch context members of a token response (opaque strings, untrusted)."""

    patient: str | None = None
    encounter: str | None = None
    fhir_user: str | None = None
    need_patient_banner: bool = True
    smart_style_url: str | None = None
    intent: str | None = None
    fhir_context: tuple[dict[str, Any], ...] = ()
    app_context: str | None = None


@dataclass(frozen=True)
class LaunchRecord:
    fhir_base: str
    token_endpoint: str
    tokens: TokenSet
    params: LaunchParams
    expires_at: datetime  # the server-side session's absolute end
    style: dict[str, str] = field(default_factory=dict)


def state_digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


# Reading token responses --------------------------------------------------------------------


def _optional_text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise TokenResponseError(f"the token response's {key} is not a string")
    return value


def _expires_at(body: Mapping[str, Any], now: datetime) -> datetime | None:
    value = body.get("expires_in")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return now + timedelta(seconds=float(value))
    if value is not None:
        log.warning("token response expires_in is not a positive number; treated as unknown")
    return None


def _token_set(body: Mapping[str, Any], now: datetime, scope: tuple[str, ...]) -> TokenSet:
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise TokenResponseError("the token response has no access_token")
    token_type = body.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenResponseError("the token response's token_type is not Bearer")
    return TokenSet(
        access_token=access,
        token_type="Bearer",  # noqa: S106 (the type name)
        expires_at=_expires_at(body, now),
        refresh_token=_optional_text(body, "refresh_token"),
        scope=scope,
        id_token=_optional_text(body, "id_token"),
    )


def _fhir_id(body: Mapping[str, Any], key: str) -> str | None:
    value = _optional_text(body, key)
    if value is not None and not FHIR_ID.fullmatch(value):
        raise TokenResponseError(f"the token response's {key} is not a FHIR id")
    return value


def _app_context(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict | list) else None


def _launch_params(body: Mapping[str, Any]) -> LaunchParams:
    banner = body.get("need_patient_banner")
    style = body.get("smart_style_url")
    context = body.get("fhirContext")
    return LaunchParams(
        patient=_fhir_id(body, "patient"),
        encounter=_fhir_id(body, "encounter"),
        fhir_user=_optional_text(body, "fhirUser"),
        # Absent or malformed: show the banner (the safer reading).
        need_patient_banner=banner if isinstance(banner, bool) else True,
        smart_style_url=style if isinstance(style, str) and style.startswith("http") else None,
        intent=body.get("intent") if isinstance(body.get("intent"), str) else None,
        fhir_context=tuple(c for c in context if isinstance(c, dict))
        if isinstance(context, list)
        else (),
        app_context=_app_context(body.get("appContext")),
    )


def read_token_response(
    body: Mapping[str, Any], *, requested: str, now: datetime, missing_scope_is_requested: bool
) -> tuple[TokenSet, LaunchParams]:
    """The whole access token response. The granted ``scope`` is used, not the requested one;
    when it is missing, nothing is taken as granted unless the policy says to assume the
    request was granted in full (RFC 6749 §5.1 allows omitting an unchanged scope)."""
    if "scope" in body and not isinstance(body["scope"], str):
        raise TokenResponseError("the token response's scope is not a string")
    granted = body.get("scope")
    if granted is None:
        log.warning(
            "token response has no scope; policy: %s",
            "assume requested" if missing_scope_is_requested else "nothing granted",
        )
        granted = requested if missing_scope_is_requested else ""
    return _token_set(body, now, split_scope(granted)), _launch_params(body)


def read_refresh_response(body: Mapping[str, Any], previous: TokenSet, now: datetime) -> TokenSet:
    """A refresh answer: a rotated refresh token replaces the old one (never reused); servers
    that send none keep the old; a new ``scope`` replaces the old, an absent one keeps it."""
    scope = split_scope(body["scope"]) if isinstance(body.get("scope"), str) else previous.scope
    tokens = _token_set(body, now, scope)
    if tokens.refresh_token is None:
        tokens = replace(tokens, refresh_token=previous.refresh_token)
    return tokens


def refresh(record: LaunchRecord, oauth: Any, now: datetime) -> LaunchRecord:
    """One refresh-token grant with ``oauth`` (an authlib session for this client)."""
    old = record.tokens.refresh_token
    if old is None:
        raise RefreshError("no refresh token")
    try:
        body = oauth.refresh_token(record.token_endpoint, refresh_token=old)
        tokens = read_refresh_response(dict(body), record.tokens, now)
    except OAuthError as exc:
        raise RefreshError(f"token endpoint refused the refresh ({exc.error})") from None
    except (requests.RequestException, ValueError, TokenResponseError) as exc:
        raise RefreshError(f"refresh failed ({type(exc).__name__})") from None
    return replace(record, tokens=tokens)


# Encryption and storage ---------------------------------------------------------------------


def make_cipher(token_key: str | None, instance_path: str) -> MultiFernet:
    """Fernet keys from SMARTAPP_TOKEN_KEY (comma-separated; the first encrypts, all decrypt,
    for rotation) or from a key file generated in the instance folder (mode 0600)."""
    if token_key:
        texts = [k.strip() for k in token_key.split(",") if k.strip()]
    else:
        path = Path(instance_path) / TOKEN_KEY_FILE
        texts = [read_or_create(path, Fernet.generate_key).decode().strip()]
    try:
        return MultiFernet([Fernet(k) for k in texts])
    except (ValueError, TypeError):
        raise ConfigError("TOKEN_KEY must be Fernet keys (32 url-safe base64 bytes)") from None


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _record(data: dict[str, Any]) -> LaunchRecord:
    tokens = data["tokens"]
    params = data["params"]
    return LaunchRecord(
        fhir_base=data["fhir_base"],
        token_endpoint=data["token_endpoint"],
        tokens=TokenSet(**{**tokens, "scope": tuple(tokens["scope"]),
                           "expires_at": _when(tokens["expires_at"])}),
        params=LaunchParams(**{**params, "fhir_context": tuple(params["fhir_context"])}),
        expires_at=datetime.fromisoformat(data["expires_at"]),
        style=dict(data["style"]),
    )  # fmt: skip


class TokenStore:
    """Encrypted launch records and pending authorizations in the server-side session table."""

    def __init__(self, db: Database, cipher: MultiFernet) -> None:
        self.db = db
        self.cipher = cipher

    def _seal(self, data: Any) -> bytes:
        return self.cipher.encrypt(json.dumps(data, default=_default).encode())

    def _open(self, blob: bytes) -> Any:
        try:
            return json.loads(self.cipher.decrypt(blob))
        except (InvalidToken, ValueError):
            log.warning("a stored SMART session could not be decrypted (key changed?)")
            return None

    def put_pending(self, state: str, pending: PendingLaunch, expires_at: datetime) -> None:
        key = STATE_PREFIX + state_digest(state)
        store.session_put(self.db, key, self._seal(asdict(pending)), expires_at)

    def take_pending(self, state: str, expires_at: datetime) -> PendingLaunch:
        """The pending authorization for ``state``, consumed: a second call for the same state,
        even a concurrent one in another process, raises :class:`StateError`."""
        digest = state_digest(state)
        blob = store.session_get(self.db, STATE_PREFIX + digest)
        data = self._open(blob) if blob is not None else None
        if data is None:
            raise StateError("unknown, expired or already used")
        if not store.remember_jti(self.db, STATE_ISSUER, digest, expires_at):
            raise StateError("already used")
        store.session_delete(self.db, STATE_PREFIX + digest)
        return PendingLaunch(**data)

    def save(self, session_id: str, record: LaunchRecord) -> None:
        store.session_put(
            self.db, LAUNCH_PREFIX + session_id, self._seal(asdict(record)), record.expires_at
        )

    def load(self, session_id: str) -> LaunchRecord | None:
        blob = store.session_get(self.db, LAUNCH_PREFIX + session_id)
        data = self._open(blob) if blob is not None else None
        return None if data is None else _record(data)

    def delete(self, session_id: str) -> None:
        store.session_delete(self.db, LAUNCH_PREFIX + session_id)
