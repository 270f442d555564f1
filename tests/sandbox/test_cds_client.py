"""The sandbox's CDS Hooks client page (/sandbox/prescribe) against the demo app served for
real: the request it builds (hook, hookInstance, context, prefetch keys, or fhirServer with a
patient-scoped token), its JWT verifiable with the published JWKS, the cards it renders (from
the live service and from a canned answer), the feedback it sends, and the forms it refuses."""

from __future__ import annotations

import html as html_lib
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jws

from smartapp.cds_hooks import discovery
from smartapp.cds_hooks.jwks import https_fetcher
from smartapp.cds_hooks.jwt_auth import CdsJwtVerifier, JwtRejected
from smartapp.persistence import store
from smartapp.sandbox import hook_client
from smartapp.sandbox.auth_server import FHIR_USER
from smartapp.sandbox.card_view import card_view
from smartapp.sandbox.cds_client import CALLS, KEY, CallLog, CallRecord
from smartapp.sandbox.hook_client import Answer, HookCall, hook_body, post_signed
from smartapp.sandbox.keys import LIFETIME_S, SandboxKey, client_jwt, load_key, trusted_issuer
from smartapp.sandbox.order_menu import draft_request, menu_order, new_order_id
from tests.sandbox.live_sandbox import LiveSandbox, form_token, start_live_sandbox

CIPRO_PATIENT = "ciprofloxacin-order-sign"
TIMEOUT_PATIENT = "data-unavailable-observation-timeout"
DAY = date(2026, 3, 1)
INTERACTION = "interaction-cyp1a2-inhibitor"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSandbox]:
    running = start_live_sandbox(tmp_path_factory.mktemp("live-sandbox"))
    try:
        yield running
    finally:
        running.stop()


def call(patient: str, order: str, hook: str = "order-sign", prefetch: bool = True) -> HookCall:
    draft = draft_request(menu_order(order), patient, DAY, new_order_id())
    return HookCall(hook, patient, (draft,), prefetch)


def body_for(live: LiveSandbox, c: HookCall) -> dict[str, Any]:
    with live.app.app_context():
        return hook_body(c, live.urls, live.state.store, live.state.auth)


def sandbox_key(live: LiveSandbox) -> SandboxKey:
    key: SandboxKey = live.app.extensions[KEY]
    return key


def send(live: LiveSandbox, browser: requests.Session, **form: str) -> requests.Response:
    page = browser.get(f"{live.origin}/sandbox/prescribe", timeout=30)
    data = {"patient": CIPRO_PATIENT, "order": "ciprofloxacin", "hook": "order-sign",
            "data": "prefetch", **form, "csrf_token": form_token(page.text)}  # fmt: skip
    return browser.post(f"{live.origin}/sandbox/prescribe", data=data, timeout=60)


def first(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found, pattern
    return found.group(1)


def hook_instance_of(response: requests.Response) -> str:
    return urlsplit(response.url).path.rsplit("/", 1)[-1]


# The request ----------------------------------------------------------------------------------


def test_order_select_request_with_prefetch(live: LiveSandbox) -> None:
    c = call(CIPRO_PATIENT, "ciprofloxacin", "order-select")
    body = body_for(live, c)
    assert body["hook"] == "order-select"
    assert uuid.UUID(body["hookInstance"]).version == 4
    context = body["context"]
    assert context["userId"] == FHIR_USER
    assert context["patientId"] == CIPRO_PATIENT
    draft = c.drafts[0]
    assert context["draftOrders"] == {
        "resourceType": "Bundle", "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{draft['id']}", "resource": draft}],
    }  # fmt: skip
    assert context["selections"] == [f"MedicationRequest/{draft['id']}"]
    assert set(body["prefetch"]) == set(discovery.PREFETCH)
    assert "fhirServer" not in body and "fhirAuthorization" not in body
    prefetch = body["prefetch"]
    assert prefetch["patient"]["resourceType"] == "Patient"
    assert prefetch["patient"]["id"] == CIPRO_PATIENT
    requests_ = prefetch["medicationRequests"]
    assert requests_["type"] == "searchset"
    held = live.state.store.in_compartment(CIPRO_PATIENT, "MedicationRequest")
    matched = [e["resource"]["id"] for e in requests_["entry"] if e["search"]["mode"] == "match"]
    assert matched == [r["id"] for r in held] and requests_["total"] == len(held)
    assert not [x for x in requests_["link"] if x["relation"] == "next"]


