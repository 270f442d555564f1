"""``smartapp serve``: the app under gunicorn, the production WSGI server.

Worker count: gunicorn's rule of thumb, 2 x cores + 1 processes, each with a few threads
(``gthread``) because a hook call may wait on the EHR's FHIR server while fetching missing
prefetch. Evaluation itself is CPU-bound, so processes, not threads, carry the load.
Migrations run once in the master before workers start, so workers never race on the schema.

Garbage collection: a hook call on a long history allocates tens of thousands of short-lived
objects; with CPython's default thresholds about one such call in three paid for a full
collection of the long-lived app objects (~45 ms, the p95 tail). Each worker therefore freezes
what it has loaded (``gc.freeze``) and collects the young generation less often.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication

from smartapp.config import load_config


def default_workers(cores: int | None = None) -> int:
    return 2 * (cores or os.cpu_count() or 1) + 1


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 0  # 0: default_workers()
    threads: int = 4
    timeout_s: int = 30
    access_log: bool = False


class _Gunicorn(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    def __init__(self, factory: Callable[[], Any], options: dict[str, Any]) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._factory()


def migrate_once() -> None:
    """Bring the database schema up to date before any worker starts."""
    from smartapp.app import upgrade_database

    config = load_config()
    if config["AUTO_MIGRATE"]:
        upgrade_database(config)
    os.environ["SMARTAPP_AUTO_MIGRATE"] = "false"


#: Young-generation threshold: a request's temporaries die before a collection would look at them.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc_after_load(worker: Any = None) -> None:
    """gunicorn ``post_worker_init``: move the loaded app out of the collector's way."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def gunicorn_options(opts: ServeOptions) -> dict[str, Any]:
    return {
        "bind": f"{opts.host}:{opts.port}",
        "workers": opts.workers or default_workers(),
        "worker_class": "gthread",
        "threads": opts.threads,
        "timeout": opts.timeout_s,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": "-" if opts.access_log else None,
        "errorlog": "-",
        "loglevel": "info",
        "post_worker_init": tune_gc_after_load,
    }


def serve(opts: ServeOptions) -> None:
    from smartapp.app import create_app

    migrate_once()
    _Gunicorn(create_app, gunicorn_options(opts)).run()
