"""PostgreSQL for the persistence tests (issue 3: the same tests pass on SQLite and PostgreSQL).

``postgres_url`` (session): ``SMARTAPP_TEST_POSTGRES_URL`` when set (its role needs CREATEDB);
otherwise a throwaway cluster from the Debian binaries (``/usr/lib/postgresql/*/bin``) in a
temporary directory on a free 127.0.0.1 port, run as the ``postgres`` user when we are root,
stopped at the end of the session. No binaries: the tests fail when ``CI`` is set (CI must run
them) and are skipped otherwise.
``postgres_database`` (function): the URL of a new, empty database, dropped afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

ENV_URL = "SMARTAPP_TEST_POSTGRES_URL"
SYSTEM_USER = "postgres"
START_TIMEOUT_S = 60


def _binaries() -> Path | None:
    """The newest installed server's bin directory (Debian layout)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return candidates[-1].parent if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Cluster:
    """A private PostgreSQL cluster under ``root`` (data, socket and log inside it)."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed: {result.stdout}{result.stderr}{log}")

    def start(self) -> str:
        if self.as_root:
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        # No fsync: a test cluster's data is thrown away, and this keeps the tests fast.
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -F"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", str(START_TIMEOUT_S), "start")  # fmt: skip
        return URL.create(
            "postgresql+psycopg", username="postgres", host="127.0.0.1", port=self.port,
            database="postgres",
        ).render_as_string(hide_password=False)  # fmt: skip

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _with_psycopg(configured: str) -> str:
    """``postgresql://`` names psycopg2 to SQLAlchemy; the project installs psycopg 3."""
    url = make_url(configured)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason} (set {ENV_URL} or install postgresql)")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server URL whose role may create databases."""
    configured = os.environ.get(ENV_URL)
    if configured:
        yield _with_psycopg(configured)
        return
    bin_dir = _binaries()
    if bin_dir is None:
        _unavailable("no /usr/lib/postgresql/*/bin/pg_ctl")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        _unavailable("running as root without runuser to drop to the postgres user")
    cluster = Cluster(bin_dir, Path(tempfile.mkdtemp(prefix="smartapp-pg-")))
    try:
        url = cluster.start()
    except (RuntimeError, KeyError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(cluster.root, ignore_errors=True)
        _unavailable(f"could not start a test cluster: {exc}")
    try:
        yield url
    finally:
        cluster.stop()


@contextmanager
def temporary_database(server_url: str) -> Iterator[str]:
    """Create an empty database on the server; yield its URL; drop it afterwards."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """A fresh empty database on the test server, dropped when the test ends."""
    with temporary_database(postgres_url) as url:
        yield url