def test_order_sign_has_no_selections_and_never_two_instances_alike(live: LiveSandbox) -> None:
    first = body_for(live, call(CIPRO_PATIENT, "clozapine-100"))
    second = body_for(live, call(CIPRO_PATIENT, "clozapine-100"))
    assert first["hook"] == "order-sign"
    assert "selections" not in first["context"]
    assert first["hookInstance"] != second["hookInstance"]


def test_without_prefetch_the_token_reads_this_patient_only(live: LiveSandbox) -> None:
    body = body_for(live, call(CIPRO_PATIENT, "ciprofloxacin", prefetch=False))
    assert "prefetch" not in body
    assert body["fhirServer"] == live.urls.fhir_base
    auth = body["fhirAuthorization"]
    assert auth["token_type"] == "Bearer"  # noqa: S105 - a token type, not a secret
    assert auth["patient"] == CIPRO_PATIENT
    assert auth["subject"] == hook_client.SERVICE_CLIENT_ID
    assert auth["scope"] == "patient/*.rs" and auth["expires_in"] > 0
    headers = {"Authorization": f"Bearer {auth['access_token']}"}
    own = requests.get(
        f"{live.urls.fhir_base}/Patient/{CIPRO_PATIENT}", headers=headers, timeout=30
    )
    assert own.status_code == 200 and own.json()["id"] == CIPRO_PATIENT
    other = requests.get(f"{live.urls.fhir_base}/Observation?patient=uk-red", headers=headers,
                         timeout=30)  # fmt: skip
    assert other.status_code == 403


