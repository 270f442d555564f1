"""SMART scopes: v1/v2 parsing, what a granted scope allows, and the scopes requested."""

from __future__ import annotations

import pytest

from smartapp.smart.scopes import can_read, parse_scope, requested_scopes, split_scope, to_v1

REGISTERED = ["launch", "openid", "fhirUser", "online_access", "patient/Observation.rs",
              "patient/Condition.rs"]  # fmt: skip


@pytest.mark.parametrize(
    ("granted", "allowed"),
    [
        ("patient/Observation.rs", True),
        ("patient/Observation.read", True),
        ("patient/*.read", True),
        ("patient/*.rs", True),
        ("user/Observation.rs", True),
        ("patient/Observation.cruds", True),
        ("patient/Observation.*", True),
        ("patient/Observation.r patient/Observation.s", True),  # split over two scopes
        ("patient/Observation.r", False),  # read by id only: the dashboard searches
        ("patient/Observation.s", False),
        ("patient/Observation.write", False),
        ("patient/Observation.rs?category=laboratory", False),  # granular: constrained
        ("patient/Condition.rs", False),
        ("patient/observation.rs", False),
        ("patient/Observation.sr", False),  # v2 permissions must be in cruds order
        ("", False),
    ],
)
def test_can_read_needs_an_unconstrained_read_and_search(granted: str, allowed: bool) -> None:
    assert can_read(split_scope(granted), "Observation") is allowed


def test_parse_scope_keeps_the_constraint_flag_and_permissions() -> None:
    scope = parse_scope("patient/Observation.rs?category=laboratory")
    assert scope is not None and scope.constrained and scope.permissions == frozenset("rs")
    assert parse_scope("launch/patient") is None
    assert parse_scope("openid") is None


@pytest.mark.parametrize(
    ("v2", "v1"),
    [("patient/Observation.rs", "patient/Observation.read"),
     ("patient/Observation.r", "patient/Observation.read"),
     ("patient/Observation.cud", "patient/Observation.write"),
     ("patient/Observation.cruds", "patient/Observation.*"),
     ("openid", "openid")],
)  # fmt: skip
def test_v2_scopes_translate_to_v1(v2: str, v1: str) -> None:
    assert to_v1(v2) == v1


def test_ehr_launch_scopes_in_v2() -> None:
    scopes = requested_scopes(REGISTERED, version="v2", ehr_launch=True, offline=False)
    assert scopes == ["launch", "openid", "fhirUser", "patient/Observation.rs",
                      "patient/Condition.rs", "online_access"]  # fmt: skip


def test_standalone_v1_offline_scopes() -> None:
    scopes = requested_scopes(REGISTERED, version="v1", ehr_launch=False, offline=True)
    assert scopes == ["launch/patient", "openid", "fhirUser", "patient/Observation.read",
                      "patient/Condition.read", "offline_access"]  # fmt: skip


def test_identity_scopes_are_added_when_the_registration_forgot_them() -> None:
    scopes = requested_scopes(["patient/Patient.rs"], version="v2", ehr_launch=True, offline=False)
    assert scopes == ["launch", "patient/Patient.rs", "openid", "fhirUser", "online_access"]
