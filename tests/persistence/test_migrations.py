"""Alembic migrations: an empty database reaches head, the migrated schema is exactly the ORM
metadata, upgrades are repeatable and safe to run from several processes at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from smartapp.persistence import Database, default_sqlite_url
from smartapp.persistence.database import alembic_config
from smartapp.persistence.models import Base

TABLES = {"feedback", "audit_event", "jwt_jti", "clinician_statement", "server_session"}


def schema_diff(database: Database) -> list[object]:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))


def version(database: Database) -> list[str]:
    with database.engine.connect() as connection:
        return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def test_empty_database_upgrades_to_head(database_url: str) -> None:
    database = Database(database_url)
    try:
        assert not set(inspect(database.engine).get_table_names()) & TABLES
        database.upgrade()
        assert set(inspect(database.engine).get_table_names()) >= TABLES
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert head == "0001"
        assert version(database) == [head]
    finally:
        database.dispose()


def test_migrated_schema_matches_the_models(fresh_db: Database) -> None:
    assert schema_diff(fresh_db) == []


def test_schema_comparison_notices_a_missing_index(fresh_db: Database) -> None:
    with fresh_db.engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_feedback_card"))
    diff = schema_diff(fresh_db)
    assert [entry[0] for entry in diff] == ["add_index"]  # type: ignore[index]


def test_upgrade_twice_changes_nothing(fresh_db: Database) -> None:
    fresh_db.upgrade()
    assert version(fresh_db) == ["0001"]
    assert schema_diff(fresh_db) == []


def test_downgrade_to_base_and_back(fresh_db: Database) -> None:
    with fresh_db.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert not set(inspect(fresh_db.engine).get_table_names()) & TABLES
    fresh_db.upgrade()
    assert schema_diff(fresh_db) == []


def _upgrade_in_child(url: str, start: multiprocessing.synchronize.Barrier) -> None:
    database = Database(url)
    start.wait(timeout=30)
    database.upgrade()
    database.dispose()


def test_processes_starting_together_migrate_once(database_url: str) -> None:
    """Several app instances starting at once: the lock serialises them, none fails."""
    context = multiprocessing.get_context("fork")
    start = context.Barrier(3)
    children = [
        context.Process(target=_upgrade_in_child, args=(database_url, start)) for _ in range(3)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
    assert [child.exitcode for child in children] == [0, 0, 0]
    database = Database(database_url)
    try:
        assert version(database) == ["0001"]
        assert schema_diff(database) == []
    finally:
        database.dispose()


def test_default_sqlite_url_is_a_file_in_the_instance_folder(tmp_path: Path) -> None:
    url = default_sqlite_url(str(tmp_path / "instance"))
    assert url == f"sqlite:///{tmp_path / 'instance' / 'smartapp.sqlite3'}"
    (tmp_path / "instance").mkdir()
    database = Database(url)
    try:
        database.upgrade()
        assert (tmp_path / "instance" / "smartapp.sqlite3").is_file()
        with database.engine.connect() as connection:
            mode = connection.execute(text("PRAGMA journal_mode")).scalar()
            keys = connection.execute(text("PRAGMA foreign_keys")).scalar()
        assert (mode, keys) == ("wal", 1)
    finally:
        database.dispose()


def test_postgresql_urls_use_psycopg_3() -> None:
    database = Database("postgresql://user:secret@127.0.0.1:1/app")
    try:
        assert database.engine.dialect.driver == "psycopg"
    finally:
        database.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_keeps_its_schema_across_sessions(url: str) -> None:
    database = Database(url)
    try:
        database.upgrade()
        assert set(inspect(database.engine).get_table_names()) >= TABLES
    finally:
        database.dispose()
