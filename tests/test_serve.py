from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from smartapp.serve import (
    GC_THRESHOLDS,
    ServeOptions,
    default_workers,
    gunicorn_options,
    tune_gc_after_load,
)


def test_worker_count_follows_cores() -> None:
    assert default_workers(2) == 5
    assert default_workers(1) == 3
    assert gunicorn_options(ServeOptions(workers=0))["workers"] == default_workers()
    assert gunicorn_options(ServeOptions(workers=3, port=9))["bind"] == "127.0.0.1:9"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_smartapp_serve_answers_healthz_over_http(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SMARTAPP_DATABASE_URL": f"sqlite:///{tmp_path}/serve.db"}
    server = subprocess.Popen(
        [sys.executable, "-m", "smartapp", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                assert server.poll() is None, "gunicorn exited early"
                assert time.monotonic() < deadline, "gunicorn did not start in 30 s"
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json()["database"] == "ok"
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode(errors="replace")
    assert "Booting worker" in output


def test_workers_freeze_the_loaded_app_and_collect_young_objects_less_often() -> None:
    import gc

    assert gunicorn_options(ServeOptions())["post_worker_init"] is tune_gc_after_load
    before = gc.get_threshold()
    try:
        tune_gc_after_load()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
