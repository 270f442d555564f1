"""The database handle: engine, sessions and schema migrations (design.md, Persistence).

SQLite (a file in the instance folder) by default; PostgreSQL when ``SMARTAPP_DATABASE_URL``
points at one, which lets several instances share feedback, audit and the JWT replay cache.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key: any constant unique to this app ("smartapp" as a 63-bit number).
MIGRATION_LOCK_KEY = 0x736D617274617070
# How long a SQLite writer waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 15.0
# A database server that does not answer must not hang /healthz or a hook call for long.
CONNECT_TIMEOUT_S = 5


def default_sqlite_url(instance_path: str) -> str:
    """The embedded default: ``smartapp.sqlite3`` in the Flask instance folder."""
    return f"sqlite:///{Path(instance_path).resolve() / 'smartapp.sqlite3'}"


def _normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver we install), not psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        if cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
            # WAL keeps the file consistent with NORMAL; only the last commits can be lost
            # on power failure, and each hook call then avoids an fsync.
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


class Database:
    """One engine per process. ``session()`` commits on success and rolls back on error."""

    def __init__(self, url: str) -> None:
        self.url = _normalise_url(url)
        self.engine = self._create_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @staticmethod
    def _create_engine(url: str) -> Engine:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if "psycopg" in url else {}
            return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        kwargs: dict[str, Any] = {
            # Gunicorn threads share the pool; separate processes get their own engines.
            "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
            "pool_pre_ping": True,
        }
        if parsed.database in (None, "", ":memory:"):
            # An in-memory database lives in one connection: share it, or each is empty.
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def ping(self) -> bool:
        """SELECT 1; False (never an exception) when the database cannot be reached."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            log.warning("database ping failed: %s", type(exc).__name__)
            return False
        return True

    def upgrade(self) -> None:
        """Migrate to the latest schema (Alembic ``upgrade head``). Safe when several
        processes start at once: PostgreSQL serialises them with a transaction-scoped advisory
        lock, a SQLite file with an exclusive lock on a file beside it."""
        with self._migration_lock(), self.engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            command.upgrade(alembic_config(connection), "head")

    def _migration_lock(self) -> AbstractContextManager[object]:
        database = make_url(self.url).database
        if self.dialect != "sqlite" or database in (None, "", ":memory:"):
            return nullcontext()
        return _file_lock(Path(f"{database}.migrate.lock"))

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configured in code, its scripts inside the package (works when installed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config
