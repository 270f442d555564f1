"""The schema as SQLAlchemy 2.0 typed ORM classes (design.md, Persistence).

Every timestamp is stored as UTC and read back tz-aware on both SQLite (which has no time
zones) and PostgreSQL. Column lengths are checked by the store before writing, so an oversized
value is refused the same way on SQLite (which ignores lengths) as on PostgreSQL.
The migrations in ``migrations/versions`` must produce exactly this schema; a test compares
them with Alembic autogenerate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so later migrations (and SQLite batch mode) can name them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LEN = 128
NAME_LEN = 64
URL_LEN = 2048
ISSUER_LEN = 512
JTI_LEN = 256
PATIENT_LEN = 256


class UtcDateTime(TypeDecorator[datetime]):
    """A tz-aware datetime stored in UTC. Naive datetimes are refused: their zone is unknown."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: the store needs a time zone")
        utc = value.astimezone(UTC)
        # SQLite keeps the text as given: store one fixed form so comparisons order correctly.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Feedback(Base):
    """CDS Hooks feedback; one row per (service, card, outcome, outcome time) so that an EHR
    resending the same feedback changes nothing."""

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("service_id", "card", "outcome", "outcome_timestamp"),
        Index("ix_feedback_card", "card"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(String(ID_LEN))
    card: Mapped[str] = mapped_column(String(ID_LEN))
    outcome: Mapped[str] = mapped_column(String(NAME_LEN))
    accepted_suggestions: Mapped[list[str]] = mapped_column(JSON)
    override_reason: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    user_comment: Mapped[str | None] = mapped_column(Text)
    outcome_timestamp: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AuditEventRow(Base):
    """One hook call (no tokens, no clinical data beyond the patient id)."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(String(ID_LEN))
    hook: Mapped[str] = mapped_column(String(NAME_LEN))
    hook_instance: Mapped[str] = mapped_column(String(ID_LEN))
    patient_id: Mapped[str | None] = mapped_column(String(PATIENT_LEN))
    finding_codes: Mapped[list[str]] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column(Float)
    status: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    fhir_server: Mapped[str | None] = mapped_column(String(URL_LEN))


class JwtJti(Base):
    """JWT ids already accepted; the unique key makes replay detection atomic across
    processes and instances sharing the database."""

    __tablename__ = "jwt_jti"
    __table_args__ = (
        UniqueConstraint("issuer", "jti"),
        Index("ix_jwt_jti_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issuer: Mapped[str] = mapped_column(String(ISSUER_LEN))
    jti: Mapped[str] = mapped_column(String(JTI_LEN))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ClinicianStatementRow(Base):
    """What a clinician told the app that the EHR lacks (BEN confirmed, trial response)."""

    __tablename__ = "clinician_statement"
    __table_args__ = (Index("ix_clinician_statement_patient_id", "patient_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(String(PATIENT_LEN))
    kind: Mapped[str] = mapped_column(String(NAME_LEN))
    value: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(PATIENT_LEN))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ServerSession(Base):
    """A server-side web session; ``data`` arrives encrypted by the caller."""

    __tablename__ = "server_session"
    __table_args__ = (Index("ix_server_session_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
