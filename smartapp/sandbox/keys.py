"""The sandbox EHR's CDS client identity (CDS Hooks 2.0, Trusting CDS Clients): an ES384 key
generated into the instance folder on first use (mode 0600), its public half published at
``/sandbox/jwks.json``, and the JWTs the sandbox signs with it for each call to a CDS service.

Each JWT is signed the way the public CDS Hooks sandbox signs: header ``alg`` ES384, ``typ``
JWT, ``kid`` and a ``jku`` naming our JWKS; claims ``iss`` (the sandbox issuer URL), ``aud``
(the exact service URL called), ``iat``, ``exp`` = ``iat`` + 300 s and a fresh ``jti``.

The issuer and JWKS URLs are the sandbox's (``SandboxUrls``: ``<origin>/sandbox`` and
``<origin>/sandbox/jwks.json``); ``trusted_issuer(origin)`` is the ``CDS_TRUSTED_ISSUERS``
entry the demo configures so that our own CDS service trusts its own sandbox.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from smartapp.sandbox import sandbox_urls
from smartapp.smart.keyfiles import read_or_create

ALG = "ES384"
CURVE = "P-384"
KEY_FILE = "sandbox_cds_client_jwk.json"
# CDS Hooks 2.0: "exp ... no more than 5 minutes after iat" (the public sandbox uses exactly 5).
LIFETIME_S = 300


def trusted_issuer(origin: str) -> dict[str, dict[str, Any]]:
    """The ``CDS_TRUSTED_ISSUERS`` entry for the sandbox of an app at ``origin``
    (``http://127.0.0.1:8080``). Its JWKS is served over plain http on loopback: the demo also
    sets ``CDS_JWKS_ALLOW_LOOPBACK_HTTP``."""
    urls = sandbox_urls(origin)
    return {urls.issuer: {"jwks_url": urls.jwks_url, "jku": [urls.jwks_url]}}


@dataclass(frozen=True)
class SandboxKey:
    """The private key and its ``kid`` (the RFC 7638 thumbprint)."""

    kid: str
    private: ECKey

    def public_jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = dict(self.private.as_dict(private=False))
        jwk.update({"kid": self.kid, "use": "sig", "alg": ALG})
        return {"keys": [jwk]}

    def sign(self, claims: Mapping[str, Any], jku: str) -> str:
        header = {"alg": ALG, "typ": "JWT", "kid": self.kid, "jku": jku}
        payload = json.dumps(dict(claims), separators=(",", ":")).encode()
        registry = jws.JWSRegistry(algorithms=[ALG])
        return jws.serialize_compact(header, payload, self.private, registry=registry)


def _generated() -> bytes:
    key = ECKey.generate_key(CURVE, private=True)
    data = dict(key.as_dict(private=True))
    data.update({"kid": key.thumbprint(), "alg": ALG, "use": "sig"})
    return json.dumps(data, indent=2).encode()


def load_key(instance_path: str | Path) -> SandboxKey:
    """The instance's sandbox key, generated on first use. A file that is not a P-384 private
    key raises ValueError (delete it to have a new one generated)."""
    path = Path(instance_path) / KEY_FILE
    try:
        data = json.loads(read_or_create(path, _generated))
        key = ECKey.import_key(data)
    except (ValueError, TypeError, JoseError) as exc:
        raise ValueError(f"{path}: not a sandbox signing key ({exc})") from None
    if data.get("crv") != CURVE or not key.is_private:
        raise ValueError(f"{path}: the sandbox key must be a private EC P-384 key")
    return SandboxKey(kid=str(data.get("kid") or key.thumbprint()), private=key)


def client_claims(origin: str, audience: str, now: datetime) -> dict[str, Any]:
    """The claims of one call: ``aud`` is the exact URL the request goes to."""
    iat = int(now.timestamp())
    return {
        "iss": sandbox_urls(origin).issuer,
        "aud": audience,
        "iat": iat,
        "exp": iat + LIFETIME_S,
        "jti": str(uuid.uuid4()),
    }


def client_jwt(key: SandboxKey, origin: str, audience: str, now: datetime) -> str:
    """A signed CDS client JWT for one request to ``audience``."""
    return key.sign(client_claims(origin, audience, now), sandbox_urls(origin).jwks_url)
