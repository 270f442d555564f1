"""The store on SQLite and PostgreSQL alike: JWT replay cache, feedback, audit, clinician
statements, server sessions and the database handle itself."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select

from smartapp.domain import ClinicianStatement
from smartapp.persistence import Database, store
from smartapp.persistence import models as m
from smartapp.persistence.records import AuditEvent, FeedbackItem
from tests.postgres_fixture import _free_port

ISS = "https://sandbox.cds-hooks.org"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = datetime.now(UTC) + timedelta(minutes=10)


def count(db: Database, model: type[m.Base]) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


# JWT replay cache -------------------------------------------------------------------------


def test_jti_is_accepted_once_per_issuer(db: Database) -> None:
    assert store.remember_jti(db, ISS, "j1", LATER) is True
    assert store.remember_jti(db, ISS, "j1", LATER) is False
    assert store.remember_jti(db, ISS, "j1", LATER + timedelta(hours=1)) is False
    assert store.remember_jti(db, "https://other.example", "j1", LATER) is True
    assert store.remember_jti(db, ISS, "j2", LATER) is True
    assert count(db, m.JwtJti) == 3


def test_jti_replay_is_decided_once_across_threads(db: Database) -> None:
    start = threading.Barrier(8)

    def attempt(_: int) -> bool:
        start.wait(timeout=10)
        return store.remember_jti(db, ISS, "raced", LATER)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert sorted(results) == [False] * 7 + [True]


def _remember_in_child(url: str, start: Any, results: Any) -> None:
    database = Database(url)
    start.wait(timeout=30)
    results.put(store.remember_jti(database, ISS, "raced", LATER))
    database.dispose()


def test_jti_replay_is_decided_once_across_processes(db: Database) -> None:
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(4), context.Queue()
    children = [
        context.Process(target=_remember_in_child, args=(db.url, start, results)) for _ in range(4)
    ]
    for child in children:
        child.start()
    outcomes = sorted(results.get(timeout=30) for _ in children)
    for child in children:
        child.join(timeout=30)
    assert outcomes == [False, False, False, True]


def test_purge_removes_only_expired_jti(db: Database) -> None:
    store.remember_jti(db, ISS, "old", T0 - timedelta(seconds=1))
    store.remember_jti(db, ISS, "edge", T0)
    store.remember_jti(db, ISS, "live", T0 + timedelta(seconds=1))
    assert store.purge_expired_jti(db, now=T0) == 1
    assert store.remember_jti(db, ISS, "old", T0 + timedelta(minutes=5)) is True
    assert store.remember_jti(db, ISS, "edge", T0 + timedelta(minutes=5)) is False


def test_remember_jti_purges_now_and_then(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "_last_purge", type(store._last_purge)())
    store.remember_jti(db, ISS, "first", T0 - timedelta(hours=1), now=T0)
    store.remember_jti(db, ISS, "expired", T0 - timedelta(hours=1), now=T0)
    store.remember_jti(db, ISS, "second", T0 + timedelta(hours=1), now=T0)
    assert count(db, m.JwtJti) == 3  # within the purge interval: nothing swept
    monkeypatch.setattr(store, "PURGE_INTERVAL_S", 0.0)
    store.remember_jti(db, ISS, "third", T0 + timedelta(hours=1), now=T0)
    assert count(db, m.JwtJti) == 2


@pytest.mark.parametrize(
    ("issuer", "jti", "expires"),
    [
        ("i" * 513, "j", LATER),
        (ISS, "j" * 257, LATER),
        (ISS, "j", LATER.replace(tzinfo=None)),
    ],
)
def test_remember_jti_refuses_what_it_cannot_store_faithfully(
    db: Database, issuer: str, jti: str, expires: datetime
) -> None:
    with pytest.raises(ValueError):
        store.remember_jti(db, issuer, jti, expires)
    assert count(db, m.JwtJti) == 0


# Feedback ---------------------------------------------------------------------------------

OVERRIDE = {
    "code": "patient-declines",
    "system": "https://example.org/override-reasons",
    "display": "Patient declines",
}


def accepted(card: str = "c1", when: datetime = T0) -> FeedbackItem:
    return FeedbackItem(
        card=card,
        outcome="accepted",
        accepted_suggestions=("s-anc", "s-crp"),
        override_reason=None,
        user_comment=None,
        outcome_timestamp=when,
    )


def overridden(card: str = "c1", when: datetime = T0) -> FeedbackItem:
    return FeedbackItem(
        card=card,
        outcome="overridden",
        accepted_suggestions=(),
        override_reason=OVERRIDE,
        user_comment="ANC drawn at the outside lab yesterday",
        outcome_timestamp=when,
    )


def test_feedback_round_trip(db: Database) -> None:
    assert store.add_feedback(db, "clozapine-order-sign", [accepted(), overridden("c2")]) == 2
    first, second = store.list_feedback(db)
    assert first.service_id == second.service_id == "clozapine-order-sign"
    assert (first.card, first.outcome, first.accepted_suggestions) == (
        "c1", "accepted", ("s-anc", "s-crp"),
    )  # fmt: skip
    assert first.override_reason is None and first.user_comment is None
    assert second.override_reason == OVERRIDE
    assert second.user_comment == "ANC drawn at the outside lab yesterday"
    assert second.outcome_timestamp == T0 and second.outcome_timestamp.utcoffset() == timedelta(0)
    assert second.received_at is not None
    assert abs(second.received_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_feedback_repeats_are_idempotent(db: Database) -> None:
    assert store.add_feedback(db, "svc", [accepted(), overridden()]) == 2
    assert store.add_feedback(db, "svc", [accepted(), overridden()]) == 0
    # The same instant written with another offset is the same feedback.
    plus_two = T0.astimezone(timezone(timedelta(hours=2)))
    assert store.add_feedback(db, "svc", [accepted(when=plus_two)]) == 0
    # A repeat inside one batch counts once; a later outcome for the same card is new.
    later = accepted(when=T0 + timedelta(microseconds=1))
    assert store.add_feedback(db, "svc", [later, later]) == 1
    # The same card for another service is another row.
    assert store.add_feedback(db, "other-svc", [accepted()]) == 1
    assert count(db, m.Feedback) == 4


def test_list_feedback_filters_by_service_and_card(db: Database) -> None:
    store.add_feedback(db, "a", [accepted("c1", T0 + timedelta(minutes=2)), accepted("c2")])
    store.add_feedback(db, "b", [overridden("c1", T0 + timedelta(minutes=1))])
    assert [(f.service_id, f.card) for f in store.list_feedback(db)] == [
        ("a", "c2"), ("b", "c1"), ("a", "c1"),
    ]  # fmt: skip
    assert [f.card for f in store.list_feedback(db, service_id="a")] == ["c2", "c1"]
    assert [f.service_id for f in store.list_feedback(db, card="c1")] == ["b", "a"]
    assert [f.outcome for f in store.list_feedback(db, "a", "c1")] == ["accepted"]
    assert store.list_feedback(db, "nobody") == []


def test_feedback_batch_with_a_bad_item_stores_nothing(db: Database) -> None:
    naive = accepted("c9", T0.replace(tzinfo=None))
    with pytest.raises(ValueError):
        store.add_feedback(db, "svc", [accepted(), naive])
    with pytest.raises(ValueError):
        store.add_feedback(db, "svc", [accepted("x" * 129)])
    assert count(db, m.Feedback) == 0


# Audit ------------------------------------------------------------------------------------


def event(n: int, at: datetime = T0, patient: str | None = "p1") -> AuditEvent:
    return AuditEvent(
        service_id="clozapine-order-sign",
        hook="order-sign",
        hook_instance=f"hi-{n}",
        patient_id=patient,
        finding_codes=("anc-mild", "level-due"),
        latency_ms=12.5,
        status=200,
        at=at,
        fhir_server="https://ehr.example/fhir",
    )


def test_audit_round_trip_newest_first(db: Database) -> None:
    store.add_audit(db, event(1, T0))
    store.add_audit(db, event(2, T0 + timedelta(seconds=1), patient=None))
    store.add_audit(db, event(3, T0 - timedelta(days=1)))
    events = store.list_audit(db)
    assert [e.hook_instance for e in events] == ["hi-2", "hi-1", "hi-3"]
    assert events[1] == event(1, T0)
    assert events[0].patient_id is None
    assert [e.hook_instance for e in store.list_audit(db, limit=1)] == ["hi-2"]
    with pytest.raises(ValueError):
        store.list_audit(db, limit=0)


def test_audit_keeps_the_instant_whatever_the_offset(db: Database) -> None:
    eastern = T0.astimezone(timezone(timedelta(hours=-5)))
    store.add_audit(db, event(1, eastern))
    (stored,) = store.list_audit(db)
    assert stored.at == T0 and stored.at.tzinfo == UTC


# Clinician statements ---------------------------------------------------------------------


def statement(kind: str, value: str, when: datetime) -> ClinicianStatement:
    return ClinicianStatement(kind=kind, value=value, author="Practitioner/dr-a", recorded=when)


def test_statements_round_trip_per_patient_oldest_first(db: Database) -> None:
    later = store.add_statement(db, "p1", statement("ben-confirmed", "false", T0))
    earlier = store.add_statement(
        db, "p1", statement("ben-confirmed", "true", T0 - timedelta(days=3))
    )
    store.add_statement(db, "p2", statement("trial-response", "risperidone: none", T0))
    assert later.ref.startswith("statement:") and later.ref != earlier.ref
    listed = store.list_statements(db, "p1")
    assert listed == [earlier, later]
    assert [(s.kind, s.value) for s in listed] == [
        ("ben-confirmed", "true"), ("ben-confirmed", "false"),
    ]  # fmt: skip
    assert listed[1].recorded == T0 and listed[1].author == "Practitioner/dr-a"
    assert [s.value for s in store.list_statements(db, "p2")] == ["risperidone: none"]
    assert store.list_statements(db, "p3") == []


# Server sessions --------------------------------------------------------------------------


def test_sessions_put_get_replace_delete(db: Database) -> None:
    store.session_put(db, "s1", b"\x00cipher\xff", T0 + timedelta(hours=1))
    assert store.session_get(db, "s1", now=T0) == b"\x00cipher\xff"
    store.session_put(db, "s1", b"second", T0 + timedelta(hours=2))
    assert store.session_get(db, "s1", now=T0 + timedelta(minutes=90)) == b"second"
    assert count(db, m.ServerSession) == 1
    store.session_delete(db, "s1")
    assert store.session_get(db, "s1", now=T0) is None
    store.session_delete(db, "never-existed")
    assert store.session_get(db, "never-existed", now=T0) is None


def test_expired_sessions_are_not_returned_and_are_purged(db: Database) -> None:
    store.session_put(db, "old", b"x", T0)
    store.session_put(db, "new", b"y", T0 + timedelta(seconds=1))
    assert store.session_get(db, "old", now=T0) is None
    assert store.session_get(db, "new", now=T0) == b"y"
    assert store.purge_expired_sessions(db, now=T0) == 1
    assert store.session_get(db, "new", now=T0) == b"y"


# The database handle ----------------------------------------------------------------------


def test_ping(db: Database) -> None:
    assert db.ping() is True


def test_ping_is_false_for_an_unreachable_database(tmp_path: Any) -> None:
    for url in (
        f"postgresql://nobody@127.0.0.1:{_free_port()}/none",
        f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite3'}",
    ):
        database = Database(url)
        try:
            assert database.ping() is False
        finally:
            database.dispose()


def test_session_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(m.JwtJti(issuer=ISS, jti="rolled-back", expires_at=LATER))
        session.flush()
        raise RuntimeError("boom")
    assert count(db, m.JwtJti) == 0
