"""Persistence (design.md, Persistence): CDS feedback, audit events, the JWT replay cache,
clinician statements and server-side sessions, in SQLite or PostgreSQL, migrated by Alembic."""

from smartapp.persistence.database import Database, default_sqlite_url

__all__ = ["Database", "default_sqlite_url"]
