"""CDS Hooks cards as the sandbox EHR shows them (CDS Hooks 2.0 §Card attributes; issue 5
item 1): indicator, summary, detail as markdown rendered safely, the source link, suggestions,
override reasons and links.

A card is untrusted input (any service could answer): every string is HTML-escaped before the
small markdown subset the cards use is turned into markup (paragraphs, ``- `` lists,
``**bold**``, `` `code` `` and backslash escapes); no raw HTML, image or link syntax is
recognised. Only absolute http(s) URLs become links.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup, escape

INDICATORS = ("critical", "warning", "info")
_ITEM = re.compile(r"^\s*[-*]\s+")
_ESCAPED = re.compile(r"\\([\\`*_\[\]<>|~#{}()+.!-])")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_PLACEHOLDER = "\x00{}\x00"
_RESTORE = re.compile("\x00(\\d+)\x00")


def _inline(text: str) -> str:
    """One line: backslash escapes, then code spans, are set aside first so that their
    characters stay literal; then the rest is escaped and ``**bold**`` applied."""
    held: list[str] = []

    def hold(markup: str) -> str:
        held.append(markup)
        return _PLACEHOLDER.format(len(held) - 1)

    text = text.replace("\x00", "")
    text = _ESCAPED.sub(lambda m: hold(str(escape(m.group(1)))), text)
    text = _CODE.sub(lambda m: hold(f"<code>{escape(m.group(1))}</code>"), text)
    html = _BOLD.sub(r"<strong>\1</strong>", str(escape(text)))
    for _ in range(2):  # a code span may hold an escape
        html = _RESTORE.sub(lambda m: held[int(m.group(1))], html)
    return html


def render_markdown(text: str) -> Markup:
    """GitHub-flavoured markdown subset of a card's ``detail`` as safe HTML."""
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append("<p>" + "<br>".join(paragraph) + "</p>")
            paragraph.clear()
        if items:
            blocks.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
            items.clear()

    for line in text.splitlines():
        if not line.strip():
            flush()
        elif _ITEM.match(line):
            if paragraph:
                flush()
            items.append(_inline(_ITEM.sub("", line, count=1).strip()))
        else:
            if items:
                flush()
            paragraph.append(_inline(line.strip()))
    flush()
    return Markup("".join(blocks))  # noqa: S704 - built from escaped text only


def safe_url(value: Any) -> str | None:
    """``value`` when it is an absolute http(s) URL, else None (no javascript:, data:...)."""
    if not isinstance(value, str):
        return None
    parts = urlsplit(value.strip())
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Suggestion:
    uuid: str
    label: str
    recommended: bool
    actions: tuple[str, ...]


@dataclass(frozen=True)
class Reason:
    code: str
    display: str
    coding: dict[str, Any]


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    kind: str
    app_context: str | None


@dataclass(frozen=True)
class CardView:
    """One card, checked and ready for the template."""

    uuid: str
    indicator: str
    summary: str
    detail: Markup
    source_label: str
    source_url: str | None
    topic: str
    suggestions: tuple[Suggestion, ...]
    reasons: tuple[Reason, ...]
    links: tuple[Link, ...]

    def suggestion(self, suggestion_uuid: str) -> Suggestion | None:
        return next((s for s in self.suggestions if s.uuid == suggestion_uuid), None)

    def reason(self, code: str) -> Reason | None:
        return next((r for r in self.reasons if r.code == code), None)


def _suggestions(raw: Any) -> tuple[Suggestion, ...]:
    out = []
    for item in _list(raw):
        if not isinstance(item, dict) or not _text(item.get("uuid")):
            continue  # a suggestion without uuid cannot be accepted in feedback
        actions = _list(item.get("actions"))
        described = tuple(_text(a.get("description")) for a in actions if isinstance(a, dict))
        label = _text(item.get("label")) or "Suggestion"
        recommended = item.get("isRecommended") is True
        out.append(Suggestion(_text(item["uuid"]), label, recommended, described))
    return tuple(out)


def _reasons(raw: Any) -> tuple[Reason, ...]:
    out = []
    for coding in _list(raw):
        if isinstance(coding, dict) and _text(coding.get("code")):
            code = _text(coding["code"])
            out.append(Reason(code, _text(coding.get("display")) or code, dict(coding)))
    return tuple(out)


def _links(raw: Any) -> tuple[Link, ...]:
    out = []
    for link in _list(raw):
        url = safe_url(link.get("url")) if isinstance(link, dict) else None
        if url is None:
            continue
        context = link.get("appContext")
        app_context = context if isinstance(context, str) else None
        out.append(Link(_text(link.get("label")) or url, url, _text(link.get("type")), app_context))
    return tuple(out)


def card_view(card: dict[str, Any]) -> CardView:
    """The card as shown; a missing or unknown indicator shows as ``info``."""
    source = _dict(card.get("source"))
    topic = _dict(source.get("topic"))
    indicator = card.get("indicator")
    return CardView(
        uuid=_text(card.get("uuid")),
        indicator=indicator if indicator in INDICATORS else "info",
        summary=_text(card.get("summary")) or "(no summary)",
        detail=render_markdown(card["detail"] if isinstance(card.get("detail"), str) else ""),
        source_label=_text(source.get("label")),
        source_url=safe_url(source.get("url")),
        topic=_text(topic.get("code")),
        suggestions=_suggestions(card.get("suggestions")),
        reasons=_reasons(card.get("overrideReasons")),
        links=_links(card.get("links")),
    )
