"""CDS Hooks 2.0 cards from findings: field rules of the spec and of design.md Contract 2."""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from smartapp.cds_hooks import cards, suggestions
from smartapp.cds_hooks.cards import (
    CardContext,
    card_data,
    card_for,
    cards_for,
    shorten_summary,
    source_tags,
)
from smartapp.cds_hooks.suggestions import CardDataError
from smartapp.rules.findings import FINDING_CODES, SEVERITIES, Finding, LabAction

LAUNCH = "https://app.example.org/smart/launch?x=1"
L1 = (
    "L1 US clozapine prescribing information (Clozaril and generics), 2015 ANC tables; "
    "2025 rewrite §2.1-2.6 (Table 1: weekly; Table 1 (L2 Table 6): mild 1,000-1,499/uL)"
)
SP = (
    "SP Clinical rulebook safety principle: missing or unreadable data is never read as "
    "normal (a failed query is never an all-clear)"
)
ACTIONS: dict[str, tuple[LabAction, ...]] = {
    "anc-mild": ("anc",),
    "fbc-amber": ("cbc-diff",),
    "myocarditis-watch": ("troponin-crp",),
    "level-high": ("clozapine-level",),
    "metabolic-monitoring-due": ("metabolic",),
}
ORDER_SIGN = "clozapine-order-sign"


def ctx(**kwargs: Any) -> CardContext:
    values: dict[str, Any] = {
        "service_id": ORDER_SIGN,
        "hook": "order-sign",
        "patient_id": "p1",
        "app_launch_url": LAUNCH,
        **kwargs,
    }
    return CardContext(**values)


def finding(code: str = "anc-mild", **kwargs: Any) -> Finding:
    values: dict[str, Any] = {
        "code": code,
        "severity": "warning",
        "summary": "ANC 1,200/µL on 2026-03-01: mild neutropenia",
        "detail": "Latest ANC 1,200/µL on 2026-03-01: mild neutropenia.",
        "source": L1,
        "evidence": ("Observation/anc-1",),
        "next_due": date(2026, 3, 4),
        "actions": ACTIONS.get(code, ()),
        **kwargs,
    }
    return Finding(**values)


def assert_no_empty(value: Any, path: str = "card") -> None:
    """CDS Hooks: no null and no empty optional member anywhere (standards checklist ★)."""
    assert value is not None, f"{path} is null"
    if isinstance(value, str):
        assert value.strip(), f"{path} is an empty string"
    elif isinstance(value, dict):
        assert value, f"{path} is an empty object"
        for key, item in value.items():
            assert_no_empty(item, f"{path}.{key}")
    elif isinstance(value, list):
        assert value, f"{path} is an empty list"
        for i, item in enumerate(value):
            assert_no_empty(item, f"{path}[{i}]")


def assert_valid_card(card: dict[str, Any], f: Finding) -> None:
    assert_no_empty(card)
    json.dumps(card, allow_nan=False)
    assert uuid.UUID(card["uuid"]).version == 4
    assert 0 < len(card["summary"]) < 140
    assert card["indicator"] == f.severity
    assert "\n\nSource: " in card["detail"] or card["detail"].startswith("Source: ")
    source = card["source"]
    assert source["label"]
    assert urlsplit(source["url"]).scheme in ("http", "https")
    assert urlsplit(source["url"]).netloc
    assert source["topic"]["code"] == f.code
    assert source["topic"]["system"] == card_data().finding_system
    assert source["topic"]["display"]
    assert ("suggestions" in card) == bool(f.actions)
    assert ("selectionBehavior" in card) == ("suggestions" in card)
    if "suggestions" in card:
        assert card["selectionBehavior"] in ("at-most-one", "any")
    for reason in card["overrideReasons"]:
        assert set(reason) == {"system", "code", "display"}
        assert reason["system"] == card_data().override_system
    (link,) = card["links"]
    assert link["type"] == "smart" and link["url"] == LAUNCH
    assert json.loads(link["appContext"]) == {"finding": f.code, "patient": "p1"}


@pytest.mark.parametrize("code", FINDING_CODES)
def test_every_finding_code_gets_a_valid_card(code: str) -> None:
    severity = SEVERITIES[FINDING_CODES.index(code) % 3]
    f = finding(code, severity=severity)
    assert_valid_card(card_for(f, ctx()), f)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_indicator_is_the_finding_severity(severity: str) -> None:
    assert card_for(finding(severity=severity), ctx())["indicator"] == severity


