"""The running stack of the end-to-end tests: synthetic patients in the real FHIR server, the
SMART authorization server in front of it (the "EHR"), and our app started for real as
``python -m smartapp serve`` (gunicorn, two workers, so the launch state must live in the
database and not in one process's memory)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import requests
from cryptography.fernet import Fernet

from smartapp.fhir_client import FhirClient
from smartapp.fhir_load import load_bundle
from tests.node_service import ServerProcess
from tests.oauth_server_fixture import OAuthServer

CLIENT_ID = "smartapp-e2e"
START_TIMEOUT_S = 60.0
# The app's own scopes: launch.json's, so the test launches the app as registered.
LAUNCH_JSON = Path(__file__).resolve().parents[2] / "launch.json"


def free_port() -> int:
    """A port the OS reports free now (the app binds it right after; loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def load_patient(fhir_base: str, bundle: dict[str, Any]) -> str:
    """PUT the bundle's resources into the FHIR server; returns the Patient id."""
    with FhirClient(fhir_base, timeout=30) as client:
        load_bundle(client, bundle)
    ids = [
        e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert len(ids) == 1, ids
    return str(ids[0])


def registration(app_origin: str, fhir_iss: str) -> dict[str, Any]:
    """launch.json for the test: the repository's scopes and client type, our port."""
    launch = json.loads(LAUNCH_JSON.read_text())
    launch.update(
        client_id=CLIENT_ID,
        launch_url=f"{app_origin}/launch",
        redirect_uris=[f"{app_origin}/callback"],
        allowed_fhir_servers=[fhir_iss],
        cds_hooks_discovery_url=f"{app_origin}/cds-services",
    )
    return dict(launch)


@dataclass
class SmartApp(ServerProcess):
    origin: str

    stop_grace_s = 15.0


def app_environment(workdir: Path, app_origin: str, ehr: OAuthServer) -> dict[str, str]:
    """SMARTAPP_* settings of the app under test: its own launch.json, database and keys."""
    launch_path = workdir / "launch.json"
    launch_path.write_text(json.dumps(registration(app_origin, ehr.iss)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTAPP_")}
    env.update(
        SMARTAPP_LAUNCH_JSON=str(launch_path),
        SMARTAPP_DATABASE_URL=f"sqlite:///{workdir / 'app.db'}",
        SMARTAPP_SECRET_KEY=Fernet.generate_key().decode(),
        SMARTAPP_TOKEN_KEY=Fernet.generate_key().decode(),
        SMARTAPP_PUBLIC_BASE_URL=app_origin,
        SMARTAPP_APP_LAUNCH_URL=f"{app_origin}/launch",
        # Plain http on 127.0.0.1: the test has no TLS, so the session cookie may not be Secure.
        SMARTAPP_INSECURE_DEV_COOKIES="true",
        SMARTAPP_FHIR_ALLOW_HTTP="true",
    )
    return env


def start_app(workdir: Path, port: int, ehr: OAuthServer, extra_env: dict[str, str]) -> SmartApp:
    origin = f"http://127.0.0.1:{port}"
    env = app_environment(workdir, origin, ehr) | extra_env
    log_fd, log_name = tempfile.mkstemp(prefix="smartapp-e2e-", suffix=".log")
    log: IO[bytes]
    with os.fdopen(log_fd, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "smartapp", "serve", "--port", str(port), "--workers", "2"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    app = SmartApp(origin=origin, process=process, log_path=Path(log_name))
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(f"{origin}/healthz", timeout=2).status_code == 200:
                return app
        time.sleep(0.1)
    app.stop()
    pytest.fail(f"the app did not start:\n{app.log()}", pytrace=False)
