"""Finding text as safe HTML: the small markdown subset the rules and cards use.

Everything is HTML-escaped first; only then are paragraphs (blank lines or single line
breaks), ``- `` list items and ``**bold**`` turned into ``<p>``, ``<ul><li>`` and ``<strong>``.
No link, image or raw HTML syntax is recognised, so nothing from a FHIR resource (a medication
text, a display) can add markup to the page.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITEM = re.compile(r"^\s*[-*]\s+")


def _inline(line: str) -> str:
    return _BOLD.sub(r"<strong>\1</strong>", str(escape(line)))


def render_detail(text: str) -> Markup:
    """``text`` (plain text with the markdown subset) as HTML paragraphs and lists."""
    out: list[str] = []
    items: list[str] = []

    def close_list() -> None:
        if items:
            out.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
            items.clear()

    for raw in text.splitlines():
        if not raw.strip():
            close_list()
            continue
        if _ITEM.match(raw):
            items.append(_inline(_ITEM.sub("", raw, count=1).strip()))
            continue
        close_list()
        out.append(f"<p>{_inline(raw.strip())}</p>")
    close_list()
    return Markup("".join(out))  # noqa: S704 - every piece was escaped above
