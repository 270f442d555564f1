"""Feedback (CDS Hooks 2.0 "Feedback"): validated, stored idempotently, readable, answered
with an empty 200."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from smartapp.cds_hooks.feedback import parse_feedback
from smartapp.errors import ClientError
from smartapp.persistence import store
from smartapp.persistence.records import FeedbackItem
from tests.cds_hooks import requests_builder as rb

URL = "/cds-services/clozapine-order-sign/feedback"
CARD = "9f2b1c3e-4d5a-4b6c-8d7e-0f1a2b3c4d5e"
REASON = {
    "system": "https://smartapp.example.org/fhir/CodeSystem/override-reason",
    "code": "anc-drawn-today",
    "display": "ANC drawn today, result pending",
}


def accepted(card: str = CARD, when: str = "2026-03-01T10:15:00Z") -> dict[str, Any]:
    return {
        "card": card,
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": "s-anc"}],
        "outcomeTimestamp": when,
    }


def overridden(card: str = CARD) -> dict[str, Any]:
    return {
        "card": card,
        "outcome": "overridden",
        "overrideReason": {"reason": REASON, "userComment": "drawn at 9am"},
        "outcomeTimestamp": "2026-03-01T10:16:00.250+01:00",
    }


def refused(body: Any) -> str:
    with pytest.raises(ClientError) as caught:
        parse_feedback(body)
    assert caught.value.status == 400
    return caught.value.message


# --- parsing -------------------------------------------------------------------------------


def test_accepted_and_overridden_items_are_read() -> None:
    items = parse_feedback({"feedback": [accepted(), overridden()]})
    assert items == [
        FeedbackItem(
            card=CARD,
            outcome="accepted",
            accepted_suggestions=("s-anc",),
            override_reason=None,
            user_comment=None,
            outcome_timestamp=datetime(2026, 3, 1, 10, 15, tzinfo=UTC),
        ),
        FeedbackItem(
            card=CARD,
            outcome="overridden",
            accepted_suggestions=(),
            override_reason=REASON,
            user_comment="drawn at 9am",
            outcome_timestamp=datetime(2026, 3, 1, 9, 16, 0, 250000, tzinfo=UTC),
        ),
    ]


def test_a_timestamp_without_offset_is_utc() -> None:
    (item,) = parse_feedback({"feedback": [accepted(when="2026-03-01T10:15:00")]})
    assert item.outcome_timestamp == datetime(2026, 3, 1, 10, 15, tzinfo=UTC)


def test_an_override_without_a_coded_reason_keeps_the_comment() -> None:
    item = {**overridden(), "overrideReason": {"userComment": "clinical judgement"}}
    (read,) = parse_feedback({"feedback": [item]})
    assert read.override_reason is None and read.user_comment == "clinical judgement"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"card": None}, "feedback[0].card"),
        ({"card": ""}, "feedback[0].card"),
        ({"card": "x" * 129}, "longer than 128"),
        ({"outcome": "ignored"}, "feedback[0].outcome"),
        ({"outcome": None}, "feedback[0].outcome"),
        ({"outcomeTimestamp": None}, "feedback[0].outcomeTimestamp"),
        ({"outcomeTimestamp": "yesterday"}, "ISO 8601"),
        ({"outcomeTimestamp": 1772356500}, "feedback[0].outcomeTimestamp"),
        ({"acceptedSuggestions": "s-anc"}, "acceptedSuggestions must be an array"),
        ({"acceptedSuggestions": ["s-anc"]}, "acceptedSuggestions[0]"),
        ({"acceptedSuggestions": [{"id": 3}]}, "acceptedSuggestions[0].id"),
        ({"overrideReason": "because"}, "overrideReason must be an object"),
        ({"overrideReason": {"reason": "code"}}, "overrideReason.reason must be a Coding"),
        ({"overrideReason": {"reason": {"display": "x"}}}, "reason.code is required"),
        ({"overrideReason": {"reason": {"code": 5}}}, "reason.code"),
        ({"overrideReason": {"userComment": ["x"]}}, "userComment"),
    ],
)
def test_malformed_items_are_400_naming_the_field(change: dict[str, Any], named: str) -> None:
    assert named in refused({"feedback": [{**accepted(), **change}]})


@pytest.mark.parametrize(
    "body", [[], {"feedback": []}, {"feedback": {}}, {"items": [accepted()]}, {"feedback": [1]}]
)
def test_malformed_bodies_are_400(body: Any) -> None:
    refused(body)


# --- over HTTP -----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Flask:
    """The same endpoint tests on the embedded SQLite file and on PostgreSQL, the database
    several instances share (design.md, Persistence)."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database")
        return rb.make_app(tmp_path, DATABASE_URL=url)
    return rb.make_app(tmp_path)


def test_feedback_is_stored_and_readable(app: Flask) -> None:
    client = app.test_client()
    response = client.post(URL, json={"feedback": [accepted(), overridden()]})
    assert response.status_code == 200
    assert response.get_data() == b""
    stored = store.list_feedback(app.extensions["smartapp.db"], "clozapine-order-sign")
    assert [(f.card, f.outcome, f.accepted_suggestions, f.override_reason) for f in stored] == [
        (CARD, "overridden", (), REASON),
        (CARD, "accepted", ("s-anc",), None),
    ]  # overridden at 09:16 UTC comes before accepted at 10:15 UTC
    assert all(f.service_id == "clozapine-order-sign" for f in stored)
    assert store.list_feedback(app.extensions["smartapp.db"], "clozapine-patient-view") == []


def test_repeated_feedback_is_stored_once(app: Flask) -> None:
    client = app.test_client()
    for _ in range(3):
        assert client.post(URL, json={"feedback": [accepted()]}).status_code == 200
    assert len(store.list_feedback(app.extensions["smartapp.db"], card=CARD)) == 1
    other = accepted(when="2026-03-01T11:00:00Z")
    assert client.post(URL, json={"feedback": [other]}).status_code == 200
    assert len(store.list_feedback(app.extensions["smartapp.db"], card=CARD)) == 2


def test_bad_feedback_is_400_and_stores_nothing(app: Flask) -> None:
    client = app.test_client()
    response = client.post(URL, json={"feedback": [accepted(), {"card": CARD}]})
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["resourceType"] == "OperationOutcome"
    assert "feedback[1].outcome" in response.json["issue"][0]["diagnostics"]
    assert store.list_feedback(app.extensions["smartapp.db"]) == []


def test_feedback_for_an_unknown_service_is_404(app: Flask) -> None:
    response = app.test_client().post(
        "/cds-services/nope/feedback", json={"feedback": [accepted()]}
    )
    assert response.status_code == 404
    assert response.json is not None and response.json["issue"][0]["code"] == "not-found"


def test_feedback_must_be_json(app: Flask) -> None:
    response = app.test_client().post(URL, data="feedback", content_type="text/plain")
    assert response.status_code == 415


def test_feedback_is_post_only(app: Flask) -> None:
    assert app.test_client().get(URL).status_code == 405
