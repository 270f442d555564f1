"""A real FHIR R4 server for integration tests: tests/fhir_server (Medplum's fhir-router over an
in-memory repository) started as a Node subprocess.

Fixtures: ``fhir_server`` (one per session; call ``.reset()`` to empty it) and
``fhir_server_factory`` (start extra servers with a delay, a bearer token or a page size; they
stop at the end of the test). Missing Node.js or npm fails the tests rather than skipping them:
CI must run them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
import requests

SERVER_DIR = Path(__file__).parent / "fhir_server"
LOCKFILE = SERVER_DIR / "package-lock.json"
NPM_LOCK = Path(__file__).parent / ".cache" / "fhir_server_npm.lock"
READY_PREFIX = "listening "
START_TIMEOUT_S = 60.0
NPM_TIMEOUT_S = 600.0


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"{tool} is required for the FHIR server tests (Node.js 20 with npm)", pytrace=False
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
    """``npm ci`` in tests/fhir_server when node_modules is missing or differs from the lockfile.
    A file lock keeps concurrent test runs in this checkout from installing over each other."""
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


@dataclass
class FhirServer:
    """A running test server. ``base`` is its FHIR base URL, e.g. http://127.0.0.1:PORT/fhir."""

    base: str
    token: str | None
    delay_ms: int
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path = field(repr=False)

    @property
    def origin(self) -> str:
        return self.base.removesuffix("/fhir")

    def headers(self) -> dict[str, str]:
        """Headers a client needs: FHIR JSON, and the bearer token when the server wants one."""
        headers = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def reset(self) -> None:
        """Delete every resource (POST /admin/reset)."""
        response = requests.post(f"{self.origin}/admin/reset", timeout=30)
        response.raise_for_status()

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


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith(READY_PREFIX):
                return line.removeprefix(READY_PREFIX).strip()
        if process.poll() is not None:
            break
        time.sleep(0.05)
    with contextlib.suppress(Exception):
        process.kill()
    pytest.fail(
        f"FHIR test server did not start:\n{log_path.read_text(errors='replace')}", pytrace=False
    )


def start_fhir_server(
    delay_ms: int = 0, token: str | None = None, page_size: int | None = None
) -> FhirServer:
    """Start a server on a port the OS picks (``--port 0``) and wait for its ready line.
    Its stdin stays open as a lifeline: if this process dies, the server exits too."""
    ensure_installed()
    node = _require("node")
    args = [
        node,
        str(SERVER_DIR / "server.mjs"),
        "--port",
        "0",
        "--delay-ms",
        str(delay_ms),
        "--stdin-lifeline",
    ]
    if token:
        args += ["--token", token]
    if page_size is not None:
        args += ["--page-size", str(page_size)]
    log_fd, log_name = tempfile.mkstemp(prefix="fhir-server-", suffix=".log")
    log_path = Path(log_name)
    log: IO[bytes]
    with os.fdopen(log_fd, "wb") as log:
        process = subprocess.Popen(
            args, cwd=SERVER_DIR, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT
        )
    base = _wait_ready(process, log_path)
    return FhirServer(base=base, token=token, delay_ms=delay_ms, process=process, log_path=log_path)


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[FhirServer]:
    """One FHIR server for the whole session, no token, no delay. Tests that load data should
    call ``fhir_server.reset()`` first (or use ids of their own)."""
    server = start_fhir_server()
    try:
        yield server
    finally:
        server.stop()
        server.log_path.unlink(missing_ok=True)


ServerFactory = Callable[..., FhirServer]


@pytest.fixture
def fhir_server_factory() -> Iterator[ServerFactory]:
    """``fhir_server_factory(delay_ms=..., token=..., page_size=...)`` starts another server,
    stopped when the test ends."""
    started: list[FhirServer] = []

    def start(
        delay_ms: int = 0, token: str | None = None, page_size: int | None = None
    ) -> FhirServer:
        server = start_fhir_server(delay_ms=delay_ms, token=token, page_size=page_size)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
            server.log_path.unlink(missing_ok=True)