def test_a_failed_search_is_sent_as_its_operation_outcome(live: LiveSandbox) -> None:
    prefetch = body_for(live, call(TIMEOUT_PATIENT, "clozapine-300"))["prefetch"]
    modes = {k: {e["search"]["mode"] for e in v.get("entry", [])} for k, v in prefetch.items()}
    failed = [k for k, found in modes.items() if found == {"outcome"}]
    assert failed and all(k in (*discovery.LAB_KEYS, "assessments") for k in failed)
    outcome = prefetch[failed[0]]["entry"][0]["resource"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert prefetch["conditions"]["entry"][0]["search"]["mode"] == "match"


def test_pages_are_merged_into_one_searchset(live: LiveSandbox) -> None:
    held = live.state.store.in_compartment(CIPRO_PATIENT, "Observation")
    relative = f"Observation?patient={CIPRO_PATIENT}&_count=7"
    merged = hook_client.prefetch_value(live.state.store, live.urls.fhir_base, relative,
                                        CIPRO_PATIENT)  # fmt: skip
    assert len(held) > 14
    assert [e["resource"]["id"] for e in merged["entry"]] == [r["id"] for r in held]
    assert [x["relation"] for x in merged["link"]] == ["self"]


def test_an_unknown_prefetch_path_becomes_an_outcome(live: LiveSandbox) -> None:
    value = hook_client.prefetch_value(live.state.store, live.urls.fhir_base, "Nothing?x=1",
                                       CIPRO_PATIENT)  # fmt: skip
    assert value["resourceType"] == "OperationOutcome"


# The JWT ----------------------------------------------------------------------------------------


def test_jwt_verifies_with_the_published_jwks(live: LiveSandbox) -> None:
    published = requests.get(f"{live.origin}/sandbox/jwks.json", timeout=30).json()
    key = sandbox_key(live)
    assert [k["kid"] for k in published["keys"]] == [key.kid]
    assert not {"d"} & set(published["keys"][0])
    audience = f"{live.origin}/cds-services/clozapine-order-sign"
    token = client_jwt(key, live.origin, audience, datetime.now(UTC))
    header = jws.extract_compact(token.encode()).protected
    assert header == {"alg": "ES384", "typ": "JWT", "kid": key.kid, "jku": live.urls.jwks_url}
    verifier = CdsJwtVerifier(trusted_issuer(live.origin),
                              fetch_json=https_fetcher(allow_loopback_http=True))  # fmt: skip
    client = verifier.verify(f"Bearer {token}", audience)
    assert client.issuer == f"{live.origin}/sandbox" == live.urls.issuer
    with pytest.raises(JwtRejected, match="aud"):
        verifier.verify(f"Bearer {client_jwt(key, live.origin, audience, datetime.now(UTC))}",
                        audience + "/feedback")  # fmt: skip


def test_claims_follow_the_cds_hooks_sandbox() -> None:
    from smartapp.sandbox.keys import client_claims

    now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    claims = client_claims("http://127.0.0.1:8080", "http://127.0.0.1:8080/cds-services/x", now)
    assert claims["iss"] == "http://127.0.0.1:8080/sandbox"
    assert claims["aud"] == "http://127.0.0.1:8080/cds-services/x"
    assert claims["iat"] == int(now.timestamp())
    assert claims["exp"] - claims["iat"] == LIFETIME_S == 300
    assert uuid.UUID(claims["jti"])


def test_the_key_is_made_once_per_instance_folder(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    first, again, other = load_key(folder), load_key(folder), load_key(tmp_path)
    assert first.kid == again.kid != other.kid
    file = tmp_path / "a" / "sandbox_cds_client_jwk.json"
    assert file.stat().st_mode & 0o777 == 0o600
    file.write_text('{"kty": "oct", "k": "c2VjcmV0"}')
    with pytest.raises(ValueError, match="sandbox"):
        load_key(tmp_path / "a")


def test_a_key_the_service_does_not_know_is_refused(live: LiveSandbox) -> None:
    from joserfc.jwk import ECKey

    stranger = SandboxKey("not-published", ECKey.generate_key("P-384", private=True))
    url = f"{live.origin}/cds-services/clozapine-order-sign"
    body = body_for(live, call(CIPRO_PATIENT, "ciprofloxacin"))
    answer = post_signed(url, body, stranger, live.urls)
    assert answer.status == 401 and not answer.ok
    assert answer.error is not None and answer.error.startswith("HTTP 401")
    assert hook_client.cards_of(answer) == []


def test_no_server_is_an_error_not_an_exception(live: LiveSandbox) -> None:
    answer = post_signed("http://127.0.0.1:9/cds-services/x", {}, sandbox_key(live), live.urls)
    assert answer.status is None and answer.error and answer.error.startswith("no answer")


# The page ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["prefetch", "fetch"])
def test_order_sign_for_ciprofloxacin_shows_the_interaction_card(
    live: LiveSandbox, data: str
) -> None:
    response = send(live, live.browser(), data=data)
    assert response.status_code == 200
    assert "/sandbox/prescribe/calls/" in response.url
    html = response.text
    assert f'data-topic="{INTERACTION}"' in html
    assert "card card-warning" in html
    assert "HTTP 200" in html
    assert "strong CYP1A2 inhibitor" in html
    assert "Order a trough clozapine and norclozapine level" in html
    audit = next(e for e in store.list_audit(live.database, 20)
                 if e.hook_instance == hook_instance_of(response))  # fmt: skip
    assert audit.status == 200 and INTERACTION in audit.finding_codes
    # Only the fetch path names the sandbox FHIR server to the service.
    assert audit.fhir_server == (live.origin if data == "fetch" else None)


def test_order_select_for_a_dose_above_the_maximum(live: LiveSandbox) -> None:
    response = send(live, live.browser(), patient="clozapine-week10-mild", order="clozapine-950",
                    hook="order-select")  # fmt: skip
    assert 'data-topic="dose-above-max"' in response.text
    assert "clozapine-order-select" in response.text


def _accept_form(html: str) -> dict[str, str]:
    found = re.search(
        r'name="card" value="([^"]+)">\s*<input type="hidden" name="outcome" value="accepted">'
        r'\s*<input type="hidden" name="suggestion" value="([^"]+)">',
        html,
    )
    assert found, "no Accept form"
    return {"card": found.group(1), "outcome": "accepted", "suggestion": found.group(2)}


def test_accepting_a_suggestion_stores_feedback(live: LiveSandbox) -> None:
    browser = live.browser()
    page = send(live, browser)
    form = _accept_form(page.text)
    url = f"{page.url}/feedback"
    done = browser.post(url, data={**form, "csrf_token": form_token(page.text)}, timeout=60)
    assert done.status_code == 200 and done.url.endswith(f"#card-{form['card']}")
    assert "feedback stored" in done.text
    assert (
        "Accepted: Order a trough clozapine and norclozapine level - feedback stored" in done.text
    )
    [item] = store.list_feedback(live.database, card=form["card"])
    assert item.service_id == "clozapine-order-sign"
    assert item.outcome == "accepted"
    assert item.accepted_suggestions == (form["suggestion"],)
    assert item.override_reason is None


def test_overriding_sends_the_cards_own_reason_and_the_comment(live: LiveSandbox) -> None:
    browser = live.browser()
    page = send(live, browser)
    record = live.app.extensions[CALLS].get(hook_instance_of(page))
    card = record.cards[0]
    reason = card.reasons[-1]
    data = {
        "card": card.uuid,
        "outcome": "overridden",
        "reason": reason.code,
        "comment": "Short course; level checked on day 3",
        "csrf_token": form_token(page.text),
    }
    done = browser.post(f"{page.url}/feedback", data=data, timeout=60)
    assert f"Overridden: {reason.display} - feedback stored" in done.text
    [item] = store.list_feedback(live.database, card=card.uuid)
    assert item.outcome == "overridden"
    assert item.override_reason == reason.coding
    assert item.user_comment == "Short course; level checked on day 3"
    assert item.accepted_suggestions == ()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"patient": "nobody"}, "Choose a patient"),
        ({"order": "clozapine-5000"}, "Choose an order"),
        ({"hook": "patient-view"}, "order-select or order-sign"),
        ({"data": "both"}, "prefetch"),
    ],
)
def test_a_form_off_the_menu_is_refused(
    live: LiveSandbox, changes: dict[str, str], message: str
) -> None:
    before = len(store.list_audit(live.database, 100))
    response = send(live, live.browser(), **changes)
    assert response.status_code == 400
    assert message in response.text
    assert len(store.list_audit(live.database, 100)) == before  # nothing was sent