def test_summary_is_shortened_at_a_word_boundary_with_an_ellipsis() -> None:
    words = "ANC 740/µL on 2026-03-01: moderate neutropenia - interrupt clozapine, " * 4
    card = card_for(finding(summary=words), ctx())
    summary = card["summary"]
    assert len(summary) <= 139 and summary.endswith("…")
    assert words.startswith(summary[:-1])
    assert words[len(summary) - 1] in " ,"  # the cut fell between words


@pytest.mark.parametrize(("length", "shortened"), [(138, False), (139, False), (140, True)])
def test_summary_length_boundary(length: int, shortened: bool) -> None:
    text = ("word " * 40)[: length - 1] + "x"
    out = shorten_summary(text, 139)
    assert len(out) <= 139
    assert out.endswith("…") is shortened
    assert (out == text) is not shortened


def test_summary_without_spaces_is_cut_hard_and_whitespace_collapsed() -> None:
    assert shorten_summary("x" * 300, 139) == "x" * 138 + "…"
    assert shorten_summary("  a \n b  ", 139) == "a b"


def test_empty_summary_falls_back_to_the_code_display() -> None:
    card = card_for(finding("anc-overdue", summary="  "), ctx())
    assert card["summary"] == "ANC overdue"


def test_suggestions_only_with_actions_and_each_service_request_is_valid() -> None:
    for code, actions in ACTIONS.items():
        card = card_for(finding(code), ctx())
        assert len(card["suggestions"]) == len(actions)
        for suggestion in card["suggestions"]:
            assert suggestion["isRecommended"] is True
            for action in suggestion["actions"]:
                resource = action["resource"]
                ServiceRequest.model_validate(resource)
                assert resource["code"]["coding"][0]["system"] == "http://loinc.org"
                assert resource["subject"] == {"reference": "Patient/p1"}
                assert resource["reasonCode"][0]["coding"][0]["code"] == code
                assert "L1 US clozapine" in resource["note"][0]["text"]
    bare = card_for(finding("anc-normal", actions=()), ctx())
    assert "suggestions" not in bare and "selectionBehavior" not in bare


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [(None, "2026-03-04"), (date(2026, 3, 1), "2026-03-04"), (date(2026, 3, 9), "2026-03-09")],
)
def test_order_date_is_the_due_date_but_never_in_the_past(
    as_of: date | None, expected: str
) -> None:
    card = card_for(finding(), ctx(as_of=as_of))
    resource = card["suggestions"][0]["actions"][0]["resource"]
    assert resource["occurrenceDateTime"] == expected


def test_overdue_due_date_is_marked_in_the_detail() -> None:
    late = card_for(finding(), ctx(as_of=date(2026, 3, 9)))["detail"]
    on_time = card_for(finding(), ctx(as_of=date(2026, 3, 1)))["detail"]
    assert "**Next due:** 2026-03-04 (overdue)" in late
    assert "**Next due:** 2026-03-04" in on_time and "overdue" not in on_time


def test_invalid_patient_id_drops_orders_but_says_so() -> None:
    card = card_for(finding(), ctx(patient_id="../p1"))
    assert "suggestions" not in card and "selectionBehavior" not in card
    assert "not a valid FHIR id" in card["detail"]
    assert json.loads(card["links"][0]["appContext"])["patient"] == "../p1"


def test_detail_has_evidence_next_due_and_source_in_markdown() -> None:
    f = finding(detail="Level *high* <b>", evidence=("Observation/a_1", "MedicationRequest/d1"))
    detail = card_for(f, ctx(draft_refs=("MedicationRequest/d1",)))["detail"]
    assert detail.startswith(r"Level \*high\* \<b\>")
    assert "**Evidence**\n\n- `Observation/a_1`\n- `MedicationRequest/d1` (draft order)" in detail
    assert "**Next due:** 2026-03-04" in detail
    assert detail.endswith("Source: " + L1)


def test_detail_without_detail_evidence_or_due_date_still_cites_the_source() -> None:
    f = finding("trs-not-met", detail="", evidence=(), next_due=None, source=SP)
    detail = card_for(f, ctx())["detail"]
    assert detail == "Source: " + SP
    assert "Evidence" not in detail and "Next due" not in detail


def test_source_url_is_the_first_cited_source_with_a_public_page() -> None:
    policy_first = "policy Local policy default (configurable) (§2.2: due soon); " + L1
    source = card_for(finding("anc-due-soon", source=policy_first), ctx())["source"]
    assert source["url"].startswith("https://dailymed.nlm.nih.gov/")
    assert source["label"] == "Clozaril (clozapine) US prescribing information"


