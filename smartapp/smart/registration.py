"""The app's registration with an EHR (``launch.json``, issue 4 item 2), read once at start
and checked: a malformed registration stops start-up with a ``ConfigError``.

The allow list of FHIR servers is ``launch.json`` ``allowed_fhir_servers`` plus the
``SMART_ALLOWED_ISS`` setting. An entry matches an ``iss`` exactly (a trailing ``/`` ignored);
an entry ending in ``/*`` matches every ``iss`` under that path, for launchers such as the SMART
Health IT sandbox whose ``iss`` embeds the launch options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from smartapp.config import ConfigError
from smartapp.smart.scopes import parse_scope

CLIENT_TYPES: Mapping[str, str] = {
    "public": "none",
    "confidential-symmetric": "client_secret_basic",
    "confidential-asymmetric": "private_key_jwt",
}


@dataclass(frozen=True)
class Registration:
    client_id: str
    client_type: str
    token_endpoint_auth_method: str
    redirect_uri: str
    launch_url: str | None
    scopes: tuple[str, ...]
    offline_access: bool
    allowed_ehr_origins: tuple[str, ...]
    allowed_fhir_servers: tuple[str, ...]
    default_fhir_server: str | None
    client_secret: str | None

    def iss_allowed(self, iss: str) -> bool:
        """SMART app-launch: only launch against FHIR servers on the allow list (``iss`` is
        attacker-controllable input)."""
        wanted = iss.rstrip("/")
        for entry in self.allowed_fhir_servers:
            if entry.endswith("/*"):
                prefix = entry[:-1]
                if iss.startswith(prefix) and ".." not in iss[len(prefix) :]:
                    return True
            elif entry.rstrip("/") == wanted:
                return True
        return False


def _text(launch: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = launch.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"launch.json: {key} must be a non-empty string")
    return value


def _texts(launch: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = launch.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"launch.json: {key} must be a list of strings")
    return tuple(value)


def _absolute(url: str, key: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"launch.json: {key} {url!r} is not an absolute http(s) URL")
    return url


def _client_type(launch: Mapping[str, Any], secret: str | None) -> tuple[str, str]:
    client_type = _text(launch, "client_type") or ""
    if client_type not in CLIENT_TYPES:
        raise ConfigError(f"launch.json: client_type must be one of {sorted(CLIENT_TYPES)}")
    method = CLIENT_TYPES[client_type]
    declared = launch.get("token_endpoint_auth_method", method)
    if declared != method:
        raise ConfigError(
            f"launch.json: token_endpoint_auth_method {declared!r} does not fit client_type "
            f"{client_type!r} (expected {method!r})"
        )
    if client_type == "confidential-symmetric" and not secret:
        raise ConfigError(
            "a confidential-symmetric client needs SMARTAPP_CLIENT_SECRET (never in launch.json)"
        )
    if "client_secret" in launch:
        raise ConfigError("launch.json must not hold client_secret: use SMARTAPP_CLIENT_SECRET")
    return client_type, method


def _scopes(launch: Mapping[str, Any]) -> tuple[str, ...]:
    scopes = _texts(launch, "scopes")
    for scope in scopes:
        if "/" in scope and not scope.startswith("launch/") and parse_scope(scope) is None:
            raise ConfigError(f"launch.json: scope {scope!r} is not a SMART resource scope")
    return scopes


def load_registration(config: Mapping[str, Any]) -> Registration:
    """The registration from ``config["LAUNCH"]`` (launch.json) and the SMART_* settings."""
    launch = config.get("LAUNCH") or {}
    if not isinstance(launch, Mapping):
        raise ConfigError("LAUNCH (launch.json) must be an object")
    secret = config.get("CLIENT_SECRET") or None
    client_type, method = _client_type(launch, secret)
    redirect_uris = _texts(launch, "redirect_uris")
    if not redirect_uris:
        raise ConfigError("launch.json: redirect_uris must name the app's /callback URL")
    servers = _texts(launch, "allowed_fhir_servers") + tuple(config.get("SMART_ALLOWED_ISS") or ())
    default = config.get("SMART_DEFAULT_ISS") or _text(
        launch, "default_fhir_server", required=False
    )
    offline = launch.get("offline_access", False)
    if not isinstance(offline, bool):
        raise ConfigError("launch.json: offline_access must be true or false")
    return Registration(
        client_id=_text(launch, "client_id") or "",
        client_type=client_type,
        token_endpoint_auth_method=method,
        redirect_uri=_absolute(redirect_uris[0], "redirect_uris"),
        launch_url=_text(launch, "launch_url", required=False),
        scopes=_scopes(launch),
        offline_access=offline,
        allowed_ehr_origins=_texts(launch, "allowed_ehr_origins"),
        allowed_fhir_servers=tuple(_absolute(s, "allowed_fhir_servers") for s in servers),
        default_fhir_server=_absolute(default, "default_fhir_server") if default else None,
        client_secret=secret,
    )