def test_a_post_without_the_csrf_token_is_refused(live: LiveSandbox) -> None:
    browser = live.browser()
    browser.get(f"{live.origin}/sandbox/prescribe", timeout=30)
    data = {"patient": CIPRO_PATIENT, "order": "ciprofloxacin", "hook": "order-sign",
            "data": "prefetch"}  # fmt: skip
    response = browser.post(f"{live.origin}/sandbox/prescribe", data=data, timeout=30)
    assert response.status_code == 400
    assert "expired" in response.text


def test_feedback_only_for_what_the_card_offered(live: LiveSandbox) -> None:
    browser = live.browser()
    page = send(live, browser)
    form = _accept_form(page.text)
    token = form_token(page.text)
    wrong = [
        {**form, "suggestion": str(uuid.uuid4())},
        {**form, "card": str(uuid.uuid4())},
        {**form, "outcome": "overridden", "reason": "not-a-reason"},
        {**form, "outcome": "ignored"},
    ]
    for data in wrong:
        response = browser.post(f"{page.url}/feedback", data={**data, "csrf_token": token},
                                timeout=30)  # fmt: skip
        assert response.status_code == 400, data
    assert store.list_feedback(live.database, card=form["card"]) == []
    gone = browser.post(f"{live.origin}/sandbox/prescribe/calls/{uuid.uuid4()}/feedback",
                        data={**form, "csrf_token": token}, timeout=30)  # fmt: skip
    assert gone.status_code == 404


