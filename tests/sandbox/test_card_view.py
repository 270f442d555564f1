"""Cards as the sandbox shows them: the markdown subset of a card's detail rendered with
every character of the card escaped, only http(s) URLs as links, and the ids the feedback
form may name (suggestions with a uuid, override reasons with a code)."""

from __future__ import annotations

from typing import Any

import pytest

from smartapp.sandbox.card_view import card_view, render_markdown, safe_url


def test_the_subset_the_service_writes() -> None:
    detail = (
        "Use one\\-third of the dose \\(about 133\\.33 mg/day\\)\\.\n\n"
        "**Evidence**\n\n- `MedicationRequest/a` (draft order)\n- `Observation/b`\n\n"
        "**Next due:** 2026-03-20 (overdue)\n\nSource: I1 Clozaril PI \\(§7\\)"
    )
    assert str(render_markdown(detail)) == (
        "<p>Use one-third of the dose (about 133.33 mg/day).</p>"
        "<p><strong>Evidence</strong></p>"
        "<ul><li><code>MedicationRequest/a</code> (draft order)</li>"
        "<li><code>Observation/b</code></li></ul>"
        "<p><strong>Next due:</strong> 2026-03-20 (overdue)</p>"
        "<p>Source: I1 Clozaril PI (§7)</p>"
    )


@pytest.mark.parametrize(
    "text, html",
    [
        ("<b>x</b> & y", "<p>&lt;b&gt;x&lt;/b&gt; &amp; y</p>"),
        ("`<script>`", "<p><code>&lt;script&gt;</code></p>"),
        ("[link](javascript:alert(1))", "<p>[link](javascript:alert(1))</p>"),
        ("![img](http://x/y.png)", "<p>![img](http://x/y.png)</p>"),
        ("\\*\\*not bold\\*\\*", "<p>**not bold**</p>"),
        ("\\`not code\\`", "<p>`not code`</p>"),
        ("a\nb", "<p>a<br>b</p>"),
        ("- one\ntext after", "<ul><li>one</li></ul><p>text after</p>"),
        ("", ""),
        ("x\x00y", "<p>xy</p>"),
    ],
)
def test_nothing_in_the_text_becomes_markup_of_its_own(text: str, html: str) -> None:
    assert str(render_markdown(text)) == html


@pytest.mark.parametrize(
    "url, kept",
    [
        ("https://example.org/pi", True),
        ("http://127.0.0.1:8080/rules#anc-normal", True),
        ("javascript:alert(1)", False),
        ("data:text/html,x", False),
        ("//evil.example/x", False),
        ("/relative", False),
        (None, False),
        (42, False),
    ],
)
def test_only_absolute_http_urls_are_links(url: Any, kept: bool) -> None:
    assert (safe_url(url) is not None) is kept


def test_a_card_is_read_defensively() -> None:
    card = card_view({
        "uuid": " u1 ",
        "indicator": "hard-stop",
        "summary": "",
        "detail": 17,
        "source": "not an object",
        "suggestions": [{"uuid": "s1", "label": "Order", "isRecommended": "yes",
                         "actions": [{"description": "Draft"}, "junk"]}, {"label": "no id"}, 3],
        "overrideReasons": [{"code": "r1"}, {"display": "no code"}, "x"],
        "links": [{"url": "ftp://x/y", "label": "ftp"}, {"url": "https://a/b", "type": "smart",
                                                         "appContext": {"not": "a string"}}],
    })  # fmt: skip
    assert card.uuid == "u1"
    assert card.indicator == "info"
    assert card.summary == "(no summary)"
    assert str(card.detail) == ""
    assert (card.source_label, card.source_url, card.topic) == ("", None, "")
    [suggestion] = card.suggestions
    assert (suggestion.uuid, suggestion.label, suggestion.recommended) == ("s1", "Order", False)
    assert suggestion.actions == ("Draft",)
    assert [(r.code, r.display) for r in card.reasons] == [("r1", "r1")]
    [link] = card.links
    assert (link.url, link.label, link.kind, link.app_context) == ("https://a/b", "https://a/b",
                                                                     "smart", None)  # fmt: skip
    assert card.suggestion("s1") is suggestion and card.suggestion("s2") is None
    assert card.reason("r1") is card.reasons[0] and card.reason("r2") is None
