"""PKCE (RFC 7636) as SMART App Launch 2.2 requires it: S256 on every authorization, never
``plain``, even when the server does not list ``code_challenge_methods_supported``
(standards-checklist.md "Authorize" ★)."""

from __future__ import annotations

import re
import secrets

from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]

METHOD = "S256"
# RFC 7636 §4.1: 43-128 characters from the unreserved set.
VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
VERIFIER_BYTES = 64  # 86 characters of base64url, 512 bits


def new_verifier() -> str:
    verifier = secrets.token_urlsafe(VERIFIER_BYTES)
    if not VERIFIER.fullmatch(verifier):
        raise ValueError("generated code_verifier outside RFC 7636 limits")
    return verifier


def challenge(verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(verifier))) without padding."""
    if not VERIFIER.fullmatch(verifier):
        raise ValueError("code_verifier must be 43-128 unreserved characters")
    return str(create_s256_code_challenge(verifier))
