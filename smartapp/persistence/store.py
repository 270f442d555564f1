"""Reads and writes for the CDS service and the SMART app (design.md, Persistence; issue 3
item 5). Each function takes the ``Database`` first and runs in its own transaction.

Writes that can race between processes (a replayed ``jti``, repeated feedback, a session
rewritten) rely on the database's unique keys, never on a read-then-write check.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Select, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from smartapp.domain import ClinicianStatement
from smartapp.persistence import models as m
from smartapp.persistence.database import Database
from smartapp.persistence.records import AuditEvent, FeedbackItem

# Expired jti and session rows are swept at most this often per process.
PURGE_INTERVAL_S = 300.0
STATEMENT_REF_PREFIX = "statement:"

_last_purge: weakref.WeakKeyDictionary[Database, dict[str, float]] = weakref.WeakKeyDictionary()

Row = TypeVar("Row", bound=m.Base)
Item = TypeVar("Item")


def _now() -> datetime:
    return datetime.now(UTC)


def _check(value: str | None, limit: int, name: str) -> None:
    """Refuse oversized values the same way on SQLite (which ignores lengths) as PostgreSQL."""
    if value is not None and len(value) > limit:
        raise ValueError(f"{name} longer than {limit} characters")


def _aware(value: datetime | None, name: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{name} is a naive datetime: the store needs a time zone")


def _insert(db: Database, model: type[m.Base]) -> postgresql.Insert | sqlite.Insert:
    """A dialect INSERT that supports ON CONFLICT (SQLite and PostgreSQL share the syntax)."""
    if db.dialect == "postgresql":
        return postgresql.insert(model)
    if db.dialect == "sqlite":
        return sqlite.insert(model)
    raise ValueError(f"unsupported database dialect {db.dialect!r}")


def _add(db: Database, model: type[m.Base], values: dict[str, Any]) -> None:
    """INSERT one row in its own transaction. A Core insert, not ``session.add``: the two
    writes of every hook call (jti, audit) skip the ORM unit of work, a third of their cost."""
    with db.engine.begin() as connection:
        connection.execute(insert(model), values)


def _all(db: Database, query: Select[Row], item: Callable[[Row], Item]) -> list[Item]:
    """Every row ``query`` selects, each made into a record by ``item``."""
    with db.session() as session:
        return [item(row) for row in session.scalars(query)]


def _delete(db: Database, model: type[m.Base], where: ColumnElement[bool]) -> int:
    """Delete the rows of ``model`` that match ``where``; returns how many."""
    with db.session() as session:
        result = session.execute(delete(model).where(where))
    return cast(CursorResult[Any], result).rowcount


def _purge_due(db: Database, what: str) -> bool:
    marks = _last_purge.setdefault(db, {})
    now = time.monotonic()
    if now - marks.get(what, float("-inf")) < PURGE_INTERVAL_S:
        return False
    marks[what] = now
    return True


# JWT replay cache -------------------------------------------------------------------------


def remember_jti(
    db: Database, issuer: str, jti: str, expires_at: datetime, *, now: datetime | None = None
) -> bool:
    """Record a JWT id: True if new, False if this issuer used it before (a replay). Atomic
    across processes: the unique (issuer, jti) key decides, not a prior read. ``expires_at``
    should be the token's ``exp`` plus the verifier's leeway, so no row is purged while its
    token could still be accepted."""
    _check(issuer, m.ISSUER_LEN, "issuer")
    _check(jti, m.JTI_LEN, "jti")
    _aware(expires_at, "expires_at")
    if _purge_due(db, "jti"):
        purge_expired_jti(db, now)
    try:
        _add(db, m.JwtJti, {"issuer": issuer, "jti": jti, "expires_at": expires_at})
    except IntegrityError:
        return False
    return True


def purge_expired_jti(db: Database, now: datetime | None = None) -> int:
    """Delete jti rows whose token has expired; returns how many."""
    return _delete(db, m.JwtJti, m.JwtJti.expires_at < (now or _now()))


# CDS Hooks feedback -----------------------------------------------------------------------


def add_feedback(db: Database, service_id: str, items: list[FeedbackItem]) -> int:
    """Store feedback for one service; returns how many items were new. A repeat of the same
    card, outcome and outcome timestamp (an EHR retrying) is ignored, atomically."""
    _check(service_id, m.ID_LEN, "service_id")
    for item in items:
        _check(item.card, m.ID_LEN, "card")
        _check(item.outcome, m.NAME_LEN, "outcome")
        _aware(item.outcome_timestamp, "outcome_timestamp")
        _aware(item.received_at, "received_at")
    received = _now()
    stored = 0
    with db.session() as session:
        for item in items:
            statement = (
                _insert(db, m.Feedback)
                .values(
                    service_id=service_id,
                    card=item.card,
                    outcome=item.outcome,
                    accepted_suggestions=list(item.accepted_suggestions),
                    override_reason=item.override_reason,
                    user_comment=item.user_comment,
                    outcome_timestamp=item.outcome_timestamp,
                    received_at=item.received_at or received,
                )
                .on_conflict_do_nothing()
                .returning(m.Feedback.id)
            )
            # RETURNING, not rowcount: drivers disagree on rowcount for ON CONFLICT.
            stored += len(session.execute(statement).all())
    return stored


def list_feedback(
    db: Database, service_id: str | None = None, card: str | None = None
) -> list[FeedbackItem]:
    """Feedback in the order the outcomes happened, optionally for one service and/or card."""
    query = select(m.Feedback).order_by(m.Feedback.outcome_timestamp, m.Feedback.id)
    if service_id is not None:
        query = query.where(m.Feedback.service_id == service_id)
    if card is not None:
        query = query.where(m.Feedback.card == card)
    return _all(db, query, _feedback_item)


def _feedback_item(row: m.Feedback) -> FeedbackItem:
    return FeedbackItem(
        card=row.card,
        outcome=row.outcome,
        accepted_suggestions=tuple(row.accepted_suggestions),
        override_reason=row.override_reason,
        user_comment=row.user_comment,
        outcome_timestamp=row.outcome_timestamp,
        service_id=row.service_id,
        received_at=row.received_at,
    )


# Audit ------------------------------------------------------------------------------------


def add_audit(db: Database, event: AuditEvent) -> None:
    """Record one hook call (identifiers, finding codes, latency and status only)."""
    _check(event.service_id, m.ID_LEN, "service_id")
    _check(event.hook, m.NAME_LEN, "hook")
    _check(event.hook_instance, m.ID_LEN, "hook_instance")
    _check(event.patient_id, m.PATIENT_LEN, "patient_id")
    _check(event.fhir_server, m.URL_LEN, "fhir_server")
    _aware(event.at, "at")
    row = {
        "service_id": event.service_id,
        "hook": event.hook,
        "hook_instance": event.hook_instance,
        "patient_id": event.patient_id,
        "finding_codes": list(event.finding_codes),
        "latency_ms": event.latency_ms,
        "status": event.status,
        "at": event.at,
        "fhir_server": event.fhir_server,
    }
    _add(db, m.AuditEventRow, row)


def list_audit(db: Database, limit: int = 100) -> list[AuditEvent]:
    """The latest ``limit`` audit events, newest first."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    query = (
        select(m.AuditEventRow)
        .order_by(m.AuditEventRow.at.desc(), m.AuditEventRow.id.desc())
        .limit(limit)
    )
    return _all(db, query, _audit_event)


