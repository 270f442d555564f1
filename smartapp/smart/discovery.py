"""SMART discovery (SMART App Launch 2.2, conformance; standards-checklist.md "Discovery").

``{iss}/.well-known/smart-configuration`` first (the path kept when the base has one; relative
endpoint URLs resolved against the base), then the legacy ``oauth-uris`` extension of the
CapabilityStatement at ``{iss}/metadata``. Results are cached per ``iss`` for a few minutes;
failures are not cached. Every failure is a :class:`DiscoveryError` with a short reason that is
safe to show.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from smartapp.fhir_client import shown
from smartapp.smart.scopes import ScopeVersion

log = logging.getLogger(__name__)

WELL_KNOWN = ".well-known/smart-configuration"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
LEGACY_CAPABILITIES = "http://fhir-registry.smarthealthit.org/StructureDefinition/capabilities"
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class DiscoveryError(Exception):
    """The server's SMART endpoints could not be found; the message is safe to display."""


@dataclass(frozen=True)
class SmartConfiguration:
    iss: str
    authorization_endpoint: str
    token_endpoint: str
    capabilities: frozenset[str]
    token_endpoint_auth_methods: tuple[str, ...] | None
    code_challenge_methods: tuple[str, ...] | None
    issuer: str | None
    jwks_uri: str | None
    source: str  # "smart-configuration" | "capability-statement"

    def scope_version(self) -> ScopeVersion:
        """v2 when ``permission-v2`` is advertised; v1 when only ``permission-v1`` is. A server
        that says neither is taken as SMART 2 when its smart-configuration has the fields
        SMART 2 made required (``code_challenge_methods_supported``), else as SMART 1."""
        if "permission-v2" in self.capabilities:
            return "v2"
        if "permission-v1" in self.capabilities:
            return "v1"
        return "v2" if self.code_challenge_methods is not None else "v1"


def check_endpoint(url: str, allow_http: bool) -> str:
    """https, or plain http to this machine, or any http when the development switch is on."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if (
        parts.scheme == "http"
        and parts.hostname
        and (allow_http or parts.hostname in LOOPBACK_HOSTS)
    ):
        return url
    raise DiscoveryError(f"{shown(url)} is not an https URL")


def _resolve(base: str, value: Any, name: str, allow_http: bool) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DiscoveryError(f"the server's SMART configuration has no {name}")
    return check_endpoint(urljoin(base.rstrip("/") + "/", value.strip()), allow_http)


def _strings(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(v for v in value if isinstance(v, str))


def _get_json(http: requests.Session, url: str, accept: str, timeout: float) -> Any:
    try:
        response = http.get(url, headers={"Accept": accept}, timeout=timeout, stream=True)
        with response:
            if response.status_code != 200:
                raise DiscoveryError(f"{shown(url)} answered HTTP {response.status_code}")
            body = b""
            for chunk in response.iter_content(chunk_size=65536):
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise DiscoveryError(f"{shown(url)} is too large")
    except requests.RequestException as exc:
        raise DiscoveryError(f"{shown(url)} could not be reached ({type(exc).__name__})") from None
    try:
        return json.loads(body)
    except ValueError:
        raise DiscoveryError(f"{shown(url)} is not JSON") from None


def from_smart_configuration(iss: str, doc: Any, allow_http: bool) -> SmartConfiguration:
    if not isinstance(doc, dict):
        raise DiscoveryError("the smart-configuration is not a JSON object")
    optional = {k: doc.get(k) for k in ("issuer", "jwks_uri")}
    return SmartConfiguration(
        iss=iss,
        authorization_endpoint=_resolve(
            iss, doc.get("authorization_endpoint"), "authorization_endpoint", allow_http
        ),
        token_endpoint=_resolve(iss, doc.get("token_endpoint"), "token_endpoint", allow_http),
        capabilities=frozenset(_strings(doc.get("capabilities")) or ()),
        token_endpoint_auth_methods=_strings(doc.get("token_endpoint_auth_methods_supported")),
        code_challenge_methods=_strings(doc.get("code_challenge_methods_supported")),
        issuer=optional["issuer"] if isinstance(optional["issuer"], str) else None,
        jwks_uri=(
            _resolve(iss, optional["jwks_uri"], "jwks_uri", allow_http)
            if isinstance(optional["jwks_uri"], str)
            else None
        ),
        source="smart-configuration",
    )


def _extensions(element: Any, url: str) -> list[dict[str, Any]]:
    if not isinstance(element, dict) or not isinstance(element.get("extension"), list):
        return []
    return [e for e in element["extension"] if isinstance(e, dict) and e.get("url") == url]


def from_capability_statement(iss: str, doc: Any, allow_http: bool) -> SmartConfiguration:
    """The legacy ``oauth-uris`` extension on ``CapabilityStatement.rest.security``."""
    if not isinstance(doc, dict) or doc.get("resourceType") != "CapabilityStatement":
        raise DiscoveryError("the server's metadata is not a CapabilityStatement")
    for rest in doc.get("rest") or []:
        security = rest.get("security") if isinstance(rest, dict) else None
        for oauth in _extensions(security, OAUTH_URIS):
            uris = {e["url"]: e.get("valueUri") for e in oauth.get("extension", []) if "url" in e}
            capabilities = {e.get("valueCode") for e in _extensions(security, LEGACY_CAPABILITIES)}
            return SmartConfiguration(
                iss=iss,
                authorization_endpoint=_resolve(
                    iss, uris.get("authorize"), "authorize", allow_http
                ),
                token_endpoint=_resolve(iss, uris.get("token"), "token", allow_http),
                capabilities=frozenset(c for c in capabilities if isinstance(c, str)),
                token_endpoint_auth_methods=None,
                code_challenge_methods=None,
                issuer=None,
                jwks_uri=None,
                source="capability-statement",
            )
    raise DiscoveryError("the server's CapabilityStatement names no OAuth endpoints")


def discover(
    iss: str, *, http: requests.Session, timeout: float, allow_http: bool
) -> SmartConfiguration:
    """The SMART configuration of the FHIR server ``iss``."""
    base = check_endpoint(iss, allow_http).rstrip("/")
    try:
        doc = _get_json(http, f"{base}/{WELL_KNOWN}", "application/json", timeout)
        return from_smart_configuration(iss, doc, allow_http)
    except DiscoveryError as first:
        log.info("smart-configuration of %s unusable (%s); trying metadata", shown(iss), first)
    doc = _get_json(http, f"{base}/metadata", "application/fhir+json", timeout)
    return from_capability_statement(iss, doc, allow_http)


class DiscoveryCache:
    """:func:`discover` results per ``iss`` for ``ttl_s`` seconds; thread-safe."""

    def __init__(
        self,
        ttl_s: float,
        fetch: Callable[[str], SmartConfiguration],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, SmartConfiguration]] = {}

    def get(self, iss: str) -> SmartConfiguration:
        with self._lock:
            hit = self._entries.get(iss)
        if hit is not None and self._clock() - hit[0] < self.ttl_s:
            return hit[1]
        config = self._fetch(iss)
        with self._lock:
            self._entries[iss] = (self._clock(), config)
        return config
