"""What the Node test servers (tests/fhir_server, tests/oauth_server) have in common: ``npm ci``
when node_modules is stale, starting ``server.mjs`` with its output in a log file, waiting for
its ready line, and stopping the process. Missing Node.js or npm fails the tests rather than
skipping them: CI must run them.
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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, ParamSpec, TypeVar

import pytest

CACHE = Path(__file__).parent / ".cache"
READY_PREFIX = "listening "
NPM_TIMEOUT_S = 600.0

P = ParamSpec("P")
S = TypeVar("S", bound="ServerProcess")


@dataclass
class ServerProcess:
    """A server subprocess started by a test fixture, its output in ``log_path``. A subclass
    lists its own fields first; these two are keyword-only."""

    process: subprocess.Popen[bytes] = field(repr=False, kw_only=True)
    log_path: Path = field(repr=False, kw_only=True)

    # Seconds a terminated server gets to exit before it is killed.
    stop_grace_s = 10.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdin:
            self.process.stdin.close()


@dataclass(frozen=True)
class NodeService:
    """A Node server under tests/<name>: ``server.mjs`` with a package-lock.json beside it.
    ``title`` names it in failures, ``needed_for`` the tests that cannot run without Node."""

    name: str
    title: str
    needed_for: str
    start_timeout_s: float

    @property
    def directory(self) -> Path:
        return Path(__file__).parent / self.name

    def require(self, tool: str) -> str:
        path = shutil.which(tool)
        if path is None:
            pytest.fail(
                f"{tool} is required for {self.needed_for} (Node.js 20 with npm)", pytrace=False
            )
        return path

    def installed_matches_lockfile(self) -> bool:
        """True when every package pinned in package-lock.json is installed at its locked
        version."""
        lockfile = self.directory / "package-lock.json"
        packages = json.loads(lockfile.read_text())["packages"]
        for location, meta in packages.items():
            if not location or meta.get("optional"):
                continue
            manifest = self.directory / location / "package.json"
            if not manifest.is_file() or json.loads(manifest.read_text()).get(
                "version"
            ) != meta.get("version"):
                return False
        return True

    def ensure_installed(self) -> None:
        """``npm ci`` when node_modules is missing or differs from the lockfile. A file lock
        keeps concurrent test runs in this checkout from installing over each other."""
        npm = self.require("npm")
        npm_lock = CACHE / f"{self.name}_npm.lock"
        npm_lock.parent.mkdir(parents=True, exist_ok=True)
        with npm_lock.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.installed_matches_lockfile():
                return
            result = subprocess.run(
                [npm, "ci", "--silent", "--no-audit", "--no-fund"],
                cwd=self.directory,
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT_S,
            )
            if result.returncode != 0 or not self.installed_matches_lockfile():
                pytest.fail(
                    f"npm ci in {self.directory} failed:\n{result.stdout}\n{result.stderr}",
                    pytrace=False,
                )

    def start(self, options: list[str]) -> tuple[subprocess.Popen[bytes], Path, str]:
        """Install if needed, run ``node server.mjs --port 0 OPTIONS --stdin-lifeline`` and wait
        for its ready line. Its stdin stays open as a lifeline: if this process dies, the server
        exits too. Returns the process, its log file and the ready line after ``listening``."""
        self.ensure_installed()
        args = [self.require("node"), str(self.directory / "server.mjs"), "--port", "0"]
        args += [*options, "--stdin-lifeline"]
        prefix = self.name.replace("_", "-") + "-"
        log_fd, log_name = tempfile.mkstemp(prefix=prefix, suffix=".log")
        log_path = Path(log_name)
        log: IO[bytes]
        with os.fdopen(log_fd, "wb") as log:
            process = subprocess.Popen(
                args,
                cwd=self.directory,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return process, log_path, self._wait_ready(process, log_path)

    def _wait_ready(self, process: subprocess.Popen[bytes], log_path: Path) -> str:
        deadline = time.monotonic() + self.start_timeout_s
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
            f"{self.title} did not start:\n{log_path.read_text(errors='replace')}", pytrace=False
        )


def stop_all(servers: Iterable[ServerProcess]) -> None:
    """Stop servers a fixture started and delete their logs."""
    for server in servers:
        server.stop()
        server.log_path.unlink(missing_ok=True)


def stopped_at_end(start: Callable[P, S]) -> Iterator[Callable[P, S]]:
    """The body of a factory fixture (``yield from stopped_at_end(start_x)``): yields ``start``
    and stops every server it started when the fixture ends."""
    started: list[S] = []

    def start_tracked(*args: P.args, **kwargs: P.kwargs) -> S:
        server = start(*args, **kwargs)
        started.append(server)
        return server

    try:
        yield start_tracked
    finally:
        stop_all(started)