def test_source_without_public_page_links_to_the_app_rules_page() -> None:
    source = card_for(finding("data-unavailable", source=SP), ctx())["source"]
    assert source["url"] == "https://app.example.org/rules#data-unavailable"
    assert source["label"] == "Clozapine safety rulebook: " + card_data().sources["SP"].label
    unknown = card_for(finding("data-unmapped", source="made-up text"), ctx())["source"]
    assert unknown == {
        "label": "Clozapine safety rulebook",
        "url": "https://app.example.org/rules#data-unmapped",
        "topic": unknown["topic"],
    }


def test_source_tags_ignore_semicolons_inside_parentheses() -> None:
    citation = "L1 PI (Table 1; L2 Table 6 (a; b)); policy Local (x; T1 y); T1 AGNP"
    assert source_tags(citation) == ["L1", "policy", "T1"]
    assert source_tags("") == []


def test_shipped_source_urls_are_absolute_https_and_sourced() -> None:
    raw = suggestions.cards_json()["sources"]
    with_url = {tag for tag, entry in raw.items() if "url" in entry}
    assert {"L1", "T1", "M1", "R1", "G1"} <= with_url
    for tag in with_url:
        assert raw[tag]["url"].startswith("https://") and raw[tag]["source"]


def test_override_reasons_are_specific_with_a_generic_fallback() -> None:
    def displays(code: str) -> list[str]:
        return [r["display"] for r in card_for(finding(code), ctx())["overrideReasons"]]

    assert "Patient declined clozapine" in displays("trs-met")
    assert "Clozapine previously not tolerated" in displays("trs-met")
    assert "ANC drawn at an outside lab" in displays("anc-overdue")
    assert "Clozapine dose already reduced to one third" in displays("interaction-cyp1a2-inhibitor")
    assert displays("anc-normal") == [d for _, d in card_data().generic_overrides]
    assert displays("trs-met") != displays("anc-overdue")


def test_cards_for_keeps_order_and_gives_unique_uuids() -> None:
    findings = [finding(code) for code in ("myocarditis-watch", "anc-mild", "trs-met")]
    out = cards_for(findings, ctx())
    assert [c["source"]["topic"]["code"] for c in out] == [
        "myocarditis-watch",
        "anc-mild",
        "trs-met",
    ]
    again = cards_for(findings, ctx())
    ids = [c["uuid"] for c in out + again]
    ids += [s["uuid"] for c in out + again for s in c.get("suggestions", [])]
    assert len(ids) == len(set(ids)) == 10
    assert cards_for([], ctx()) == []


@pytest.mark.parametrize("url", ["/launch", "launch.html", "ftp://x/launch", "https:///launch"])
def test_context_refuses_a_launch_url_that_is_not_absolute_http(url: str) -> None:
    with pytest.raises(ValueError):
        ctx(app_launch_url=url)


def test_card_data_validation_refuses_broken_entries() -> None:
    with pytest.raises(CardDataError):
        cards._reasons(["no-such-reason"], {"a": "A"}, "x")
    with pytest.raises(CardDataError):
        cards._reasons([], {"a": "A"}, "x")
    with pytest.raises(CardDataError):
        cards._sources({"L1": {"label": "x", "url": "/relative", "source": "s"}})
    with pytest.raises(CardDataError):
        cards._sources({"L1": {"label": "x", "url": "https://a.example/"}})
    with pytest.raises(CardDataError):
        cards._sources({"L1": {"label": " "}})


GOLDEN = sorted((Path(__file__).parents[1] / "golden").glob("*.json"))


def golden_findings(path: Path) -> list[Finding]:
    out = []
    for f in json.loads(path.read_text("utf-8"))["findings"]:
        due = f.get("next_due")
        out.append(
            Finding(
                f["code"],
                f["severity"],
                f["summary"],
                f["detail"],
                f["source"],
                tuple(f["evidence"]),
                date.fromisoformat(due) if due else None,
                tuple(f.get("actions", ())),
            )
        )
    return out


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_cards_for_the_synthetic_patients_golden_findings(path: Path) -> None:
    findings = golden_findings(path)
    for f, card in zip(findings, cards_for(findings, ctx()), strict=True):
        assert_valid_card(card, f)
        assert card["summary"] == f.summary  # the engine's summaries already fit
