"""Client authentication at the token endpoint (SMART App Launch 2.2, client-confidential-
symmetric and client-confidential-asymmetric; standards-checklist.md "Callback and token" ★).

- public: ``client_id`` in the form body, no secret;
- confidential symmetric: HTTP Basic with the secret from SMARTAPP_CLIENT_SECRET and no
  ``client_id`` in the body;
- confidential asymmetric (``private_key_jwt``): ``client_assertion_type`` =
  ``urn:ietf:params:oauth:client-assertion-type:jwt-bearer`` and a ``client_assertion`` JWT with
  ``iss`` = ``sub`` = client id, ``aud`` = the token URL, ``exp`` at most 5 minutes ahead, a
  unique ``jti`` and the ``kid`` header, signed ES384 or RS384.

The private keys come from SMART_PRIVATE_JWKS_PATH, or from an ES384 key generated into the
instance folder on first start, so ``/.well-known/jwks.json`` always has public keys to publish.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from authlib.integrations.requests_client import OAuth2Session  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from smartapp.config import ConfigError
from smartapp.smart.keyfiles import read_or_create
from smartapp.smart.pkce import METHOD as PKCE_METHOD
from smartapp.smart.registration import Registration

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = timedelta(minutes=5)
GENERATED_JWKS = "smart_private_jwks.json"
# Algorithm by key: the two SMART asymmetric algorithms, nothing else.
ALGORITHMS: Mapping[tuple[str, str | None], str] = {
    ("EC", "P-384"): "ES384",
    ("RSA", None): "RS384",
}
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MIN_RSA_BITS = 2048

SigningKey = ECKey | RSAKey


@dataclass(frozen=True)
class AppKeys:
    """The app's signing key (the first private key) and the public JWKS it publishes."""

    signing_key: SigningKey
    algorithm: str
    public_jwks: dict[str, Any]


def _algorithm(key: SigningKey, declared: Any) -> str:
    crv = str(key.as_dict(private=False).get("crv")) if isinstance(key, ECKey) else None
    alg = ALGORITHMS.get((key.key_type, crv))
    if alg is None or declared not in (None, alg):
        raise ConfigError(f"private JWKS: key {key.kid!r} must be EC P-384/ES384 or RSA/RS384")
    if isinstance(key, RSAKey) and _rsa_bits(key) < MIN_RSA_BITS:
        raise ConfigError(f"private JWKS: RSA key {key.kid!r} is shorter than {MIN_RSA_BITS} bits")
    return alg


def _rsa_bits(key: RSAKey) -> int:
    modulus = str(key.as_dict(private=False)["n"])
    return len(base64.urlsafe_b64decode(modulus + "=" * (-len(modulus) % 4))) * 8


def _generated_jwks() -> bytes:
    key = ECKey.generate_key("P-384", private=True)
    data = key.as_dict(private=True)
    data.update({"kid": key.thumbprint(), "alg": "ES384", "use": "sig"})
    return json.dumps({"keys": [data]}, indent=2).encode()


def load_app_keys(path: str | None, instance_path: str) -> AppKeys:
    """Keys from the configured private JWKS file, or one generated into the instance folder."""
    target = Path(path) if path else Path(instance_path) / GENERATED_JWKS
    try:
        raw = target.read_bytes() if path else read_or_create(target, _generated_jwks)
        document = json.loads(raw)
        entries = [e for e in document["keys"] if isinstance(e, dict)]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"private JWKS {target}: {exc}") from None
    public: list[dict[str, Any]] = []
    signing: tuple[SigningKey, str] | None = None
    for entry in entries:
        key = _import(entry, target)
        alg = _algorithm(key, entry.get("alg"))
        public.append(public_jwk(key, alg))
        if signing is None and key.is_private:
            signing = (key, alg)
    if signing is None:
        raise ConfigError(f"private JWKS {target}: no private EC P-384 or RSA key")
    return AppKeys(signing[0], signing[1], {"keys": public})


def _import(entry: dict[str, Any], target: Path) -> SigningKey:
    if not isinstance(entry.get("kid"), str) or not entry["kid"]:
        raise ConfigError(f"private JWKS {target}: every key needs a kid")
    try:
        if entry.get("kty") == "EC":
            return ECKey.import_key(entry)
        if entry.get("kty") == "RSA":
            return RSAKey.import_key(entry)
    except (JoseError, ValueError) as exc:
        raise ConfigError(f"private JWKS {target}: key {entry['kid']!r}: {exc}") from None
    raise ConfigError(f"private JWKS {target}: key {entry['kid']!r} is neither EC nor RSA")


def public_jwk(key: SigningKey, alg: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        k: v for k, v in key.as_dict(private=False).items() if k not in PRIVATE_MEMBERS
    }
    data.update({"kid": key.kid, "alg": alg, "use": "sig"})
    return data


def client_assertion(
    keys: AppKeys, client_id: str, token_url: str, now: datetime | None = None
) -> str:
    """A ``private_key_jwt`` client assertion for one token request."""
    issued = now or datetime.now(UTC)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ASSERTION_LIFETIME).timestamp()),
        "jti": secrets.token_urlsafe(32),
    }
    header = {"alg": keys.algorithm, "kid": keys.signing_key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, keys.signing_key, algorithms=[keys.algorithm])


class PrivateKeyJwt:
    """authlib client-auth method ``private_key_jwt`` (signed with joserfc, as the rest of
    the app; authlib's own JWT code is deprecated in joserfc's favour)."""

    name = "private_key_jwt"

    def __init__(self, keys: AppKeys, token_url: str, clock: Callable[[], datetime]) -> None:
        self.keys = keys
        self.token_url = token_url
        self.clock = clock

    def __call__(
        self, auth: Any, method: str, uri: str, headers: dict[str, str], body: str
    ) -> tuple[str, dict[str, str], str]:
        params = [(k, v) for k, v in parse_qsl(body or "") if k != "client_id"]
        params += [
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", client_assertion(self.keys, auth.client_id, self.token_url,
                                                  self.clock())),
        ]  # fmt: skip
        return uri, headers, urlencode(params)


def oauth_session(
    registration: Registration,
    keys: AppKeys,
    token_url: str,
    *,
    scope: str | None = None,
    timeout: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Any:
    """An authlib ``OAuth2Session`` set up for this client's type, PKCE S256 always."""
    session = OAuth2Session(
        client_id=registration.client_id,
        client_secret=registration.client_secret,
        token_endpoint_auth_method=registration.token_endpoint_auth_method,
        scope=scope,
        redirect_uri=registration.redirect_uri,
        code_challenge_method=PKCE_METHOD,
        default_timeout=timeout,
    )
    if registration.token_endpoint_auth_method == PrivateKeyJwt.name:
        session.register_client_auth_method(PrivateKeyJwt(keys, token_url, clock))
    return session
