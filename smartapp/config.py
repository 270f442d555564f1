"""Configuration: defaults, then ``launch.json``, then ``SMARTAPP_*`` environment variables, then
a test override (design.md, Architecture).

Every key below can be set from the environment as ``SMARTAPP_<KEY>``; the value is parsed by
the type of its default (booleans from ``1/true/yes/on`` and ``0/false/no/off``, numbers,
and JSON for lists and objects). A value that cannot be parsed stops start-up with a clear
``ConfigError`` rather than running with a silent default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULTS: dict[str, Any] = {
    # Persistence: None means a SQLite file in the instance folder (embedded, nothing to install).
    "DATABASE_URL": None,
    "AUTO_MIGRATE": True,
    # The public base URL the app is reached at (scheme://host[:port]), used for the CDS JWT
    # ``aud`` check behind a proxy. None: take it from the request.
    "PUBLIC_BASE_URL": None,
    # CDS client JWT verification (CDS Hooks 2.0 security). Switch off only for development.
    "CDS_VERIFY_JWT": True,
    # {"https://issuer": {"jwks_url": "https://issuer/jwks", "jku": ["https://issuer/jwks"]}}
    "CDS_TRUSTED_ISSUERS": {},
    "CDS_JWT_LEEWAY_S": 60,
    "CDS_JWT_MAX_AGE_S": 600,
    "CDS_JWKS_CACHE_S": 3600,
    # Fetch a trusted issuer's JWKS over plain http from 127.0.0.1/localhost (a local sandbox
    # or benchmark EHR). Everything else is https only.
    "CDS_JWKS_ALLOW_LOOPBACK_HTTP": False,
    # Origins allowed to call the CDS service from a browser (CORS); ["*"] allows any.
    "CDS_ALLOWED_ORIGINS": ["*"],
    # Outbound FHIR queries (prefetch fallback, SMART app).
    "FHIR_TIMEOUT_S": 5.0,
    "FHIR_MAX_PAGES": 50,
    "FHIR_PARALLEL": 10,  # at least the number of prefetch keys, so all run at once
    # Call a plain-http fhirServer (development only; loopback is always allowed).
    "FHIR_ALLOW_HTTP": False,
    # Clinical configuration.
    # Fix the evaluation date (YYYY-MM-DD) for the whole app: the demo sandbox, whose synthetic
    # patients are dated around 2026-03-01, and tests. None: today in UTC.
    "EVALUATION_DATE": None,
    "PROFILE": "us-fda",
    "CPZ_METHOD": "gardner-2010",
    "RULE_OVERRIDES": {},
    # Where card links send the clinician: the app's SMART launch URL.
    "APP_LAUNCH_URL": "http://127.0.0.1:8080/launch",
    # Request bodies larger than this are refused with 413.
    "MAX_CONTENT_LENGTH": 5 * 1024 * 1024,
    "LAUNCH_JSON": None,
    # SMART launch (smartapp/smart). Signs the session cookie; None: a key generated into the
    # instance folder (mode 0600). Several instances must share one: set it then.
    "SECRET_KEY": None,
    # Fernet key(s) encrypting tokens at rest, comma-separated (the first encrypts, all
    # decrypt: rotation); None: a key file generated into the instance folder (mode 0600).
    "TOKEN_KEY": None,
    # The confidential-symmetric client's secret (SMARTAPP_CLIENT_SECRET; never in launch.json).
    "CLIENT_SECRET": None,
    # Private JWKS (ES384 or RS384 keys with kid) for private_key_jwt; None: an ES384 key
    # generated into the instance folder. Public halves are served at /.well-known/jwks.json.
    "SMART_PRIVATE_JWKS_PATH": None,
    # FHIR servers (iss) to launch against, added to launch.json allowed_fhir_servers.
    "SMART_ALLOWED_ISS": [],
    # Standalone launch without iss: this server (overrides launch.json default_fhir_server).
    "SMART_DEFAULT_ISS": None,
    "SMART_DISCOVERY_CACHE_S": 300.0,
    "SMART_HTTP_TIMEOUT_S": 10.0,  # discovery, token, id_token keys, smart_style_url
    "SMART_STATE_TTL_S": 600.0,  # from authorize redirect to callback
    "SMART_SESSION_TTL_S": 8 * 3600.0,  # a launch's server-side session, absolute
    "SMART_REFRESH_MARGIN_S": 60.0,  # refresh tokens expiring within this
    # A token response without "scope": False (policy, the safer reading) takes nothing as
    # granted; True takes the requested scopes as granted (RFC 6749 §5.1).
    "SMART_MISSING_SCOPE_IS_REQUESTED": False,
    # Plain-http local development: session cookie without Secure and with SameSite=Lax
    # (EHR iframe launches then fail). Announced loudly at start.
    "INSECURE_DEV_COOKIES": False,
    # Blueprints that take no cookies (bearer-authenticated JSON APIs): no CSRF token needed.
    "CSRF_EXEMPT_BLUEPRINTS": ["cds_hooks"],
    # The embedded sandbox EHR (smartapp/sandbox: synthetic patients, FHIR API, authorization
    # server, patient picker). `smartapp demo` switches it on; never on a clinical deployment.
    "SANDBOX_ENABLED": False,
}

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    """A configuration value is malformed."""


def _parse(key: str, text: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            lowered = text.strip().lower()
            if lowered not in TRUE | FALSE:
                raise ValueError("expected true or false")
            return lowered in TRUE
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, dict | list):
            value = json.loads(text)
            if not isinstance(value, type(default)):
                raise ValueError(f"expected a JSON {type(default).__name__}")
            return value
    except ValueError as exc:
        raise ConfigError(f"SMARTAPP_{key}: {exc}") from None
    return text


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        text = environ.get(f"SMARTAPP_{key}")
        if text is not None:
            out[key] = _parse(key, text, default)
    return out


def read_launch_json(path: Path | None) -> dict[str, Any]:
    """The app's registration (``launch.json``); missing file -> empty, malformed -> error."""
    candidate = path or PROJECT_ROOT / "launch.json"
    if not candidate.exists():
        if path is not None:
            raise ConfigError(f"{candidate}: no such launch.json")
        return {}
    try:
        data = json.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{candidate}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{candidate}: expected a JSON object")
    return data


def from_launch_json(launch: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"LAUNCH": dict(launch)}
    if isinstance(launch.get("launch_url"), str):
        out["APP_LAUNCH_URL"] = launch["launch_url"]
    return out


def load_config(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    config: dict[str, Any] = dict(DEFAULTS)
    env_values = from_environment(env)
    launch_path = (overrides or {}).get("LAUNCH_JSON") or env_values.get("LAUNCH_JSON")
    config.update(from_launch_json(read_launch_json(Path(launch_path) if launch_path else None)))
    config.update(env_values)
    config.update(overrides or {})
    return config
