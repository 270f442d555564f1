"""SMART scopes (SMART App Launch 2.2, scopes-and-launch-context; standards-checklist.md
"Scopes"): the scopes we request and what a granted scope string allows.

We request v2 syntax (``patient/Observation.rs``) unless the server advertises only v1, and read
either form in the granted ``scope``. A granular scope (``patient/Observation.rs?category=...``)
allows only searches inside its constraint, so it never counts as permission for the
unconstrained searches the dashboard makes: that data is then reported as not shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

ScopeVersion = Literal["v1", "v2"]

_RESOURCE_SCOPE = re.compile(
    r"(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]{1,63})"
    r"\.(?P<perms>read|write|\*|c?r?u?d?s?)(?P<query>\?.*)?"
)
V1_PERMISSIONS = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset("cruds")}
ACCESS_SCOPES = ("online_access", "offline_access")
IDENTITY_SCOPES = ("openid", "fhirUser")
EHR_LAUNCH = "launch"
STANDALONE_LAUNCH = "launch/patient"


@dataclass(frozen=True)
class ResourceScope:
    context: str
    resource_type: str
    permissions: frozenset[str]
    constrained: bool

    def allows(self, resource_type: str, needed: frozenset[str]) -> bool:
        return (
            not self.constrained
            and self.resource_type in {resource_type, "*"}
            and needed <= self.permissions
        )


def parse_scope(scope: str) -> ResourceScope | None:
    """A resource scope in v1 (``.read``/``.write``/``.*``) or v2 (``.cruds``) syntax; None
    for anything else (``launch``, ``openid``, malformed text)."""
    match = _RESOURCE_SCOPE.fullmatch(scope)
    if match is None or not match["perms"]:
        return None
    perms = match["perms"]
    return ResourceScope(
        context=match["context"],
        resource_type=match["type"],
        permissions=V1_PERMISSIONS.get(perms, frozenset(perms)),
        constrained=match["query"] is not None,
    )


def split_scope(text: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys((text or "").split()))


def can_read(granted: Iterable[str], resource_type: str) -> bool:
    """True when the granted scopes allow reading *and* searching ``resource_type`` without a
    constraint (the dashboard searches). Permissions may come from several scopes
    (``patient/Observation.r`` with ``patient/Observation.s``)."""
    held: set[str] = set()
    for text in granted:
        scope = parse_scope(text)
        if scope is not None and scope.allows(resource_type, frozenset()):
            held |= scope.permissions
    return frozenset("rs") <= held


def to_v1(scope: str) -> str:
    """``patient/Observation.rs`` -> ``patient/Observation.read``; non-resource scopes as given."""
    parsed = parse_scope(scope)
    if parsed is None:
        return scope
    base = scope.split("?", 1)[0].rsplit(".", 1)[0]
    if parsed.permissions <= V1_PERMISSIONS["read"]:
        return f"{base}.read"
    if parsed.permissions <= V1_PERMISSIONS["write"]:
        return f"{base}.write"
    return f"{base}.*"


def requested_scopes(
    registered: Sequence[str], *, version: ScopeVersion, ehr_launch: bool, offline: bool
) -> list[str]:
    """The scope list for an authorize request: the registered (v2) scopes, in v1 syntax when
    the server speaks only v1; ``launch`` for an EHR launch, ``launch/patient`` for a standalone
    one; ``openid fhirUser`` for the user's identity; ``online_access`` or ``offline_access``."""
    out: list[str] = []
    for scope in registered:
        if scope in ACCESS_SCOPES or scope in {EHR_LAUNCH, STANDALONE_LAUNCH}:
            continue
        out.append(to_v1(scope) if version == "v1" else scope)
    out.insert(0, EHR_LAUNCH if ehr_launch else STANDALONE_LAUNCH)
    out.extend(s for s in IDENTITY_SCOPES if s not in out)
    out.append("offline_access" if offline else "online_access")
    return list(dict.fromkeys(out))
