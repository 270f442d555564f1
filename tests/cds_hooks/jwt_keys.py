"""Test helpers: key pairs, JWK Sets and CDS client JWTs signed the way real clients sign them.

- The CDS Hooks sandbox: ES384, header ``typ: JWT``, ``kid`` and a ``jku`` on its own host;
  claims ``iss``, ``aud``, ``iat``, ``exp = iat + 300``, ``jti`` (a UUID).
- Epic: RS384, adds ``sub`` (the client id) and ``nbf`` to the claims (standards-checklist.md).

Reused by the endpoint tests: ``trusted_issuers()`` and ``verifier()`` give a ready verifier whose
JWKS comes from memory (no HTTP), and ``sandbox_token(...)`` a token for a URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from smartapp.cds_hooks.jwt_auth import CdsJwtVerifier, InMemoryReplayGuard

SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
EPIC_ISS = "https://fhir.epic.example.org/interconnect-fhir-oauth"
EPIC_JWKS = "https://fhir.epic.example.org/interconnect-fhir-oauth/api/epic/2019/jwks"
EPIC_CLIENT_ID = "d45049c3-3441-40ef-ab4d-b9cd86a17225"
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
SERVICE_URL = "https://cds.example.org/cds-services/clozapine-order-sign"


class Clock:
    """A clock for the verifier and the replay guard: fixed at ``now`` until advanced."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass(frozen=True)
class SigningKey:
    """A private key with its ``kid`` and the algorithm it signs with."""

    kid: str
    alg: str
    private: RSAKey | ECKey

    def public_jwk(self, **extra: Any) -> dict[str, Any]:
        jwk: dict[str, Any] = dict(self.private.as_dict(private=False))
        jwk.update({"kid": self.kid, "use": "sig", "alg": self.alg}, **extra)
        return jwk

    def public_pem(self) -> bytes:
        return self.private.as_pem(private=False)


@cache
def rsa_key(kid: str = "epic-rsa-1", bits: int = 2048) -> SigningKey:
    """An RS384 key pair (cached per kid: RSA generation is slow)."""
    return SigningKey(kid, "RS384", RSAKey.generate_key(bits, private=True))


@cache
def ec_key(kid: str = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f", curve: str = "P-384") -> SigningKey:
    """An ES384 key pair on P-384 (the sandbox's key id by default)."""
    return SigningKey(kid, "ES384", ECKey.generate_key(curve, private=True))


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for key in keys]}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def sign(key: SigningKey, claims: Mapping[str, Any], **header: Any) -> str:
    """A compact JWS over ``claims``; ``header`` adds or replaces header members (a value of
    None removes the member)."""
    protected: dict[str, Any] = {"alg": key.alg, "typ": "JWT", "kid": key.kid}
    protected.update(header)
    protected = {k: v for k, v in protected.items() if v is not None}
    payload = json.dumps(dict(claims), separators=(",", ":")).encode("utf-8")
    registry = jws.JWSRegistry(algorithms=[protected["alg"]], strict_check_header=False)
    return jws.serialize_compact(protected, payload, key.private, registry=registry)


def unsigned(header: Mapping[str, Any], claims: Mapping[str, Any], signature: bytes = b"") -> str:
    """A token with any header and signature bytes, for attacks no library will produce."""
    return f"{b64json(dict(header))}.{b64json(dict(claims))}.{b64(signature)}"


def hmac_token(secret: bytes, claims: Mapping[str, Any], kid: str, alg: str = "HS256") -> str:
    """The algorithm-confusion attack: HMAC keyed with the public key's PEM."""
    signing_input = f"{b64json({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{b64json(dict(claims))}"
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}[alg]
    mac = hmac.new(secret, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{b64(mac)}"


def claims(
    aud: Any = SERVICE_URL,
    *,
    iss: str = SANDBOX_ISS,
    now: datetime = NOW,
    lifetime_s: int = 300,
    jti: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Sandbox-style claims; ``extra`` adds claims, a value of None removes one."""
    iat = int(now.timestamp())
    out: dict[str, Any] = {
        "iss": iss,
        "aud": aud,
        "exp": iat + lifetime_s,
        "iat": iat,
        "jti": jti or str(uuid.uuid4()),
    }
    out.update(extra)
    return {k: v for k, v in out.items() if v is not None}


def sandbox_token(aud: Any = SERVICE_URL, *, now: datetime = NOW, **extra: Any) -> str:
    """A token as the CDS Hooks sandbox signs it: ES384 with its ``jku``."""
    return sign(ec_key(), claims(aud, now=now, **extra), jku=SANDBOX_JKU)


def epic_token(aud: Any = SERVICE_URL, *, now: datetime = NOW, **extra: Any) -> str:
    """A token shaped like Epic's: RS384, ``sub`` = client id, ``nbf`` = ``iat``, no ``jku``."""
    iat = int(now.timestamp())
    body = claims(aud, iss=EPIC_ISS, now=now, sub=EPIC_CLIENT_ID, nbf=iat, **extra)
    return sign(rsa_key(), body)


def trusted_issuers() -> dict[str, dict[str, Any]]:
    """CDS_TRUSTED_ISSUERS for the sandbox and the Epic-like issuer."""
    return {
        SANDBOX_ISS: {"jwks_url": SANDBOX_JKU, "jku": [SANDBOX_JKU]},
        EPIC_ISS: {"jwks_url": EPIC_JWKS},
    }


def static_jwks(
    documents: Mapping[str, Any] | None = None, calls: list[str] | None = None
) -> Callable[[str], Any]:
    """A ``fetch_json`` serving JWK Sets from memory (default: both issuers' keys), recording
    each URL fetched in ``calls``."""
    served = (
        dict(documents)
        if documents is not None
        else {
            SANDBOX_JKU: jwks(ec_key()),
            EPIC_JWKS: jwks(rsa_key()),
        }
    )

    def fetch(url: str) -> Any:
        if calls is not None:
            calls.append(url)
        if url not in served:
            raise LookupError(f"no JWKS at {url}")
        return served[url]

    return fetch


def verifier(
    *, now: datetime = NOW, fetch_json: Callable[[str], Any] | None = None, **options: Any
) -> CdsJwtVerifier:
    """A verifier trusting the sandbox and Epic-like issuers, keys from memory, clock fixed."""
    clock = options.pop("clock", lambda: now)
    return CdsJwtVerifier(
        options.pop("trusted_issuers", trusted_issuers()),
        fetch_json=fetch_json or static_jwks(),
        replay=options.pop("replay", InMemoryReplayGuard(clock)),
        clock=clock,
        **options,
    )
