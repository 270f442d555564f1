"""Malformed requests get a 4xx OperationOutcome, never a 500 (issue 3, "Tests that must
exist"): not JSON, wrong media type, wrong types, missing context, huge payloads, and
Hypothesis-generated bodies and mutations of valid ones."""

from __future__ import annotations

import copy
import json
import re
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cds_hooks import requests_builder as rb

SIGN = "/cds-services/clozapine-order-sign"
SELECT = "/cds-services/clozapine-order-select"
ALLOWED = {200, 400, 412, 413, 415}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@cache
def shared_app() -> Flask:
    """One app for the property tests (Hypothesis runs many examples per test)."""
    return rb.make_app(Path(tempfile.mkdtemp(prefix="cds-malformed-")))


@cache
def valid_select() -> dict[str, Any]:
    body = rb.hook_body("new-start-baseline-missing", "order-select")
    return body


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    return rb.make_app(tmp_path).test_client()


@pytest.fixture(autouse=True)
def no_network() -> Iterator[responses.RequestsMock]:
    """The FHIR fallback of a mutated body reaches nothing real: the EHR answers 500 at once
    (a refused connection would be retried with backoff, slowing every example)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(re.compile(re.escape(rb.FHIR_BASE) + ".*"), status=500, json={})
        yield mock


def outcome_text(response: Any) -> str:
    assert response.json is not None and response.json["resourceType"] == "OperationOutcome"
    return str(response.json["issue"][0]["diagnostics"])


# --- named cases ---------------------------------------------------------------------------


def test_not_json_is_400(client: FlaskClient) -> None:
    response = client.post(SIGN, data="{hook: order-sign", content_type="application/json")
    assert response.status_code == 400
    assert "not JSON" in outcome_text(response)


def test_wrong_media_type_is_415(client: FlaskClient) -> None:
    response = client.post(SIGN, data=json.dumps(rb.hook_body("trs-not-met")))
    assert response.status_code == 415
    outcome_text(response)


@pytest.mark.parametrize("body", [[], "order-sign", 42, None])
def test_a_body_that_is_not_an_object_is_400(client: FlaskClient, body: Any) -> None:
    response = client.post(SIGN, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert "JSON object" in outcome_text(response)


def test_missing_context_is_400(client: FlaskClient) -> None:
    body = rb.hook_body("trs-not-met")
    del body["context"]
    response = client.post(SIGN, json=body)
    assert response.status_code == 400
    assert "context" in outcome_text(response)


def test_missing_draft_orders_is_400(client: FlaskClient) -> None:
    body = rb.hook_body("trs-not-met")
    del body["context"]["draftOrders"]
    response = client.post(SIGN, json=body)
    assert response.status_code == 400
    assert "context.draftOrders is required" in outcome_text(response)


def test_a_body_for_another_hook_is_400(client: FlaskClient) -> None:
    response = client.post(SIGN, json=rb.hook_body("trs-not-met", "patient-view"))
    assert response.status_code == 400
    assert "hook must be 'order-sign'" in outcome_text(response)


def test_draft_order_for_another_patient_is_400(client: FlaskClient) -> None:
    body = rb.hook_body("trs-not-met")
    body["context"]["draftOrders"]["entry"][0]["resource"]["subject"] = {"reference": "Patient/x"}
    response = client.post(SIGN, json=body)
    assert response.status_code == 400
    assert "subject is not the context patient" in outcome_text(response)


def test_deeply_nested_json_is_400(client: FlaskClient) -> None:
    data = "[" * 200_000 + "]" * 200_000
    response = client.post(SIGN, data=data, content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize("depth", [900, 1000, 1024])
@pytest.mark.parametrize("where", ["prefetch", "draft", "top"])
def test_nesting_the_json_reader_accepts_is_never_500(
    client: FlaskClient, depth: int, where: str
) -> None:
    """orjson reads up to 1024 levels, deeper than ``json`` could under Flask's stack: such a
    value in any part of the body must still be refused or ignored, never crash."""
    nested = "[" * depth + "]" * depth
    body = rb.hook_body("trs-not-met")
    if where == "prefetch":
        body["prefetch"]["conditions"] = {"resourceType": "Bundle", "type": "searchset",
                                          "entry": [{"resource": "@"}]}  # fmt: skip
    elif where == "draft":
        body["context"]["draftOrders"]["entry"][0]["resource"]["dosageInstruction"] = "@"
    else:
        body["extension"] = "@"
    data = json.dumps(body).replace('"@"', nested)
    response = client.post(SIGN, data=data, content_type="application/json")
    assert response.status_code in ALLOWED
    if response.status_code != 200:
        assert outcome_text(response)


def test_a_huge_payload_is_413(client: FlaskClient) -> None:
    body = rb.hook_body("trs-not-met")
    body["padding"] = "x" * (5 * 1024 * 1024)
    response = client.post(SIGN, json=body)
    assert response.status_code == 413
    assert outcome_text(response)


def test_the_size_limit_is_configurable(tmp_path: Path) -> None:
    client = rb.make_app(tmp_path, MAX_CONTENT_LENGTH=2048).test_client()
    response = client.post(SIGN, json=rb.hook_body("trs-not-met"))
    assert response.status_code == 413
    feedback = client.post(SIGN + "/feedback", json={"feedback": [{"card": "x" * 4096}]})
    assert feedback.status_code == 413


def test_invalid_utf8_is_400(client: FlaskClient) -> None:
    response = client.post(SIGN, data=b'{"hook": "\xff"}', content_type="application/json")
    assert response.status_code == 400


# --- generated -----------------------------------------------------------------------------


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (dict keys and list indexes)."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:3]):
            out += paths(item, (*prefix, i))
    return out


def mutate(body: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    changed = copy.deepcopy(body)
    parent = changed
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return changed


def post_json(body: Any, path: str = SELECT) -> int:
    client = shared_app().test_client()
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    assert response.status_code in ALLOWED, response.get_data(as_text=True)[:500]
    if response.status_code != 200:
        outcome_text(response)
    return response.status_code


#: Strings close to URLs: brackets, ports, spaces, user info (urlsplit raises on some).
urlish = st.from_regex(r"(https?|ftp)://[\[\]a-z0-9:.@ %]{0,16}(/[a-z/]{0,8})?", fullmatch=True)

# Skeleton shapes make the generator reach deeper validation than random top-level values do.
skeletons = st.fixed_dictionaries(
    {
        "hook": st.sampled_from(["order-sign", "order-select", "patient-view"]) | json_values,
        "hookInstance": json_values,
        "context": st.dictionaries(
            st.sampled_from(["userId", "patientId", "selections", "draftOrders", "encounterId"]),
            json_values,
        )
        | json_values,
    },
    optional={
        "prefetch": json_values,
        "fhirServer": urlish | json_values,
        "fhirAuthorization": json_values,
    },
)

PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(body=json_values)
def test_random_json_never_500(body: Any) -> None:
    post_json(body)
    post_json(body, SIGN + "/feedback")


@PROPERTY
@given(body=skeletons)
def test_random_request_shapes_never_500(body: dict[str, Any]) -> None:
    post_json(body, SIGN)
    post_json(body, SELECT)


@PROPERTY
@given(data=st.data())
def test_mutations_of_a_valid_body_never_500(data: st.DataObject) -> None:
    body = valid_select()
    path = data.draw(st.sampled_from(paths(body)))
    value = data.draw(json_values)
    changed = mutate(body, path, value, data.draw(st.booleans()))
    post_json(changed)
