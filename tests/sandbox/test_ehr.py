"""The sandbox EHR pages: the patient picker lists every synthetic patient with its story, and
"Launch app" performs a real EHR launch of the app (here in-process: the app's server-side
calls to the sandbox are routed into the test client), ending on the dashboard with the
patient's findings. The sandbox is off unless enabled, and the product never imports it."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient

from smartapp.synthetic.scenarios import all_scenarios, get
from tests.sandbox.sandbox_app import (
    URLS,
    authorize_query,
    code_from,
    exchange_form,
    make_sandbox_app,
    route_to,
    state,
)

ROOT = Path(__file__).resolve().parents[2]
MILD = "clozapine-week10-mild"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return make_sandbox_app(tmp_path_factory.mktemp("sandbox-ehr"))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def path_of(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_home_lists_every_patient_with_its_story(client: FlaskClient) -> None:
    answer = client.get("/sandbox/")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    rows = re.findall(r'data-patient="([^"]+)"', page)
    assert rows == [s.name for s in all_scenarios()]
    text = html.unescape(page)
    for scenario in all_scenarios():
        assert scenario.story in text
        assert f'href="/sandbox/launch?patient={scenario.name}"' in page
    assert URLS.fhir_base in page
    assert f"{URLS.origin}/cds-services" in page
    # the page keeps to the app's Content Security Policy: no inline script or style
    assert "<script" not in page and "style=" not in page
    assert "'unsafe-inline'" not in answer.headers["Content-Security-Policy"]


def test_launch_redirects_to_the_app_with_a_launch_bound_to_the_patient(
    app: Flask, client: FlaskClient
) -> None:
    answer = client.get(f"/sandbox/launch?patient={MILD}")
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert location.path == "/launch"
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert params["iss"] == URLS.fhir_base
    token = _token_for_launch(app, client, params["launch"])
    assert token["patient"] == MILD
    assert "appContext" not in token


def test_launch_passes_a_cards_app_context(app: Flask, client: FlaskClient) -> None:
    context = '{"finding":"anc-mild"}'
    answer = client.get("/sandbox/launch", query_string={"patient": MILD, "appContext": context})
    launch_id = parse_qs(urlsplit(answer.headers["Location"]).query)["launch"][0]
    assert _token_for_launch(app, client, launch_id)["appContext"] == context


def _token_for_launch(app: Flask, client: FlaskClient, launch_id: str) -> dict[str, str]:
    authorized = client.get("/sandbox/auth/authorize", query_string=authorize_query(launch_id))
    code = code_from(authorized.headers["Location"])
    answer = client.post("/sandbox/auth/token", data=exchange_form(code))
    assert answer.status_code == 200, answer.get_json()
    body: dict[str, str] = answer.get_json()
    return body


@pytest.mark.parametrize(
    ("query", "status"),
    [("patient=nobody", 404), ("", 404), (f"patient={MILD}&appContext={'x' * 3000}", 400)],
)
def test_launch_refuses_what_it_cannot_do(client: FlaskClient, query: str, status: int) -> None:
    answer = client.get(f"/sandbox/launch?{query}")
    assert answer.status_code == status
    assert "Location" not in answer.headers


@pytest.fixture(scope="module")
def uk_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return make_sandbox_app(tmp_path_factory.mktemp("sandbox-uk"), PROFILE="uk-mhra")


@pytest.mark.parametrize(
    "name", [MILD, "ciprofloxacin-order-sign", "uk-amber", "trs-met-third-antipsychotic"]
)
def test_launch_ends_on_the_dashboard_with_the_findings(
    app: Flask, uk_app: Flask, name: str
) -> None:
    """The whole EHR launch, step by step as the browser would follow it, in an app applying
    the rules the patient is written for."""
    app = uk_app if get(name).profile == "uk-mhra" else app
    client = app.test_client()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        route_to(app.test_client(), mock)
        page = _launch_to_dashboard(client, name)
    for code in get(name).expected_codes:
        assert f'id="{code}"' in page, code
    # the dashboard's patient is the launched one
    patient = state(app).store.patient(name)
    assert patient is not None and html.escape(patient.display_name) in page


def test_patients_written_for_other_rules_say_so(app: Flask, uk_app: Flask) -> None:
    us_page = app.test_client().get("/sandbox/").get_data(as_text=True)
    uk_page = uk_app.test_client().get("/sandbox/").get_data(as_text=True)
    uk_patients = sum(1 for s in all_scenarios() if s.profile == "uk-mhra")
    assert uk_patients > 0
    assert us_page.count('class="profile-note"') == uk_patients
    assert uk_page.count('class="profile-note"') == len(all_scenarios()) - uk_patients
    assert "SMARTAPP_PROFILE=uk-mhra" in us_page


def _launch_to_dashboard(client: FlaskClient, name: str) -> str:
    step = client.get(f"/sandbox/launch?patient={name}")
    hops = []
    while step.status_code == 302:
        hops.append(urlsplit(step.headers["Location"]).path)
        step = client.get(path_of(step.headers["Location"]))
    assert hops == ["/launch", "/sandbox/auth/authorize", "/callback", "/app"]
    assert step.status_code == 200, step.get_data(as_text=True)[:500]
    return step.get_data(as_text=True)


def test_sandbox_is_off_unless_enabled(tmp_path: Path) -> None:
    off = make_sandbox_app(tmp_path, SANDBOX_ENABLED=False).test_client()
    assert off.get("/sandbox/").status_code == 404
    assert off.get("/sandbox/fhir/metadata").status_code == 404
    assert off.get("/sandbox/auth/style.json").status_code == 404


def test_the_product_never_imports_the_sandbox(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from smartapp.app import create_app\n"
        "import smartapp.cli, smartapp.serve\n"
        f"create_app({{'DATABASE_URL': 'sqlite:///{tmp_path}/p.db'}})\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('smartapp.sandbox'))\n"
        "assert loaded == [], loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


def test_only_the_registration_and_the_cli_name_the_sandbox() -> None:
    """Product modules import the sandbox nowhere but in app._register_sandbox and in the
    command line's lazy imports."""
    naming = re.compile(r"^\s*(from smartapp(\.sandbox| import sandbox)|import smartapp\.sandbox)",
                        re.MULTILINE)  # fmt: skip
    found = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "smartapp").rglob("*.py")
        if "sandbox" not in path.relative_to(ROOT / "smartapp").parts[:1]
        and naming.search(path.read_text(encoding="utf-8"))
    )
    assert found == ["smartapp/app.py", "smartapp/cli.py"]
