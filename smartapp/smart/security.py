"""Headers, cookies and CSRF protection for the whole app (issue 4 item 5; standards-checklist.md
"Embedding in the EHR" ★).

- The session cookie holds only an opaque launch id and the CSRF token, signed with SECRET_KEY:
  ``Secure; HttpOnly; SameSite=None; Partitioned`` so it survives the launch round trip inside
  an EHR iframe (CHIPS keeps it working where third-party cookies are blocked). The development
  switch INSECURE_DEV_COOKIES (plain-http localhost) drops ``Secure`` and uses ``Lax``, and says
  so loudly at start.
- Content-Security-Policy: ``default-src 'self'``, no inline script or style, and
  ``frame-ancestors 'self'`` plus launch.json ``allowed_ehr_origins`` instead of
  X-Frame-Options (which is removed if anything sets it).
- CSRF: every state-changing request to a cookie-authenticated page needs the session's token
  (form field ``csrf_token`` or header ``X-CSRF-Token``; templates call ``csrf_token()``).
  Written here in a few lines rather than adding flask-wtf: one synchronizer token per launch
  is all the app needs, and the token is renewed at every launch so a form left open from an
  earlier launch (perhaps another patient) is refused. Blueprints authenticated otherwise (the
  CDS Hooks JSON API, bearer JWTs, no cookies) are exempt by name: CSRF_EXEMPT_BLUEPRINTS.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from flask import Flask, Response, request, session

from smartapp.config import ConfigError
from smartapp.smart.context import error_page
from smartapp.smart.keyfiles import read_or_create

log = logging.getLogger(__name__)

CSRF_SESSION_KEY = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name)
SECURE_COOKIE_NAME = "__Host-smartapp"  # __Host-: Secure, Path=/, no Domain (RFC 6265bis)
DEV_COOKIE_NAME = "smartapp_session"
# A CSP host-source: scheme://host[:port], host possibly starting with "*.".
_ORIGIN = re.compile(
    r"https?://(\*\.)?[A-Za-z0-9\-.]+(:\d{1,5})?|https?://\[[0-9A-Fa-f:]+\](:\d{1,5})?"
)


def frame_ancestors(origins: Iterable[str]) -> str:
    checked = []
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ConfigError(f"launch.json allowed_ehr_origins: {origin!r} is not an origin")
        checked.append(origin)
    return " ".join(["frame-ancestors", "'self'", *checked])


def content_security_policy(origins: Iterable[str]) -> str:
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        frame_ancestors(origins),
    ])  # fmt: skip


def csrf_token() -> str:
    """The session's CSRF token, created on first use (Jinja global ``csrf_token()``)."""
    token = session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = renew_csrf_token()
    return token


def renew_csrf_token() -> str:
    token = secrets.token_urlsafe(32)
    session[CSRF_SESSION_KEY] = token
    return token


def _csrf_refusal(exempt: frozenset[str]) -> Response | None:
    if request.method in SAFE_METHODS or request.url_rule is None:
        return None  # nothing changes, or no route (the 404/405 handlers answer)
    if request.blueprint in exempt:
        return None
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    expected = session.get(CSRF_SESSION_KEY)
    if isinstance(expected, str) and expected and hmac.compare_digest(sent, expected):
        return None
    log.warning("CSRF token missing or wrong on %s %s", request.method, request.path)
    return error_page(
        "This form has expired",
        "The form was sent without a valid security token: it may be from an earlier launch of "
        "the app (perhaps for another patient). Reload the page and try again.",
        400,
    )


def _secret_key(app: Flask) -> str | bytes:
    configured = app.config.get("SECRET_KEY")
    if configured:
        return str(configured)
    return read_or_create(
        Path(app.instance_path) / SECRET_KEY_FILE, lambda: secrets.token_bytes(32)
    )


def _cookie_settings(app: Flask) -> None:
    insecure = bool(app.config["INSECURE_DEV_COOKIES"])
    app.config.update(
        SESSION_COOKIE_NAME=DEV_COOKIE_NAME if insecure else SECURE_COOKIE_NAME,
        SESSION_COOKIE_SECURE=not insecure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax" if insecure else "None",
        SESSION_COOKIE_PARTITIONED=not insecure,
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_DOMAIN=None,
    )
    if insecure:
        log.warning(
            "!!! INSECURE_DEV_COOKIES is on: the session cookie is sent over plain http and "
            "with SameSite=Lax, so launches inside an EHR iframe will not work. Local "
            "development only. !!!"
        )


def init_security(app: Flask) -> None:
    """Secret key, cookie attributes, security headers and CSRF checks for every request."""
    app.secret_key = _secret_key(app)
    _cookie_settings(app)
    launch = app.config.get("LAUNCH") or {}
    policy = content_security_policy(launch.get("allowed_ehr_origins") or [])
    exempt = frozenset(app.config["CSRF_EXEMPT_BLUEPRINTS"])
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.before_request
    def _csrf() -> Response | None:
        return _csrf_refusal(exempt)

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", policy)
        headers.pop("X-Frame-Options", None)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        if request.endpoint != "static":
            headers.setdefault("Cache-Control", "no-store")
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response
