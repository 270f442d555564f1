"""CDS client JWT verification (CDS Hooks 2.0, Trusting CDS Clients; standards-checklist.md
"Security"; design.md Contract 2).

Order of checks, cheapest and most dangerous first: the bearer token's shape; the unverified
header's ``alg`` (RS384 or ES384 only, so ``none`` and HMAC never reach key handling) and
``kid``; the issuer (read from the unverified payload only to choose its configuration); the
``jku`` against that issuer's allow list; the key for ``kid`` whose type fits ``alg``; the
signature (joserfc); then ``aud`` (the exact URL called), ``exp``, ``iat`` (not in the future, not
older than ``max_age_s``), ``nbf``, ``jti``; last the replay check, so only well-formed, signed,
current tokens are remembered. Any failure raises :class:`JwtRejected` with a short reason for
the server log; the token itself never appears in a message.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from smartapp.cds_hooks.jwks import (
    FetchJson,
    JwksCache,
    JwksError,
    PublicKey,
    https_fetcher,
    utc_now,
)

ALLOWED_ALGS: Mapping[str, str] = {"RS384": "RSA", "ES384": "EC"}
ES384_CURVE = "P-384"
MIN_RSA_BITS = 2048
MAX_TOKEN_CHARS = 16 * 1024
MAX_JTI_CHARS = 255
JWKS_MIN_REFETCH_S = 60
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime can hold
_TOKEN = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)")

ReplayCheck = Callable[[str, str, datetime], bool]


class JwtRejected(Exception):
    """The request is not authenticated. ``reason`` is for the server log only (the HTTP layer
    answers a bare 401); ``issuer`` and ``jti`` are the claimed values when they were readable,
    shortened and stripped of control characters so they are safe to log."""

    def __init__(self, reason: str, *, issuer: Any = None, jti: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.issuer = _loggable(issuer)
        self.jti = _loggable(jti)


@dataclass(frozen=True)
class VerifiedClient:
    """An authenticated CDS client call. ``expires_at`` is the last instant this verifier would
    accept the token: the earlier of ``exp`` and ``iat`` + max age, plus the leeway."""

    issuer: str
    subject: str | None
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class _Issuer:
    jwks_url: str | None
    jku: frozenset[str]
    subjects: frozenset[str] | None


@dataclass(frozen=True)
class _Token:
    text: str
    header: dict[str, Any]
    claims: dict[str, Any]


class InMemoryReplayGuard:
    """A per-process replay cache, for tests and single-process development; production passes
    the database-backed ``remember_jti`` so that every instance shares one cache."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or utc_now
        self._seen: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()

    def __call__(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        with self._lock:
            now = self._clock()
            self._seen = {k: v for k, v in self._seen.items() if v > now}
            if (issuer, jti) in self._seen:
                return False
            self._seen[(issuer, jti)] = expires_at
            return True


class CdsJwtVerifier:
    """Verifies ``Authorization: Bearer <jwt>`` from trusted CDS clients.

    ``trusted_issuers`` maps each ``iss`` to ``{"jwks_url": ..., "jku": [...], "sub": [...]}``:
    keys come from the token's ``jku`` when it is on the ``jku`` list (the ``jwks_url`` is
    always allowed) and from ``jwks_url`` otherwise; the optional ``sub`` list restricts the
    client ids accepted (the spec suggests allow-listing ``iss``, ``jku`` and ``sub``).
    ``replay(iss, jti, expires_at)`` returns True for a jti not seen before; it defaults to an
    in-memory cache, and exceptions it raises propagate (a database failure is a server error,
    not the client's). ``fetch_json`` defaults to HTTPS-only :func:`jwks.https_fetcher`.
    """

    def __init__(
        self,
        trusted_issuers: Mapping[str, Mapping[str, Any]],
        *,
        leeway_s: int = 60,
        max_age_s: int = 600,
        jwks_cache_s: int = 3600,
        fetch_json: FetchJson | None = None,
        replay: ReplayCheck | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._issuers = {iss: _issuer_config(iss, cfg) for iss, cfg in trusted_issuers.items()}
        self._leeway = leeway_s
        self._max_age = max_age_s
        self._clock = clock or utc_now
        self._replay = replay or InMemoryReplayGuard(self._clock)
        self._jwks = JwksCache(
            fetch_json or https_fetcher(),
            cache_s=jwks_cache_s,
            min_refetch_s=JWKS_MIN_REFETCH_S,
            clock=self._clock,
        )

    def verify(self, authorization: str | None, audience: str) -> VerifiedClient:
        """Authenticate one call to the URL ``audience``; raises JwtRejected."""
        token = _parse(_bearer(authorization))
        iss, jti = token.claims.get("iss"), token.claims.get("jti")
        try:
            return self._verify(token, audience)
        except JwtRejected as exc:
            raise JwtRejected(exc.reason, issuer=iss, jti=jti) from None

    def _verify(self, token: _Token, audience: str) -> VerifiedClient:
        alg = token.header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
            raise JwtRejected("alg not allowed")
        if "crit" in token.header:
            raise JwtRejected("crit header not supported")
        kid = token.header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise JwtRejected("kid missing")
        iss = token.claims.get("iss")
        if not isinstance(iss, str) or iss not in self._issuers:
            raise JwtRejected("issuer not trusted")
        issuer = self._issuers[iss]
        key = self._key(_key_url(token.header, issuer), kid, alg)
        _check_signature(token.text, key, alg)
        claims = token.claims
        _check_audience(claims.get("aud"), audience)
        expires_at = self._check_times(claims)
        jti = _check_jti(claims.get("jti"))
        subject = _check_subject(claims.get("sub"), issuer)
        if not self._replay(iss, jti, expires_at):
            raise JwtRejected("jti replayed")
        return VerifiedClient(issuer=iss, subject=subject, jti=jti, expires_at=expires_at)

    def _key(self, url: str, kid: str, alg: str) -> PublicKey:
        try:
            candidates = self._jwks.keys_for(url, kid)
        except JwksError as exc:
            raise JwtRejected(str(exc)) from None
        for key in candidates:
            if _fits(key, alg):
                return key
        raise JwtRejected("key does not fit alg")

    def _check_times(self, claims: Mapping[str, Any]) -> datetime:
        """``exp`` in the future, ``iat`` not in the future and not older than the max age,
        ``nbf`` reached, each within the leeway; returns the end of acceptance."""
        now = self._clock().timestamp()
        exp = _number(claims, "exp")
        iat = _number(claims, "iat")
        if exp is None:
            raise JwtRejected("exp missing or invalid")
        if iat is None:
            raise JwtRejected("iat missing or invalid")
        if now >= exp + self._leeway:
            raise JwtRejected("token expired")
        if iat > now + self._leeway:
            raise JwtRejected("iat in future")
        if now > iat + self._max_age + self._leeway:
            raise JwtRejected("token too old")
        nbf = _number(claims, "nbf")
        if "nbf" in claims and nbf is None:
            raise JwtRejected("nbf not a number")
        if nbf is not None and nbf > now + self._leeway:
            raise JwtRejected("token not yet valid")
        until = min(exp, iat + self._max_age) + self._leeway
        return datetime.fromtimestamp(until, UTC)


def _issuer_config(iss: str, cfg: Mapping[str, Any]) -> _Issuer:
    """Check one CDS_TRUSTED_ISSUERS entry at start-up, so a typo fails loudly, not per call."""
    if not isinstance(cfg, Mapping):
        raise ValueError(f"trusted issuer {iss}: expected an object with jwks_url / jku")
    jwks_url = cfg.get("jwks_url")
    jku = cfg.get("jku", [])
    subjects = cfg.get("sub")
    if jwks_url is not None and not isinstance(jwks_url, str):
        raise ValueError(f"trusted issuer {iss}: jwks_url must be a string")
    if not isinstance(jku, list | tuple) or not all(isinstance(u, str) for u in jku):
        raise ValueError(f"trusted issuer {iss}: jku must be a list of URLs")
    if subjects is not None and (
        not isinstance(subjects, list | tuple) or not all(isinstance(s, str) for s in subjects)
    ):
        raise ValueError(f"trusted issuer {iss}: sub must be a list of strings")
    if jwks_url is None and not jku:
        raise ValueError(f"trusted issuer {iss}: needs a jwks_url or a jku allow list")
    allowed = frozenset(jku) | ({jwks_url} if jwks_url else set())
    return _Issuer(jwks_url, allowed, frozenset(subjects) if subjects is not None else None)


def _bearer(authorization: str | None) -> str:
    if not isinstance(authorization, str):
        raise JwtRejected("no bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise JwtRejected("no bearer token")
    if len(token) > MAX_TOKEN_CHARS:
        raise JwtRejected("token too large")
    return token


def _parse(token: str) -> _Token:
    """Split and decode a compact JWS without trusting any of it yet."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise JwtRejected("malformed token")
    header = _json_segment(match.group(1))
    claims = _json_segment(match.group(2))
    return _Token(token, header, claims)


def _json_segment(segment: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise JwtRejected("malformed token") from None
    if not isinstance(value, dict):
        raise JwtRejected("malformed token")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Duplicate members are refused (RFC 7515 §5.2): parsers disagree on which one wins."""
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate member")
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _key_url(header: Mapping[str, Any], issuer: _Issuer) -> str:
    """Keys come only from URLs the configuration names: ``jku`` must be on the allow list."""
    jku = header.get("jku")
    if jku is None:
        if issuer.jwks_url is None:
            raise JwtRejected("jku missing and no jwks_url configured")
        return issuer.jwks_url
    if not isinstance(jku, str) or jku not in issuer.jku:
        raise JwtRejected("jku not allowed")
    return jku


def _fits(key: PublicKey, alg: str) -> bool:
    """The key's type matches ``alg`` (an RSA key never verifies ES384), its own ``alg``, if it
    declares one, is the same, and RSA keys are at least 2048 bits."""
    declared = key.get("alg")
    if declared is not None and declared != alg:
        return False
    if ALLOWED_ALGS[alg] == "RSA":
        return isinstance(key, RSAKey) and key.raw_value.key_size >= MIN_RSA_BITS
    return isinstance(key, ECKey) and key.curve_name == ES384_CURVE


def _check_signature(text: str, key: PublicKey, alg: str) -> None:
    try:
        jws.deserialize_compact(text, key, algorithms=[alg], registry=_registry(alg))
    except (JoseError, ValueError, TypeError):
        raise JwtRejected("bad signature") from None


def _registry(alg: str) -> jws.JWSRegistry:
    """Only ``alg`` is allowed; unknown header members are tolerated (EHRs add their own)."""
    registry = jws.JWSRegistry(algorithms=[alg], strict_check_header=False)
    registry.max_header_length = MAX_TOKEN_CHARS
    return registry


def _check_audience(aud: Any, audience: str) -> None:
    """``aud`` is the exact URL called (string, or list containing it); no normalisation."""
    if isinstance(aud, str):
        ok = aud == audience
    elif isinstance(aud, list):
        ok = audience in [a for a in aud if isinstance(a, str)]
    else:
        ok = False
    if not ok:
        raise JwtRejected("aud mismatch")


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or abs(value) > _MAX_EPOCH:
        return None
    return float(value)


def _check_jti(jti: Any) -> str:
    if not isinstance(jti, str) or not jti:
        raise JwtRejected("jti missing")
    if len(jti) > MAX_JTI_CHARS:
        raise JwtRejected("jti too long")
    return jti


def _check_subject(sub: Any, issuer: _Issuer) -> str | None:
    if sub is not None and not isinstance(sub, str):
        raise JwtRejected("sub not a string")
    if issuer.subjects is not None and sub not in issuer.subjects:
        raise JwtRejected("sub not allowed")
    return sub


def _loggable(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return "".join(c if c.isprintable() else "?" for c in value[:80])


__all__ = [
    "ALLOWED_ALGS",
    "CdsJwtVerifier",
    "InMemoryReplayGuard",
    "JwtRejected",
    "VerifiedClient",
]
