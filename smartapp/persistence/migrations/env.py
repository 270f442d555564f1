"""Alembic environment: always run online on the connection ``Database.upgrade`` passes in
(inside its transaction and, on PostgreSQL, its advisory lock)."""

from __future__ import annotations

from alembic import context

from smartapp.persistence.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through smartapp.persistence.Database.upgrade()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    compare_type=True,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
