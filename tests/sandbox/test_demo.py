"""``smartapp demo``: the configuration that makes the app and the sandbox trust each other,
and the command itself as a user runs it: one URL line on stdout, then a whole EHR launch
over real HTTP ending on the dashboard."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from smartapp.cli import build_parser
from smartapp.sandbox import sandbox_urls
from smartapp.sandbox.demo import demo_config, demo_registration, run_demo
from smartapp.smart.registration import load_registration
from smartapp.synthetic.scenarios import get

ROOT = Path(__file__).resolve().parents[2]
URL_LINE = re.compile(r"Open (http://127\.0\.0\.1:(\d+)/sandbox/)\n")


def test_demo_config_trusts_only_its_own_sandbox(tmp_path: Path) -> None:
    urls = sandbox_urls("http://127.0.0.1:8123")
    config = demo_config(urls, str(tmp_path))
    assert config["SANDBOX_ENABLED"] is True
    assert config["EVALUATION_DATE"] == "2026-03-01"
    assert config["SMART_ALLOWED_ISS"] == ["http://127.0.0.1:8123/sandbox/fhir"]
    assert list(config["CDS_TRUSTED_ISSUERS"]) == ["http://127.0.0.1:8123/sandbox"]
    issuer = config["CDS_TRUSTED_ISSUERS"]["http://127.0.0.1:8123/sandbox"]
    assert issuer["jwks_url"] == "http://127.0.0.1:8123/sandbox/jwks.json"
    assert config["CDS_JWKS_ALLOW_LOOPBACK_HTTP"] is True
    assert config["CDS_VERIFY_JWT"] is True
    assert config["INSECURE_DEV_COOKIES"] is True
    assert config["DATABASE_URL"] == f"sqlite:///{tmp_path.resolve()}/sandbox-demo.sqlite3"
    assert config["PUBLIC_BASE_URL"] == "http://127.0.0.1:8123"


def test_demo_registration_is_launch_json_as_a_public_client_on_this_port() -> None:
    launch = {
        "client_id": "my-client",
        "client_type": "confidential-symmetric",
        "scopes": ["launch", "patient/Observation.rs"],
        "allowed_fhir_servers": ["https://ehr.example/fhir"],
        "launch_url": "https://app.example/launch",
    }
    registration = load_registration({"LAUNCH": demo_registration("http://127.0.0.1:9", launch)})
    assert registration.client_id == "my-client"
    assert registration.client_type == "public"
    assert registration.token_endpoint_auth_method == "none"  # noqa: S105
    assert registration.redirect_uri == "http://127.0.0.1:9/callback"
    assert registration.launch_url == "http://127.0.0.1:9/launch"
    assert registration.scopes == ("launch", "patient/Observation.rs")
    assert registration.allowed_fhir_servers == ()  # only SMART_ALLOWED_ISS: the sandbox
    # no launch.json at all (an installed package): the defaults are a usable registration
    default = load_registration({"LAUNCH": demo_registration("http://127.0.0.1:9")})
    assert "patient/Observation.rs" in default.scopes


def test_the_demo_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        run_demo(host="0.0.0.0", port=0)  # noqa: S104 (the address refused)


def test_cli_demo_port() -> None:
    assert build_parser().parse_args(["demo"]).port == 8080
    assert build_parser().parse_args(["demo", "--port", "0"]).port == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "smartapp", "demo", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = URL_LINE.fullmatch(line)
        assert match, f"unexpected first line {line!r}"
        assert int(match.group(2)) == port
        yield process, match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_demo_prints_one_url_and_serves_the_picker(
    demo: tuple[subprocess.Popen[str], str],
) -> None:
    _process, url = demo
    page = requests.get(url, timeout=30)
    assert page.status_code == 200
    assert "Launch app" in page.text
    assert 'data-patient="ciprofloxacin-order-sign"' in page.text
    css = requests.get(url.replace("/sandbox/", "/static/sandbox.css"), timeout=30)
    assert css.status_code == 200 and "text/css" in css.headers["Content-Type"]


def test_demo_launch_over_http_ends_on_the_dashboard(
    demo: tuple[subprocess.Popen[str], str],
) -> None:
    _process, url = demo
    name = "clozapine-week10-mild"
    with requests.Session() as browser:
        started = time.monotonic()
        answer = browser.get(f"{url}launch?patient={name}", timeout=60)
        elapsed = time.monotonic() - started
    assert answer.status_code == 200, answer.text[:500]
    assert answer.url.endswith("/app")
    assert [urlpath(r.headers["Location"]) for r in answer.history] == [
        "/launch", "/sandbox/auth/authorize", "/callback", "/app",
    ]  # fmt: skip
    for code in get(name).expected_codes:
        assert f'id="{code}"' in answer.text
    assert elapsed < 30


def test_demo_stdout_holds_only_the_url_line(demo: tuple[subprocess.Popen[str], str]) -> None:
    process, _url = demo
    process.terminate()
    out, _ = process.communicate(timeout=30)
    assert out == ""


def urlpath(location: str) -> str:
    return re.sub(r"^https?://[^/]+", "", location).split("?")[0]


def test_a_busy_port_is_a_message_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from smartapp.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as stopped:
            main(["demo", "--port", str(port)])
    assert stopped.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no URL printed for a server that is not there
    assert f"Port {port} is in use" in captured.err
