"""JWK Set retrieval and caching for CDS client JWT verification (CDS Hooks 2.0, Trusting CDS
Clients; standards-checklist.md "Security": key chosen by ``kid``, JWKS cached and refetched on
an unknown ``kid``).

Keys are cached per JWKS URL for ``cache_s``. An unknown ``kid`` triggers one refetch, but never
more than once per ``min_refetch_s`` per URL, so tokens with invented ``kid`` values cannot make
us hammer the key host. A failed fetch is remembered for ``failure_backoff_s`` and answered from
memory meanwhile. Every failure is a :class:`JwksError`: the caller rejects the token (401), it
never becomes a server error. Thread-safe: one lock per URL makes concurrent misses share a fetch.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from joserfc.jwk import ECKey, RSAKey

FetchJson = Callable[[str], Any]
Clock = Callable[[], datetime]
PublicKey = RSAKey | ECKey

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_JWKS_BYTES = 256 * 1024


class JwksError(Exception):
    """Keys could not be obtained; the message is a short reason for the server log."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_key_url(url: str, *, allow_loopback_http: bool = False) -> None:
    """HTTPS only (CDS Hooks requires TLS); plain HTTP to this machine only when allowed."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if allow_loopback_http and parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return
    raise JwksError("jwks url must be https")


def https_fetcher(
    *,
    timeout_s: float = 5.0,
    allow_loopback_http: bool = False,
    max_bytes: int = MAX_JWKS_BYTES,
    session: requests.Session | None = None,
) -> FetchJson:
    """The default ``fetch_json``: GET over HTTPS, no redirects (a redirect could lead off the
    allow list), a size cap, JSON body. Raises :class:`JwksError` on any failure."""
    http = session or requests.Session()

    def fetch(url: str) -> Any:
        check_key_url(url, allow_loopback_http=allow_loopback_http)
        try:
            response = http.get(
                url,
                timeout=timeout_s,
                allow_redirects=False,
                stream=True,
                headers={"Accept": "application/json"},
            )
            with response:
                if response.status_code != 200:
                    raise JwksError(f"jwks http {response.status_code}")
                body = _read_capped(response.iter_content(chunk_size=16384), max_bytes)
            return json.loads(body)
        except requests.RequestException as exc:
            raise JwksError(f"jwks fetch failed ({type(exc).__name__})") from None
        except ValueError:
            raise JwksError("jwks is not JSON") from None

    return fetch


def _read_capped(chunks: Iterator[bytes], max_bytes: int) -> bytes:
    body = bytearray()
    for chunk in chunks:
        body.extend(chunk)
        if len(body) > max_bytes:
            raise JwksError("jwks too large")
    return bytes(body)


def parse_jwks(document: Any) -> dict[str, tuple[PublicKey, ...]]:
    """Signing keys of a JWK Set by ``kid``. Keys without a ``kid``, for encryption, of another
    type or that do not import are skipped, so one bad entry cannot disable the others."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("jwks has no keys list")
    keys: dict[str, list[PublicKey]] = {}
    for jwk in document["keys"]:
        key = _import_signing_key(jwk)
        if key is not None:
            keys.setdefault(jwk["kid"], []).append(key)
    return {kid: tuple(found) for kid, found in keys.items()}


def _import_signing_key(jwk: Any) -> PublicKey | None:
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
        return None
    if jwk.get("use", "sig") != "sig":
        return None
    public = {name: value for name, value in jwk.items() if name not in _PRIVATE_MEMBERS}
    try:
        if jwk.get("kty") == "RSA":
            return RSAKey.import_key(public)
        if jwk.get("kty") == "EC":
            return ECKey.import_key(public)
    # JWK content is untrusted input: whatever a malformed key raises, the key is skipped.
    except Exception:
        return None
    return None


_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: dict[str, tuple[PublicKey, ...]] | None = None
    fetched_at: datetime | None = None
    attempted_at: datetime | None = None
    failed: bool = False


class JwksCache:
    """Public keys per JWKS URL, fetched with ``fetch_json`` (any exception it raises counts as
    the key host being unavailable)."""

    def __init__(
        self,
        fetch_json: FetchJson,
        *,
        cache_s: int = 3600,
        min_refetch_s: int = 60,
        failure_backoff_s: int = 5,
        clock: Clock = utc_now,
    ) -> None:
        self._fetch_json = fetch_json
        self._cache = timedelta(seconds=cache_s)
        self._min_refetch = timedelta(seconds=min_refetch_s)
        self._failure_backoff = timedelta(seconds=failure_backoff_s)
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def keys_for(self, url: str, kid: str) -> tuple[PublicKey, ...]:
        """The keys published at ``url`` under ``kid``; raises JwksError when the JWKS cannot be
        obtained or does not hold the ``kid`` (after at most one rate-limited refetch)."""
        entry = self._entry(url)
        with entry.lock:
            now = self._clock()
            keys = entry.keys
            if keys is None or self._stale(entry, now):
                keys = self._refresh(url, entry, now)
            if kid not in keys and self._may_refetch(entry, now):
                keys = self._refresh(url, entry, now)
        found = keys.get(kid)
        if not found:
            raise JwksError("unknown kid")
        return found

    def _entry(self, url: str) -> _Entry:
        with self._lock:
            return self._entries.setdefault(url, _Entry())

    def _stale(self, entry: _Entry, now: datetime) -> bool:
        return entry.fetched_at is None or not _within(now, entry.fetched_at, self._cache)

    def _may_refetch(self, entry: _Entry, now: datetime) -> bool:
        return entry.attempted_at is None or not _within(now, entry.attempted_at, self._min_refetch)

    def _refresh(self, url: str, entry: _Entry, now: datetime) -> dict[str, tuple[PublicKey, ...]]:
        """Fetch into ``entry``. A failure keeps keys that are still fresh (an unknown-kid
        refetch that fails changes nothing) and drops stale ones: a revoked key must not live on
        because its host is down."""
        last = entry.attempted_at
        if entry.failed and last is not None and _within(now, last, self._failure_backoff):
            self._drop_if_stale(entry, now)
            raise JwksError("jwks unavailable (recent failure)")
        entry.attempted_at = now
        try:
            keys = parse_jwks(self._fetch_json(url))
        except JwksError as exc:
            self._fail(entry, now)
            raise JwksError(f"jwks unavailable: {exc}") from None
        # fetch_json is pluggable; whatever it raises means the keys are unavailable.
        except Exception as exc:
            self._fail(entry, now)
            raise JwksError(f"jwks unavailable ({type(exc).__name__})") from None
        entry.keys, entry.fetched_at, entry.failed = keys, now, False
        return keys

    def _fail(self, entry: _Entry, now: datetime) -> None:
        entry.failed = True
        self._drop_if_stale(entry, now)

    def _drop_if_stale(self, entry: _Entry, now: datetime) -> None:
        if self._stale(entry, now):
            entry.keys, entry.fetched_at = None, None


def _within(now: datetime, then: datetime, span: timedelta) -> bool:
    """``now`` is less than ``span`` after ``then``; a clock that went backwards counts as
    outside, so a wall-clock step cannot freeze the cache."""
    return then <= now < then + span