def test_the_patient_picker_link_preselects_the_patient(live: LiveSandbox) -> None:
    page = live.browser().get(f"{live.origin}/sandbox/prescribe?patient=uk-red", timeout=30)
    assert '<option value="uk-red" selected>' in page.text
    unknown = live.browser().get(f"{live.origin}/sandbox/prescribe?patient=x", timeout=30)
    assert "selected>Choose a patient</option>" in unknown.text
    for dose in ("clozapine-12.5", "clozapine-25", "clozapine-100", "clozapine-300",
                 "clozapine-950"):  # fmt: skip
        assert f'<option value="{dose}">' in page.text


def test_the_smart_link_launches_the_app_with_the_cards_app_context(live: LiveSandbox) -> None:
    browser = live.browser()
    page = send(live, browser)
    record = live.app.extensions[CALLS].get(hook_instance_of(page))
    link = record.cards[0].links[0]
    assert link.kind == "smart"
    href = html_lib.unescape(first(r'<a class="button secondary" href="([^"]+)"', page.text))
    query = parse_qs(urlsplit(href).query)
    assert urlsplit(href).path == "/sandbox/launch"
    assert query == {"patient": [CIPRO_PATIENT], "appContext": [link.app_context]}
    landed = browser.get(f"{live.origin}{href}", timeout=60)
    assert landed.status_code == 200
    assert urlsplit(landed.url).path == "/app"
    assert f'id="{INTERACTION}"' in landed.text


# Cards from a canned answer ---------------------------------------------------------------------

CANNED = {
    "uuid": "c0ffee00-0000-4000-8000-000000000001",
    "summary": "<script>alert(1)</script> level high",
    "indicator": "critical",
    "detail": "Reduce **now**.\n\n**Evidence**\n\n- `MedicationRequest/m1` (draft order)\n"
              "- <img src=x onerror=alert(2)>\n\nSource: L1 \\(Table 1\\)",
    "source": {"label": "Label <b>PI</b>", "url": "javascript:alert(3)",
               "topic": {"code": "level-alert"}},
    "suggestions": [{"label": "Order a level", "uuid": "s-1", "isRecommended": True,
                     "actions": [{"type": "create", "description": "Draft lab order"}]},
                    {"label": "no uuid: cannot be accepted"}],
    "overrideReasons": [{"system": "http://example.org/r", "code": "r1", "display": "Aware"}],
    "links": [{"label": "Open app", "url": "http://127.0.0.1/launch", "type": "smart",
               "appContext": "{\"finding\":\"level-alert\"}"},
              {"label": "Bad", "url": "javascript:alert(4)", "type": "absolute"}],
}  # fmt: skip


def test_cards_are_rendered_safely_from_a_canned_answer(live: LiveSandbox) -> None:
    instance = str(uuid.uuid4())
    answer = Answer(200, {"cards": [CANNED, {"summary": "no indicator"}]}, claims={
        "iss": "i", "aud": "a", "jti": "j", "iat": 0, "exp": 300})  # fmt: skip
    log: CallLog = live.app.extensions[CALLS]
    log.add(CallRecord(instance, call(CIPRO_PATIENT, "ciprofloxacin"), "ciprofloxacin",
                       "http://x/cds-services/clozapine-order-sign", (), answer,
                       tuple(card_view(c) for c in hook_client.cards_of(answer))))  # fmt: skip
    html = live.browser().get(f"{live.origin}/sandbox/prescribe/calls/{instance}", timeout=30).text
    assert (
        "<script>alert(1)" not in html
        and "&lt;script&gt;alert(1)&lt;/script&gt; level high" in html
    )
    assert "<img" not in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "<p>Reduce <strong>now</strong>.</p>" in html
    assert "<li><code>MedicationRequest/m1</code> (draft order)</li>" in html
    assert "<p>Source: L1 (Table 1)</p>" in html
    assert "javascript:" not in html
    assert "Read more: Label &lt;b&gt;PI&lt;/b&gt;</p>" in html
    assert 'class="card card-critical"' in html and 'data-topic="level-alert"' in html
    assert html.count('name="outcome" value="accepted"') == 1
    assert '<option value="r1">Aware</option>' in html
    assert "/sandbox/launch?patient=ciprofloxacin-order-sign&amp;appContext=" in html
    assert 'class="card card-info"' in html and "no indicator" in html
    assert "2 cards" in html
