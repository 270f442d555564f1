"""``id_token`` validation (SMART App Launch 2.2, app-launch "openid fhirUser"; OpenID Connect
Core §3.1.3.7): signature with the server's JWKS (``jwks_uri`` of its smart-configuration),
``iss`` = the advertised ``issuer``, ``aud`` containing our client id, ``exp`` in the future.

Claims of an id_token we could not validate are never used (standards-checklist.md "Callback
and token": validate when used).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

ALGORITHMS = ("RS256", "RS384", "ES256", "ES384")
LEEWAY_S = 60
MAX_JWKS_BYTES = 256 * 1024


class IdTokenError(Exception):
    """The id_token is not valid; the reason is for the server log."""


def _fetch_jwks(http: requests.Session, url: str, timeout: float) -> KeySet:
    try:
        response = http.get(url, headers={"Accept": "application/json"}, timeout=timeout)
        if response.status_code != 200 or len(response.content) > MAX_JWKS_BYTES:
            raise IdTokenError(f"jwks answered HTTP {response.status_code}")
        return KeySet.import_key_set(json.loads(response.content))
    except (requests.RequestException, ValueError, JoseError, TypeError) as exc:
        raise IdTokenError(f"jwks unusable ({type(exc).__name__})") from None


def _check_claims(claims: Mapping[str, Any], issuer: str, client_id: str, now: datetime) -> None:
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if claims.get("iss") != issuer:
        raise IdTokenError("iss is not the server's issuer")
    if client_id not in audiences:
        raise IdTokenError("aud does not name this client")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp + LEEWAY_S < now.timestamp():
        raise IdTokenError("expired or without exp")


def validated_claims(
    id_token: str,
    *,
    issuer: str | None,
    jwks_uri: str | None,
    client_id: str,
    http: requests.Session,
    timeout: float,
    now: datetime,
) -> dict[str, Any]:
    """The id_token's claims when it validates; :class:`IdTokenError` otherwise."""
    if not issuer or not jwks_uri:
        raise IdTokenError("the server advertises no issuer/jwks_uri to validate with")
    keys = _fetch_jwks(http, jwks_uri, timeout)
    try:
        token = jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
    except (JoseError, ValueError) as exc:
        raise IdTokenError(f"signature not verified ({type(exc).__name__})") from None
    claims = dict(token.claims)
    _check_claims(claims, issuer, client_id, now)
    return claims
