"""``smartapp sandbox load`` (issue 5 item 2) against the real test FHIR server (Medplum's
fhir-router, here behind a bearer token): loaded twice, once in-process and once as the real
command, then the app's own searches (``discovery.PREFETCH`` expanded, through ``FhirClient``)
find each patient's data exactly once. ``smartapp sandbox list`` prints every story."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from smartapp.cds_hooks import discovery
from smartapp.cli import main
from smartapp.fhir_client import FhirClient
from smartapp.sandbox import load
from smartapp.synthetic import scenarios

if TYPE_CHECKING:
    from tests.fhir_server_fixture import FhirServer

TOKEN = "sandbox-load-test-token"  # noqa: S105 - the test server's token
USER = "Practitioner/sandbox-load"
SEARCHED = frozenset({
    "Patient", "MedicationRequest", "MedicationDispense", "MedicationAdministration",
    "Medication", "DiagnosticReport", "Condition",
})  # fmt: skip


@pytest.fixture(scope="module")
def secured(request: pytest.FixtureRequest) -> FhirServer:
    from tests.fhir_server_fixture import start_fhir_server

    server = start_fhir_server(token=TOKEN)

    def stop() -> None:
        server.stop()
        server.log_path.unlink(missing_ok=True)

    request.addfinalizer(stop)
    return server


def _found(client: FhirClient, patient_id: str) -> dict[str, list[tuple[str, str]]]:
    """Every prefetch template of the order-sign service, run as the service's fallback would."""
    context = {"patientId": patient_id, "userId": USER}
    out: dict[str, list[tuple[str, str]]] = {}
    for key, template in discovery.PREFETCH.items():
        answer = client.get(discovery.expand(template, context, USER))
        resources = [answer] if key == "patient" else client.follow(answer)
        out[key] = [(r["resourceType"], r["id"]) for r in resources]
    return out


def _matched_observations(bundle: dict[str, Any]) -> set[tuple[str, str]]:
    """Observations a prefetch template asks for: a listed code, or category survey."""
    listed = set(discovery.observation_codes())
    out = set()
    for entry in bundle["entry"]:
        r = entry["resource"]
        if r["resourceType"] != "Observation":
            continue
        codes = {f"{c.get('system')}|{c.get('code')}" for c in r.get("code", {}).get("coding", [])}
        survey = any(c.get("code") == "survey" for cat in r.get("category", [])
                     for c in cat.get("coding", []))  # fmt: skip
        if codes & listed or survey:
            out.add(("Observation", r["id"]))
    return out


def _expected(bundle: dict[str, Any]) -> set[tuple[str, str]]:
    data = load.loadable(bundle)
    kept = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in data["entry"]}
    return {k for k in kept if k[0] in SEARCHED} | _matched_observations(data)


def test_load_twice_then_the_apps_searches_find_each_patient_once(
    secured: FhirServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sandbox", "load", "--fhir-base", secured.base, "--bearer", TOKEN]
    assert main(argv) == 0
    first = capsys.readouterr().out
    every = scenarios.all_scenarios()
    assert f"{len(every)} patients loaded into {secured.base}" in first
    assert "loaded ciprofloxacin-order-sign: Patient/ciprofloxacin-order-sign" in first

    again = subprocess.run(
        [sys.executable, "-m", "smartapp", *argv], capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("\nloaded ") + again.stdout.startswith("loaded ") == len(every)

    with FhirClient(secured.base, TOKEN, timeout=30) as client:
        for scenario in every:
            bundle = scenario.bundle()
            pid = load.patient_id(load.loadable(bundle))
            found = _found(client, pid)
            for key, items in found.items():
                twice = [k for k, n in Counter(items).items() if n > 1]
                assert not twice, f"{scenario.name} {key}: found more than once: {twice}"
            union = {item for items in found.values() for item in items}
            assert union == _expected(bundle), scenario.name
            # Every Observation of the patient exists once on the server, matched or not.
            observations = client.search("Observation", {"patient": pid, "_count": "1000"})
            ids = [r["id"] for r in observations]
            loaded_obs = [e["resource"]["id"] for e in load.loadable(bundle)["entry"]
                          if e["resource"]["resourceType"] == "Observation"]  # fmt: skip
            assert sorted(ids) == sorted(loaded_obs), scenario.name


def test_the_failed_search_stand_in_is_not_loaded() -> None:
    bundle = scenarios.get("data-unavailable-observation-timeout").bundle()
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert "OperationOutcome" in kinds
    kept = load.loadable(bundle)
    assert {e["resource"]["resourceType"] for e in kept["entry"]} == kinds - {"OperationOutcome"}
    assert len(kept["entry"]) == len(bundle["entry"]) - 1


def test_drafts_are_loaded_as_drafts() -> None:
    bundle = load.loadable(scenarios.get("ciprofloxacin-order-sign").bundle())
    drafts = [e["resource"]["id"] for e in bundle["entry"]
              if e["resource"].get("status") == "draft"]  # fmt: skip
    assert drafts == ["ciprofloxacin-order-sign-medreq5"]


def test_wrong_token_is_refused_with_a_message(
    secured: FhirServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sandbox", "load", "--fhir-base", secured.base, "--bearer", "wrong", "--patient",
            "uk-red"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("smartapp: sandbox load:")
    assert "401" in err or "auth" in err
    assert "wrong" not in err


def test_unknown_patient_is_refused_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["sandbox", "load", "--fhir-base", "http://127.0.0.1:9/fhir", "--patient", "nobody"]
    assert main(argv) == 2
    assert "no synthetic patient 'nobody'" in capsys.readouterr().err


def test_only_the_named_patients_are_loaded(
    secured: FhirServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sandbox", "load", "--fhir-base", secured.base, "--bearer", TOKEN,
            "--patient", "uk-red", "--patient", "trs-not-met", "--patient", "uk-red"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("loaded uk-red: Patient/uk-red, ")
    assert out[1].startswith("loaded trs-not-met: Patient/trs-not-met, ")
    assert out[2] == f"2 patients loaded into {secured.base}"


def test_list_prints_every_story(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(scenarios.all_scenarios())
    name, story = lines[0].split("\t")
    first = scenarios.all_scenarios()[0]
    assert (name, story) == (first.name, first.story)
    assert any(
        line.startswith("ciprofloxacin-order-sign\tOrder-sign: ciprofloxacin") for line in lines
    )