def _audit_event(row: m.AuditEventRow) -> AuditEvent:
    return AuditEvent(
        service_id=row.service_id,
        hook=row.hook,
        hook_instance=row.hook_instance,
        patient_id=row.patient_id,
        finding_codes=tuple(row.finding_codes),
        latency_ms=row.latency_ms,
        status=row.status,
        at=row.at,
        fhir_server=row.fhir_server,
    )


# Clinician statements ---------------------------------------------------------------------


def add_statement(
    db: Database, patient_id: str, statement: ClinicianStatement
) -> ClinicianStatement:
    """Keep what a clinician told the app about a patient (BEN confirmed, trial response);
    returns it with ``ref`` set to its stored id ("statement:<id>") for use as evidence."""
    _check(patient_id, m.PATIENT_LEN, "patient_id")
    _check(statement.kind, m.NAME_LEN, "kind")
    _check(statement.author, m.PATIENT_LEN, "author")
    _aware(statement.recorded, "recorded")
    row = m.ClinicianStatementRow(
        patient_id=patient_id,
        kind=statement.kind,
        value=statement.value,
        author=statement.author,
        recorded_at=statement.recorded,
    )
    with db.session() as session:
        session.add(row)
        session.flush()
        return _statement(row)


def list_statements(db: Database, patient_id: str) -> list[ClinicianStatement]:
    """A patient's statements, oldest first (the rules take the latest of each kind)."""
    query = (
        select(m.ClinicianStatementRow)
        .where(m.ClinicianStatementRow.patient_id == patient_id)
        .order_by(m.ClinicianStatementRow.recorded_at, m.ClinicianStatementRow.id)
    )
    return _all(db, query, _statement)


def _statement(row: m.ClinicianStatementRow) -> ClinicianStatement:
    return ClinicianStatement(
        kind=row.kind,
        value=row.value,
        author=row.author,
        recorded=row.recorded_at,
        ref=f"{STATEMENT_REF_PREFIX}{row.id}",
    )


# Server-side sessions ---------------------------------------------------------------------


def session_put(db: Database, session_id: str, data: bytes, expires_at: datetime) -> None:
    """Create or replace a session's (already encrypted) data, atomically."""
    _check(session_id, m.ID_LEN, "session_id")
    _aware(expires_at, "expires_at")
    if _purge_due(db, "session"):
        purge_expired_sessions(db)
    statement = _insert(db, m.ServerSession).values(id=session_id, data=data, expires_at=expires_at)
    upsert = statement.on_conflict_do_update(
        index_elements=[m.ServerSession.id],
        set_={"data": statement.excluded.data, "expires_at": statement.excluded.expires_at},
    )
    with db.session() as session:
        session.execute(upsert)


def session_get(db: Database, session_id: str, *, now: datetime | None = None) -> bytes | None:
    """The session's data, or None when there is none or it has expired."""
    query = select(m.ServerSession.data).where(
        m.ServerSession.id == session_id, m.ServerSession.expires_at > (now or _now())
    )
    with db.session() as session:
        return session.scalars(query).first()


def session_delete(db: Database, session_id: str) -> None:
    _delete(db, m.ServerSession, m.ServerSession.id == session_id)


def purge_expired_sessions(db: Database, now: datetime | None = None) -> int:
    return _delete(db, m.ServerSession, m.ServerSession.expires_at <= (now or _now()))


__all__: list[str] = [
    "add_audit",
    "add_feedback",
    "add_statement",
    "list_audit",
    "list_feedback",
    "list_statements",
    "purge_expired_jti",
    "purge_expired_sessions",
    "remember_jti",
    "session_delete",
    "session_get",
    "session_put",
]
