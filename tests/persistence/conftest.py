"""Database fixtures: every test that takes ``db``, ``fresh_db`` or ``database_url`` runs once
on SQLite and once on PostgreSQL (tests/postgres_fixture.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

import tests.conftest as root_conftest
from smartapp.persistence import Database
from smartapp.persistence.models import Base
from tests.postgres_fixture import temporary_database

if "tests.postgres_fixture" not in getattr(root_conftest, "pytest_plugins", ()):
    # Until tests/conftest.py lists the plugin, bring its fixtures in here.
    from tests.postgres_fixture import postgres_database, postgres_url  # noqa: F401

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
def fresh_db(database_url: str) -> Iterator[Database]:
    """A new database migrated to the latest schema, for tests that alter the schema."""
    database = Database(database_url)
    database.upgrade()
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture(scope="session")
def _shared_postgres(postgres_url: str) -> Iterator[Database]:
    """One migrated PostgreSQL database for the session: creating one per test costs ~0.5 s."""
    with temporary_database(postgres_url) as url:
        database = Database(url)
        database.upgrade()
        try:
            yield database
        finally:
            database.dispose()


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database with empty tables (a new SQLite file; the shared PostgreSQL
    database truncated)."""
    if request.param == "postgresql":
        database: Database = request.getfixturevalue("_shared_postgres")
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        with database.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
        yield database
        return
    database = Database(f"sqlite:///{tmp_path / 'test.sqlite3'}")
    database.upgrade()
    try:
        yield database
    finally:
        database.dispose()
