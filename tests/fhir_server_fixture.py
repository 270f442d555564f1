"""A real FHIR R4 server for integration tests: tests/fhir_server (Medplum's fhir-router over an
in-memory repository) started as a Node subprocess.

Fixtures: ``fhir_server`` (one per session; call ``.reset()`` to empty it) and
``fhir_server_factory`` (start extra servers with a delay, a bearer token or a page size; they
stop at the end of the test). Missing Node.js or npm fails the tests rather than skipping them:
CI must run them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.node_service import NodeService, ServerProcess, stop_all, stopped_at_end

SERVICE = NodeService(
    name="fhir_server",
    title="FHIR test server",
    needed_for="the FHIR server tests",
    start_timeout_s=60.0,
)


@dataclass
class FhirServer(ServerProcess):
    """A running test server. ``base`` is its FHIR base URL, e.g. http://127.0.0.1:PORT/fhir."""

    base: str
    token: str | None
    delay_ms: int

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


def start_fhir_server(
    delay_ms: int = 0, token: str | None = None, page_size: int | None = None
) -> FhirServer:
    """Start a server on a port the OS picks (``--port 0``) and wait for its ready line
    (``listening BASE``). It exits with this process (see ``NodeService.start``)."""
    options = ["--delay-ms", str(delay_ms)]
    if token:
        options += ["--token", token]
    if page_size is not None:
        options += ["--page-size", str(page_size)]
    process, log_path, base = SERVICE.start(options)
    return FhirServer(base=base, token=token, delay_ms=delay_ms, process=process, log_path=log_path)


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[FhirServer]:
    """One FHIR server for the whole session, no token, no delay. Tests that load data should
    call ``fhir_server.reset()`` first (or use ids of their own)."""
    server = start_fhir_server()
    try:
        yield server
    finally:
        stop_all([server])


ServerFactory = Callable[..., FhirServer]


@pytest.fixture
def fhir_server_factory() -> Iterator[ServerFactory]:
    """``fhir_server_factory(delay_ms=..., token=..., page_size=...)`` starts another server,
    stopped when the test ends."""
    yield from stopped_at_end(start_fhir_server)
