"""GET /app and POST /app/statements for synthetic patients, with the launch in place through
the view's seams and the EHR's FHIR server mocked."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from smartapp.dashboard.views import patient_key
from smartapp.persistence import store
from tests.cds_hooks.requests_builder import AS_OF
from tests.dashboard.conftest import ALL_SCOPES, USER, Ehr

EXPECTED = {
    "clozapine-week10-mild": ["anc-mild", "anc-repeat-needed", "anc-due-soon"],
    "levels-high-fluvoxamine": [
        "level-high", "ratio-high", "interaction-cyp1a2-inhibitor", "anc-normal",
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", list(EXPECTED))
def test_dashboard_shows_the_patients_findings(ehr: Ehr, name: str) -> None:
    ehr.open(name)
    page = ehr.get()
    assert page.status == 200, page.html
    findings = [a["id"] for a in page.with_class("finding")]
    assert sorted(findings) == sorted(EXPECTED[name])
    for section in ("findings", "anc", "levels", "trs", "calendar", "statements", "pharmacology"):
        assert page.by_id(section) is not None
    assert "<h1>" in page.html and page.html.count("<h1>") == 1
    assert f"Evaluated as of {AS_OF.isoformat()}" in page.html
    assert page.headers["Content-Type"].startswith("text/html")


def test_finding_carries_card_content(ehr: Ehr) -> None:
    page = ehr.open("clozapine-week10-mild").get()
    mild = page.by_id("anc-mild")
    assert mild is not None and "severity-warning" in mild["class"]
    assert "Mild neutropenia · <span>anc-mild</span>" in page.html
    assert "Observation/clozapine-week10-mild-anc11" in page.html  # evidence
    assert 'href="/rules#anc-mild"' in page.html
    assert "L1 US clozapine prescribing information" in page.html  # source


def test_charts_have_text_alternatives(ehr: Ehr) -> None:
    page = ehr.open("levels-high-fluvoxamine").get()
    for chart in ("anc-chart", "levels-chart", "occupancy-chart"):
        svg = page.by_id(chart)
        assert svg is not None and svg["role"] == "img"
        assert svg["aria-labelledby"] == f"{chart}-title {chart}-desc"
        assert page.by_id(f"{chart}-desc") is not None
    assert "<caption>Absolute neutrophil count (ANC) over time: every result</caption>" in page.html
    assert '<td class="num">3.50</td>' in page.html  # C/N ratio in the levels table


def test_banner_only_when_the_ehr_asks(ehr: Ehr) -> None:
    ehr.open("clozapine-week10-mild")
    shown = ehr.get()
    assert shown.with_class("patient-banner")
    assert "Patient id:</dt>" not in shown.html  # dt text, the colon comes from CSS
    assert "<dt>Patient id</dt><dd>clozapine-week10-mild</dd>" in shown.html
    assert "<dt>Born</dt>" in shown.html and "<dt>Gender</dt>" in shown.html
    ehr.relaunch(need_patient_banner=False)
    hidden = ehr.get()
    assert not hidden.with_class("patient-banner")
    assert "for the patient open in the EHR" in hidden.html


def test_refused_scope_is_named_and_not_queried(ehr: Ehr) -> None:
    scopes = tuple(s for s in ALL_SCOPES if s != "patient/Observation.rs")
    ehr.open("clozapine-week10-mild", granted_scopes=scopes)
    page = ehr.get()
    assert page.status == 200
    notices = page.with_class("refused")
    assert [n["data-resource-type"] for n in notices] == ["Observation"]
    assert "Cannot be shown: the EHR did not grant read access to Observation." in page.html
    assert page.by_id("data-unavailable") is not None
    assert ehr.fake is not None and not any("/Observation" in u for u in ehr.fake.calls)
    assert "No ANC results on record" in page.html


def test_failed_query_shows_data_unavailable(ehr: Ehr) -> None:
    ehr.open("clozapine-week10-mild")
    assert ehr.fake is not None
    ehr.fake.failures = {"conditions": "500"}
    page = ehr.get()
    assert page.status == 200
    unavailable = page.by_id("data-unavailable")
    assert unavailable is not None and "severity-" in unavailable["class"]
    assert "diagnoses: FHIR server answered with an error (HTTP 500)" in page.html
    assert page.by_id("anc-mild") is not None  # the rest still shown


def test_401_refreshes_once_then_shows_the_page(ehr: Ehr) -> None:
    ehr.open("clozapine-week10-mild")
    ehr.accepted = {"token-2"}
    page = ehr.get()
    assert page.status == 200
    assert ehr.refreshes == 1
    assert page.by_id("anc-mild") is not None


def test_401_after_refresh_asks_for_a_relaunch(ehr: Ehr) -> None:
    ehr.open("clozapine-week10-mild")
    ehr.accepted = {"nothing"}
    page = ehr.get()
    assert page.status == 401
    assert "Please launch the app again" in page.html
    assert "Traceback" not in page.html


def test_refresh_refused_asks_for_a_relaunch(ehr: Ehr) -> None:
    ehr.open("clozapine-week10-mild")
    ehr.accepted, ehr.refresh_fails = {"token-2"}, True
    page = ehr.get()
    assert page.status == 401 and "Please launch the app again" in page.html


def test_403_names_the_resource_type(ehr: Ehr) -> None:
    ehr.open("clozapine-week10-mild")
    ehr.forbidden = {"conditions"}
    page = ehr.get()
    assert page.status == 403
    assert "refused access to Condition (HTTP 403)" in page.html
    assert "Traceback" not in page.html


def test_no_launch_is_an_html_page_not_a_trace(ehr: Ehr) -> None:
    page = ehr.get()
    assert page.status == 401
    assert page.headers["Content-Type"].startswith("text/html")
    assert "open it from the patient&#39;s chart" in page.html


def test_app_context_highlights_the_finding(ehr: Ehr) -> None:
    ehr.open("clozapine-week10-mild")
    assert ehr.p is not None
    context = json.dumps({"finding": "anc-repeat-needed", "patient": ehr.p.patient_id})
    ehr.relaunch(app_context=context)
    page = ehr.get()
    highlighted = page.with_class("highlighted")
    assert [h["id"] for h in highlighted] == ["anc-repeat-needed"]
    assert highlighted[0].get("aria-current") == "true"


@pytest.mark.parametrize(
    "context",
    [
        '{"finding": "anc-mild", "patient": "someone-else"}',
        '{"finding": "not-a-code"}',
        "not json",
        '["anc-mild"]',
    ],
)
def test_untrusted_app_context_highlights_nothing(ehr: Ehr, context: str) -> None:
    ehr.open("clozapine-week10-mild")
    ehr.relaunch(app_context=context)
    page = ehr.get()
    assert page.status == 200
    assert page.with_class("highlighted") == []


def test_app_context_for_a_finding_that_no_longer_applies_says_so(ehr: Ehr) -> None:
    ehr.open("clozapine-week10-mild")
    ehr.relaunch(app_context='{"finding": "anc-severe"}')
    page = ehr.get()
    assert "which no longer applies" in page.html


def test_ben_statement_is_stored_and_changes_the_anc_table(ehr: Ehr) -> None:
    ehr.open("clozapine-week10-mild")
    before = ehr.get()
    assert before.by_id("anc-mild") is not None
    assert "General table (L1 Table 1)" in before.html
    response = ehr.client.post(
        "/app/statements",
        data={"csrf_token": before.csrf(), "kind": "ben-confirmed", "ben": "true"},
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/app#statements")
    assert ehr.launch is not None
    stored = store.list_statements(ehr.app.extensions["smartapp.db"], patient_key(ehr.launch))
    assert [(s.kind, s.value, s.author) for s in stored] == [("ben-confirmed", "true", USER)]
    after = ehr.get()
    assert after.by_id("anc-mild") is None
    assert after.by_id("anc-normal") is not None  # 1,200/uL is in the BEN normal range
    assert "BEN table (L1 Table 2)" in after.html
    assert "<td>confirmed</td><td>Practitioner/dr-okafor</td>" in after.html


def test_trial_response_statement_reaches_the_trs_ledger(ehr: Ehr) -> None:
    ehr.open("trs-met-third-antipsychotic")
    before = ehr.get()
    assert before.by_id("trs-met") is not None
    assert '<option value="risperidone">risperidone</option>' in before.html
    response = ehr.client.post(
        "/app/statements",
        data={"csrf_token": before.csrf(), "kind": "trial-response", "drug": "risperidone",
              "verdict": "responded"},
    )  # fmt: skip
    assert response.status_code == 303
    after = ehr.get()
    assert after.by_id("trs-met") is None
    assert "response: clinician recorded &#39;responded&#39;" in after.html


def test_statement_without_csrf_token_is_refused(ehr: Ehr) -> None:
    ehr.open("clozapine-week10-mild")
    ehr.get()  # the session has a token, the form post below does not send it
    response = ehr.client.post("/app/statements", data={"kind": "ben-confirmed", "ben": "true"})
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    assert ehr.launch is not None
    assert store.list_statements(ehr.app.extensions["smartapp.db"], patient_key(ehr.launch)) == []


@pytest.mark.parametrize(
    "form",
    [
        {"kind": "ben-confirmed", "ben": "maybe"},
        {"kind": "trial-response", "drug": "risperidone", "verdict": "better"},
        {"kind": "trial-response", "drug": "<script>", "verdict": "responded"},
        {"kind": "something-else"},
    ],
)
def test_malformed_statement_is_refused(ehr: Ehr, form: dict[str, str]) -> None:
    ehr.open("clozapine-week10-mild")
    token = ehr.get().csrf()
    response = ehr.client.post("/app/statements", data={"csrf_token": token, **form})
    assert response.status_code == 400
    assert "Statement not recorded" in response.get_data(as_text=True)
    assert ehr.launch is not None
    assert store.list_statements(ehr.app.extensions["smartapp.db"], patient_key(ehr.launch)) == []


def test_data_is_escaped_on_the_page(ehr: Ehr) -> None:
    ehr.open("carbamazepine-interaction")
    assert ehr.p is not None
    script = "<script>alert('x')</script>"
    for resource in ehr.p.split["medicationRequests"]:
        concept = resource.get("medicationCodeableConcept")
        if concept and "carbamazepine" in json.dumps(concept).lower():
            concept["text"] = f"{script} carbamazepine 200 mg"
            for coding in concept.get("coding", []):
                coding["display"] = f"{script} carbamazepine"
    ehr.p.split["patient"][0]["name"] = [{"text": f"{script} Smith"}]
    page = ehr.get()
    assert page.status == 200
    assert "<script>" not in page.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; carbamazepine" in page.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Smith" in page.html


def test_statements_are_kept_per_fhir_server_and_patient(ehr: Ehr) -> None:
    ehr.open("clozapine-week10-mild")
    assert ehr.launch is not None
    assert patient_key(ehr.launch) == "https://ehr.example.org/fhir/Patient/clozapine-week10-mild"
    long = replace(ehr.launch, fhir_base="https://x/" + "a" * 300)
    key = patient_key(long)
    assert (
        len(key) <= 256
        and key.startswith("sha256:")
        and key.endswith("/Patient/clozapine-week10-mild")
    )


def test_data_about_another_patient_is_not_shown(ehr: Ehr) -> None:
    ehr.open("clozapine-week10-mild")
    assert ehr.p is not None
    stray = {"resourceType": "Condition", "id": "stray", "subject": {"reference": "Patient/other"},
             "code": {"text": "Schizophrenia"}}  # fmt: skip
    ehr.p.split["conditions"].append(stray)
    page = ehr.get()
    assert page.status == 502
    assert "nothing is shown rather than something misleading" in page.html
    assert 'id="anc-mild"' not in page.html
