"""The body of ``POST /cds-services/{id}/feedback`` (CDS Hooks 2.0 "Feedback"), validated into
``FeedbackItem`` records for the store.

Each item: ``card`` (the card's uuid), ``outcome`` ``accepted`` or ``overridden``,
``acceptedSuggestions`` [{``id``}], ``overrideReason`` {``reason`` (a Coding),
``userComment``}, ``outcomeTimestamp`` (ISO 8601). Anything else of the wrong shape is a 400
naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from smartapp.cds_hooks.hook_request import bad
from smartapp.persistence.models import ID_LEN
from smartapp.persistence.records import FeedbackItem

OUTCOMES = frozenset({"accepted", "overridden"})
CODING_STRINGS = ("system", "code", "display", "version")


def _string(value: Any, name: str, limit: int | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad(f"{name} must be a non-empty string")
    if limit is not None and len(value) > limit:
        raise bad(f"{name} is longer than {limit} characters")
    return value


def _timestamp(value: Any, name: str) -> datetime:
    """An ISO 8601 date-time; the specification gives it in UTC, so one without an offset is
    read as UTC."""
    text = _string(value, name)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise bad(f"{name} must be an ISO 8601 date-time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _accepted(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise bad(f"{name} must be an array")
    ids = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise bad(f"{name}[{i}] must be an object with an id")
        ids.append(_string(item.get("id"), f"{name}[{i}].id"))
    return tuple(ids)


def _coding(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(f"{name} must be a Coding")
    coding = {}
    for key in CODING_STRINGS:
        if value.get(key) is not None:
            coding[key] = _string(value[key], f"{name}.{key}")
    if "code" not in coding:
        raise bad(f"{name}.code is required")
    return coding


def _override(value: Any, name: str) -> tuple[dict[str, Any] | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise bad(f"{name} must be an object")
    reason = value.get("reason")
    comment = value.get("userComment")
    if comment is not None and not isinstance(comment, str):
        raise bad(f"{name}.userComment must be a string")
    return (None if reason is None else _coding(reason, f"{name}.reason")), (comment or None)


def _item(value: Any, name: str) -> FeedbackItem:
    if not isinstance(value, dict):
        raise bad(f"{name} must be an object")
    outcome = value.get("outcome")
    if outcome not in OUTCOMES:
        raise bad(f"{name}.outcome must be 'accepted' or 'overridden'")
    reason, comment = _override(value.get("overrideReason"), f"{name}.overrideReason")
    return FeedbackItem(
        card=_string(value.get("card"), f"{name}.card", ID_LEN),
        outcome=outcome,
        accepted_suggestions=_accepted(
            value.get("acceptedSuggestions"), f"{name}.acceptedSuggestions"
        ),
        override_reason=reason,
        user_comment=comment,
        outcome_timestamp=_timestamp(value.get("outcomeTimestamp"), f"{name}.outcomeTimestamp"),
    )


def parse_feedback(body: Any) -> list[FeedbackItem]:
    """Validate a decoded feedback body; at least one item."""
    if not isinstance(body, Mapping):
        raise bad("the request body must be a JSON object")
    items = body.get("feedback")
    if not isinstance(items, list) or not items:
        raise bad("feedback must be a non-empty array")
    return [_item(item, f"feedback[{i}]") for i, item in enumerate(items)]
