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
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import requests

SERVER_DIR = Path(__file__).parent / "oauth_server"
LOCKFILE = SERVER_DIR / "package-lock.json"
NPM_LOCK = Path(__file__).parent / ".cache" / "oauth_server_npm.lock"
READY_PREFIX = "listening "
START_TIMEOUT_S = 30.0
NPM_TIMEOUT_S = 600.0


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"{tool} is required for the SMART end-to-end tests (Node.js 20 with npm)",
            pytrace=False,
        )
    return path


def _installed_matches_lockfile() -> bool:
    """True when every package pinned in package-lock.json is installed at its locked version."""
    packages = json.loads(LOCKFILE.read_text())["packages"]
    for location, meta in packages.items():
        if not location or meta.get("optional"):
            continue
        manifest = SERVER_DIR / location / "package.json"
        if not manifest.is_file() or json.loads(manifest.read_text()).get("version") != meta.get(
            "version"
        ):
            return False
    return True


def ensure_installed() -> None:
    """``npm ci`` in tests/oauth_server when node_modules is missing or differs from the
    lockfile; a file lock keeps concurrent test runs from installing over each other."""
    npm = _require("npm")
    NPM_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with NPM_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_matches_lockfile():
            return
        result = subprocess.run(
            [npm, "ci", "--silent", "--no-audit", "--no-fund"],
            cwd=SERVER_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
        )
        if result.returncode != 0 or not _installed_matches_lockfile():
            pytest.fail(
                f"npm ci in {SERVER_DIR} failed:\n{result.stdout}\n{result.stderr}", pytrace=False
            )


def launch_id(**context: Any) -> str:
    """An EHR launch id the server understands: base64url JSON of the launch context, e.g.
    ``launch_id(patient="p1")``; optional keys encounter, need_patient_banner, intent,
    fhirContext, appContext, scope_grant (the scopes granted for this launch) and deny (the
    user refuses)."""
    raw = json.dumps(context, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class OAuthServer:
    """A running server. ``origin`` is its root (authorize, token, jwks); ``iss`` the FHIR base
    an app is launched with; ``upstream`` the real FHIR server behind it."""

    origin: str
    iss: str
    upstream: str
    client_id: str | None
    redirect_uris: tuple[str, ...]
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path = field(repr=False)

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

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdin:
            self.process.stdin.close()


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path) -> list[str]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith(READY_PREFIX):
                return line.split()
        if process.poll() is not None:
            break
        time.sleep(0.05)
    with contextlib.suppress(Exception):
        process.kill()
    pytest.fail(
        f"SMART test authorization server did not start:\n{log_path.read_text(errors='replace')}",
        pytrace=False,
    )


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
    (``listening ORIGIN fhir ISS upstream FHIR_BASE``). Its stdin stays open as a lifeline."""
    ensure_installed()
    args = [_require("node"), str(SERVER_DIR / "server.mjs"), "--port", "0"]
    args += ["--fhir-base", fhir_base, "--stdin-lifeline"]
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
            args += [flag, value]
    for uri in redirect_uris:
        args += ["--redirect-uri", uri]
    if v1_only:
        args.append("--v1-only")
    log_fd, log_name = tempfile.mkstemp(prefix="oauth-server-", suffix=".log")
    log_path = Path(log_name)
    log: IO[bytes]
    with os.fdopen(log_fd, "wb") as log:
        process = subprocess.Popen(
            args, cwd=SERVER_DIR, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT
        )
    words = _wait_ready(process, log_path)
    return OAuthServer(
        origin=words[1],
        iss=words[3],
        upstream=words[5],
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
    started: list[OAuthServer] = []

    def start(fhir_base: str, **options: Any) -> OAuthServer:
        server = start_oauth_server(fhir_base, **options)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
            server.log_path.unlink(missing_ok=True)
