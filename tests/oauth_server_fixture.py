"""A real SMART App Launch authorization server for the end-to-end tests: tests/oauth_server
(npm oauth2-mock-server 8.2 behind our wrapper) started as a Node subprocess.

The server is also the "EHR" the app is launched from: its ``/fhir`` base (``OAuthServer.iss``)
serves ``.well-known/smart-configuration`` and proxies to the real FHIR server given as
``fhir_base``, checking our bearer tokens and granted scopes on the way. The app is launched with
``iss=server.iss`` and ``launch=server.launch_id(patient=...)``.

Fixture: ``oauth_server_factory`` (session scope) starts servers that stop at the end of the
session. Missing Node.js or npm fails the tests rather than skipping them: CI must run them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.node_service import NodeService, ServerProcess, stopped_at_end

SERVICE = NodeService(
    name="oauth_server",
    title="SMART test authorization server",
    needed_for="the SMART end-to-end tests",
    start_timeout_s=30.0,
)


def launch_id(**context: Any) -> str:
    """An EHR launch id the server understands: base64url JSON of the launch context, e.g.
    ``launch_id(patient="p1")``; optional keys encounter, need_patient_banner, intent,
    fhirContext, appContext, scope_grant (the scopes granted for this launch) and deny (the
    user refuses)."""
    raw = json.dumps(context, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class OAuthServer(ServerProcess):
    """A running server. ``origin`` is its root (authorize, token, jwks); ``iss`` the FHIR base
    an app is launched with; ``upstream`` the real FHIR server behind it."""

    origin: str
    iss: str
    upstream: str
    client_id: str | None
    redirect_uris: tuple[str, ...]

    def launch_id(self, **context: Any) -> str:
        return launch_id(**context)

    def smart_configuration(self) -> dict[str, Any]:
        response = requests.get(f"{self.iss}/.well-known/smart-configuration", timeout=10)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def received(self, endpoint: str) -> list[dict[str, str]]:
        """The parameters of every ``authorize`` or ``token`` request so far (secrets
        redacted), or every ``fhir`` request (method, path, query), oldest first."""
        response = requests.get(f"{self.origin}/admin/requests", timeout=10)
        response.raise_for_status()
        return [r["params"] for r in response.json() if r["endpoint"] == endpoint]


def start_oauth_server(
    fhir_base: str,
    *,
    client_id: str | None = None,
    redirect_uris: Sequence[str] = (),
    patient: str | None = None,
    scope_grant: str | None = None,
    client_secret: str | None = None,
    client_jwks_url: str | None = None,
    fhir_user: str | None = None,
    expires_in: int | None = None,
    v1_only: bool = False,
) -> OAuthServer:
    """Start a server on a port the OS picks and wait for its ready line
    (``listening ORIGIN fhir ISS upstream FHIR_BASE``). It exits with this process (see
    ``NodeService.start``)."""
    options = ["--fhir-base", fhir_base]
    for flag, value in (
        ("--client-id", client_id),
        ("--patient", patient),
        ("--scope-grant", scope_grant),
        ("--client-secret", client_secret),
        ("--client-jwks-url", client_jwks_url),
        ("--fhir-user", fhir_user),
        ("--expires-in", None if expires_in is None else str(expires_in)),
    ):
        if value is not None:
            options += [flag, value]
    for uri in redirect_uris:
        options += ["--redirect-uri", uri]
    if v1_only:
        options.append("--v1-only")
    process, log_path, ready = SERVICE.start(options)
    words = ready.split()
    return OAuthServer(
        origin=words[0],
        iss=words[2],
        upstream=words[4],
        client_id=client_id,
        redirect_uris=tuple(redirect_uris),
        process=process,
        log_path=log_path,
    )


OAuthServerFactory = Callable[..., OAuthServer]


@pytest.fixture(scope="session")
def oauth_server_factory() -> Iterator[OAuthServerFactory]:
    """``oauth_server_factory(fhir_base, client_id=..., redirect_uris=[...], patient=...,
    scope_grant=..., client_secret=..., client_jwks_url=..., expires_in=..., v1_only=...)``
    starts a server (see ``start_oauth_server``); all stop when the session ends."""
    yield from stopped_at_end(start_oauth_server)
