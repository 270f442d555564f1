"""Initial schema: CDS feedback, audit events, JWT replay cache, clinician statements and
server-side sessions (design.md, Persistence).

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Frozen: this file must not import the models, so that it still builds this schema after
they change. Timestamps are ``timestamp with time zone`` (UTC text on SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service_id", sa.String(length=128), nullable=False),
        sa.Column("hook", sa.String(length=64), nullable=False),
        sa.Column("hook_instance", sa.String(length=128), nullable=False),
        sa.Column("patient_id", sa.String(length=256), nullable=True),
        sa.Column("finding_codes", sa.JSON(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        _when("at"),
        sa.Column("fhir_server", sa.String(length=2048), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    op.create_index("ix_audit_event_at", "audit_event", ["at"])

    op.create_table(
        "clinician_statement",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=256), nullable=False),
        _when("recorded_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinician_statement")),
    )
    op.create_index("ix_clinician_statement_patient_id", "clinician_statement", ["patient_id"])

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service_id", sa.String(length=128), nullable=False),
        sa.Column("card", sa.String(length=128), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("accepted_suggestions", sa.JSON(), nullable=False),
        sa.Column("override_reason", sa.JSON(), nullable=True),
        sa.Column("user_comment", sa.Text(), nullable=True),
        _when("outcome_timestamp"),
        _when("received_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint(
            "service_id",
            "card",
            "outcome",
            "outcome_timestamp",
            name=op.f("uq_feedback_service_id_card_outcome_outcome_timestamp"),
        ),
    )
    op.create_index("ix_feedback_card", "feedback", ["card"])

    op.create_table(
        "jwt_jti",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("issuer", sa.String(length=512), nullable=False),
        sa.Column("jti", sa.String(length=256), nullable=False),
        _when("expires_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jwt_jti")),
        sa.UniqueConstraint("issuer", "jti", name=op.f("uq_jwt_jti_issuer_jti")),
    )
    op.create_index("ix_jwt_jti_expires_at", "jwt_jti", ["expires_at"])

    op.create_table(
        "server_session",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        _when("expires_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_session")),
    )
    op.create_index("ix_server_session_expires_at", "server_session", ["expires_at"])


def downgrade() -> None:
    for table in ("server_session", "jwt_jti", "feedback", "clinician_statement", "audit_event"):
        op.drop_table(table)
