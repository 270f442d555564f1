"""The demo in a browser (issue 5, "Tests that must exist"): ``smartapp demo`` started as a
subprocess, its printed URL opened in headless Chromium, the app launched from the sandbox's
patient picker (a real SMART EHR launch) showing the clinical engine's findings, then an
order-sign for ciprofloxacin sent from the Prescribe page for a patient on clozapine: the
interaction card is rendered, and accepting its suggestion stores feedback in the demo's
database.

Screenshots go to tests/artifacts/ (demo-dashboard.png, demo-card.png). With
SMARTAPP_UPDATE_DOCS_SCREENSHOTS=1 they also replace docs/dashboard.png and docs/card.png,
the two pictures the README shows.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pytest

from fhir_mappings.record import build_record
from smartapp.app import default_instance_path
from smartapp.persistence import Database, store
from smartapp.rules.evaluate import evaluate
from smartapp.sandbox.demo import demo_database_url
from smartapp.synthetic import scenarios
from tests.browser_fixture import ARTIFACTS
from tests.e2e.smart_stack import free_port
from tests.e2e.test_smart_launch_e2e import accessibility_problems

if TYPE_CHECKING:
    from playwright.sync_api import Page


ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
START_TIMEOUT_S = 90.0
WAIT_MS = 60_000
AS_OF = date(2026, 3, 1)
LAUNCHED = "clozapine-week10-mild"
PRESCRIBED = "stable-monthly-searchset"  # five years on clozapine 400 mg/day, no drafts
INTERACTION = "interaction-cyp1a2-inhibitor"
URL_LINE = re.compile(r"Open (http://127\.0\.0\.1:(\d+)/sandbox/)\n")


@dataclass
class Demo:
    url: str
    process: subprocess.Popen[str] = field(repr=False)
    output: list[str] = field(default_factory=list, repr=False)

    @property
    def origin(self) -> str:
        return self.url.removesuffix("/sandbox/")


def _read_lines(stream: IO[str], lines: queue.Queue[str], kept: list[str]) -> None:
    for line in stream:
        kept.append(line)
        lines.put(line)


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTAPP_")}
    env["PYTHONUNBUFFERED"] = "1"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "smartapp", "demo", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    kept: list[str] = []
    threading.Thread(target=_read_lines, args=(process.stdout, lines, kept), daemon=True).start()
    try:
        url = _printed_url(lines, port)
        if url is None:
            pytest.fail("the demo printed no URL:\n" + "".join(kept), pytrace=False)
        yield Demo(url, process, kept)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _printed_url(lines: queue.Queue[str], port: int) -> str | None:
    """The one ``Open ...`` line (any log lines around it are the server's stderr)."""
    try:
        while True:
            line = lines.get(timeout=START_TIMEOUT_S)
            match = URL_LINE.fullmatch(line)
            if match:
                assert int(match.group(2)) == port
                return match.group(1)
    except queue.Empty:
        return None


def expected_codes(name: str) -> set[str]:
    record = build_record(scenarios.get(name).bundle())
    return {finding.code for finding in evaluate(record, AS_OF).findings}


def save(path: Path, docs_name: str) -> None:
    if os.environ.get("SMARTAPP_UPDATE_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / docs_name)


def test_demo_launch_then_prescribe_ciprofloxacin(
    demo: Demo, browser_page: Page, page_errors: list[str]
) -> None:
    page = browser_page
    page.goto(demo.url, wait_until="load", timeout=WAIT_MS)
    assert page.locator("table.patients tbody tr").count() == len(scenarios.all_scenarios())
    assert accessibility_problems(page) == []

    # The patient picker performs a real EHR launch and the app shows the engine's findings.
    page.locator(f"#patient-{LAUNCHED} a", has_text="Launch app").click()
    page.wait_for_selector("#findings", state="attached", timeout=WAIT_MS)
    assert page.url.startswith(f"{demo.origin}/app"), page.url
    shown = set(page.eval_on_selector_all("#findings li.finding", "items => items.map(i => i.id)"))
    assert shown == expected_codes(LAUNCHED)
    assert {"anc-mild", "anc-repeat-needed"} <= shown
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dashboard = ARTIFACTS / "demo-dashboard.png"
    page.screenshot(path=str(dashboard))
    save(dashboard, "dashboard.png")

    # Prescribe: order-sign for ciprofloxacin, for a patient stable on clozapine 400 mg/day.
    page.goto(demo.url, wait_until="load", timeout=WAIT_MS)
    page.locator(f"#patient-{PRESCRIBED} a", has_text="Prescribe").click()
    page.wait_for_selector("form.prescribe", timeout=WAIT_MS)
    assert page.locator("#patient").input_value() == PRESCRIBED
    page.select_option("#order", "ciprofloxacin")
    page.check('input[name="hook"][value="order-sign"]')
    page.check('input[name="data"][value="prefetch"]')
    page.get_by_role("button", name="Send").click()
    card = page.locator(f'article.card[data-topic="{INTERACTION}"]')
    card.wait_for(timeout=WAIT_MS)
    assert "HTTP 200" in page.inner_text("#answer-status")
    assert "CYP1A2 inhibitor" in card.locator("h3").inner_text()
    assert "card-warning" in (card.get_attribute("class") or "")
    assert "Evidence" in card.locator(".detail").inner_text()
    assert accessibility_problems(page) == []
    shot = ARTIFACTS / "demo-card.png"
    card.screenshot(path=str(shot))
    save(shot, "card.png")

    # Accepting the card's suggestion sends feedback, which the service stores.
    card_id = (card.get_attribute("id") or "").removeprefix("card-")
    card.locator(".suggestions button", has_text="Accept").first.click()
    status = page.locator(f"#card-{card_id} .feedback-status")
    status.wait_for(timeout=WAIT_MS)
    assert status.inner_text().endswith("feedback stored")
    database = Database(demo_database_url(default_instance_path()))
    try:
        [item] = store.list_feedback(database, card=card_id)
    finally:
        database.dispose()
    assert item.service_id == "clozapine-order-sign"
    assert item.outcome == "accepted"
    assert len(item.accepted_suggestions) == 1
    assert page_errors == [], "".join(demo.output[-30:])
