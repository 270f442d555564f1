"""The demo app with its sandbox served for real on 127.0.0.1 (werkzeug, threaded) in a
background thread: the Prescribe page's hook calls, the service's JWKS fetch and the fetch
path's FHIR searches all go over HTTP to this one server, as in ``smartapp demo``.

``LiveSandbox.browser()`` is a ``requests.Session`` that keeps the session cookie, and
``form_token`` reads a page's CSRF token, so tests can drive the pages as a browser does."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from smartapp.app import create_app
from smartapp.persistence import Database
from smartapp.sandbox import Sandbox, SandboxUrls, sandbox_urls
from tests.sandbox.sandbox_app import sandbox_config

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
WSGI = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Holder:
    """The WSGI app, set after the socket is bound (the port is the system's choice)."""

    def __init__(self) -> None:
        self.app: WSGI | None = None

    def __call__(self, environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        assert self.app is not None
        return self.app(environ, start)


@dataclass
class LiveSandbox:
    app: Flask
    urls: SandboxUrls
    server: BaseWSGIServer = field(repr=False)
    thread: threading.Thread = field(repr=False)

    @property
    def origin(self) -> str:
        return self.urls.origin

    @property
    def state(self) -> Sandbox:
        found: Sandbox = self.app.extensions["smartapp.sandbox"]
        return found

    @property
    def database(self) -> Database:
        db: Database = self.app.extensions["smartapp.db"]
        return db

    def browser(self) -> requests.Session:
        return requests.Session()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        self.database.dispose()


def form_token(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def start_live_sandbox(tmp_path: Path, **overrides: Any) -> LiveSandbox:
    holder = _Holder()
    server = make_server("127.0.0.1", 0, holder, threaded=True)
    urls = sandbox_urls(f"http://127.0.0.1:{server.server_port}")
    config = sandbox_config(tmp_path, urls, **overrides)
    app = create_app(config)
    holder.app = app
    thread = threading.Thread(target=server.serve_forever, name="live-sandbox", daemon=True)
    thread.start()
    return LiveSandbox(app, urls, server, thread)
