"""CDS Hooks 2.0 cards from findings (design.md Contract 2; standards-checklist "Response").

One card per finding: ``summary`` under 140 characters, ``indicator`` = the finding's severity,
markdown ``detail`` with the finding's detail, its evidence, the next due date and the source,
``source`` {label, absolute url, topic = the finding code}, lab-order suggestions with
``selectionBehavior``, coded ``overrideReasons`` specific to the finding, and a ``smart`` link
into the app whose ``appContext`` names the finding. No member is ever null or empty.

Labels, URLs, displays and override reasons come from ``data/cards.json``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from smartapp.cds_hooks.suggestions import (
    CardDataError,
    OrderContext,
    cards_json,
    lab_orders,
    lab_suggestions,
    valid_fhir_id,
)
from smartapp.rules.findings import FINDING_CODES, Finding

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#])")
_ELLIPSIS = "…"


@dataclass(frozen=True)
class CardContext:
    """What a card needs from the hook call. ``draft_refs`` are references to the draft
    orders of the call (marked in the evidence); ``as_of`` is the evaluation date, used so that
    a suggested order for an overdue test is not dated in the past."""

    service_id: str
    hook: str
    patient_id: str
    app_launch_url: str
    draft_refs: tuple[str, ...] = ()
    as_of: date | None = None

    def __post_init__(self) -> None:
        if not _is_absolute_url(self.app_launch_url):
            raise ValueError("app_launch_url must be an absolute http(s) URL")


@dataclass(frozen=True)
class SourceEntry:
    label: str
    url: str | None


@dataclass(frozen=True)
class CardData:
    finding_system: str
    override_system: str
    service_label: str
    rules_path: str
    rules_label: str
    link_label: str
    selection_behavior: str
    summary_max: int
    sources: Mapping[str, SourceEntry]
    displays: Mapping[str, str]
    override_reasons: Mapping[str, tuple[tuple[str, str], ...]]
    generic_overrides: tuple[tuple[str, str], ...]


def _is_absolute_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CardDataError(f"cards.json: {key!r} must be a non-empty string")
    return value.strip()


def _sources(raw: Any) -> dict[str, SourceEntry]:
    out = {}
    for tag, entry in dict(raw or {}).items():
        url = entry.get("url")
        if url is not None and not _is_absolute_url(url):
            raise CardDataError(f"cards.json: source {tag} url must be absolute http(s)")
        if url is not None and not entry.get("source"):
            raise CardDataError(f"cards.json: source {tag} url needs a 'source' saying why")
        out[tag] = SourceEntry(_str(entry, "label"), url)
    return out


def _reasons(codes: Any, catalogue: Mapping[str, str], where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(codes, list) or not codes or any(c not in catalogue for c in codes):
        raise CardDataError(f"cards.json: {where} must list codes of override_reasons")
    return tuple((c, catalogue[c]) for c in codes)


@lru_cache(maxsize=1)
def card_data() -> CardData:
    """The validated card data: every finding code has a display; every override reason
    named exists and has a display; every source URL is absolute."""
    raw = cards_json()
    catalogue = {
        k: v.strip()
        for k, v in dict(raw.get("override_reasons") or {}).items()
        if isinstance(v, str) and v.strip()
    }
    findings = dict(raw.get("findings") or {})
    displays: dict[str, str] = {}
    overrides: dict[str, tuple[tuple[str, str], ...]] = {}
    for code in FINDING_CODES:
        entry = findings.get(code)
        if not isinstance(entry, dict):
            raise CardDataError(f"cards.json: no entry for finding code {code!r}")
        displays[code] = _str(entry, "display")
        if "override_reasons" in entry:
            overrides[code] = _reasons(entry["override_reasons"], catalogue, code)
    lab_orders()  # validates the lab part too
    summary_max = raw.get("summary_max_chars")
    if not isinstance(summary_max, int) or not 40 <= summary_max <= 139:
        raise CardDataError("cards.json: summary_max_chars must be 40-139 (spec: < 140)")
    return CardData(
        finding_system=_str(raw, "finding_code_system"),
        override_system=_str(raw, "override_reason_system"),
        service_label=_str(raw, "service_label"),
        rules_path=_str(raw, "rules_page_path"),
        rules_label=_str(raw, "rules_label"),
        link_label=_str(raw, "link_label"),
        selection_behavior=_str(raw, "selection_behavior"),
        summary_max=summary_max,
        sources=_sources(raw.get("sources")),
        displays=displays,
        override_reasons=overrides,
        generic_overrides=_reasons(raw.get("generic_override_reasons"), catalogue, "generic"),
    )


def shorten_summary(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: cut at the last word boundary that leaves
    room for an ellipsis (a hard cut only when a single word is longer than the limit)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    room = text[: limit - len(_ELLIPSIS) + 1]
    cut = room.rfind(" ")
    head = room[:cut] if cut >= limit // 2 else room[:-1]
    return head.rstrip(" ,;:-(") + _ELLIPSIS


def source_tags(citation: str) -> list[str]:
    """The source tags a finding's citation names, in order: the first word of each
    ``"; "``-separated clause outside parentheses (``"L1 US ... (Table 1; ...); policy ..."``)."""
    tags, depth, start = [], 0, 0
    for i, ch in enumerate(citation + ";"):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == ";" and depth == 0:
            words = citation[start:i].split()
            if words and words[0] not in tags:
                tags.append(words[0])
            start = i + 1
    return tags


def card_source(finding: Finding, ctx: CardContext) -> dict[str, Any]:
    """``source``: the first cited source with a public page; otherwise the app's own rules
    page for this code, labelled with the first cited source."""
    data = card_data()
    tags = [t for t in source_tags(finding.source) if t in data.sources]
    topic = {
        "system": data.finding_system,
        "code": finding.code,
        "display": data.displays[finding.code],
    }
    for tag in tags:
        entry = data.sources[tag]
        if entry.url:
            return {"label": entry.label, "url": entry.url, "topic": topic}
    origin = urlsplit(ctx.app_launch_url)
    url = f"{origin.scheme}://{origin.netloc}{data.rules_path}#{finding.code}"
    label = data.rules_label + (f": {data.sources[tags[0]].label}" if tags else "")
    return {"label": label, "url": url, "topic": topic}


def _md(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _evidence_line(ref: str, drafts: tuple[str, ...]) -> str:
    shown = f"`{ref}`" if "`" not in ref else _md(ref)
    return f"- {shown}" + (" (draft order)" if ref in drafts else "")


def card_detail(finding: Finding, ctx: CardContext, *, orders_omitted: bool = False) -> str:
    """GitHub-flavoured markdown: detail, evidence list, next due date, source."""
    parts = [_md(finding.detail)] if finding.detail.strip() else []
    refs = [r for r in finding.evidence if r.strip()]
    if refs:
        parts.append(
            "**Evidence**\n\n" + "\n".join(_evidence_line(r, ctx.draft_refs) for r in refs)
        )
    if finding.next_due:
        late = ctx.as_of is not None and finding.next_due < ctx.as_of
        parts.append(
            f"**Next due:** {finding.next_due.isoformat()}" + (" (overdue)" if late else "")
        )
    if orders_omitted:
        parts.append(
            "Lab order suggestions were left out: the patient id of this call is not "
            "a valid FHIR id. Order the tests directly."
        )
    source = finding.source.strip() or card_source(finding, ctx)["label"]
    parts.append(f"Source: {_md(source)}")
    return "\n\n".join(parts)


def override_reasons(code: str) -> list[dict[str, str]]:
    """Coded override reasons for a finding code (its own list, else the generic one)."""
    data = card_data()
    pairs = data.override_reasons.get(code, data.generic_overrides)
    return [{"system": data.override_system, "code": c, "display": d} for c, d in pairs]


def _occurrence(finding: Finding, ctx: CardContext) -> date | None:
    if finding.next_due and ctx.as_of:
        return max(finding.next_due, ctx.as_of)
    return finding.next_due


def _suggestions(finding: Finding, ctx: CardContext) -> list[dict[str, Any]]:
    data = card_data()
    display = data.displays[finding.code]
    reason = {"system": data.finding_system, "code": finding.code, "display": display}
    source = finding.source.strip()
    note = f"Suggested by {data.service_label}" + (f". Source: {source}" if source else ".")
    order = OrderContext(
        ctx.patient_id, _occurrence(finding, ctx), reason, f"{display} ({finding.code})", note
    )
    return lab_suggestions(finding.actions, order)


def smart_link(finding: Finding, ctx: CardContext) -> dict[str, str]:
    """The link into the app; ``appContext`` names the finding and the patient."""
    app_context = json.dumps(
        {"finding": finding.code, "patient": ctx.patient_id}, separators=(",", ":")
    )
    return {
        "label": card_data().link_label,
        "url": ctx.app_launch_url,
        "type": "smart",
        "appContext": app_context,
    }


def card_for(finding: Finding, ctx: CardContext) -> dict[str, Any]:
    """The CDS Hooks card for one finding (a fresh uuid4 per call)."""
    data = card_data()
    orderable = bool(finding.actions) and valid_fhir_id(ctx.patient_id)
    summary = finding.summary.strip() or data.displays[finding.code]
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": shorten_summary(summary, data.summary_max),
        "indicator": finding.severity,
        "detail": card_detail(finding, ctx, orders_omitted=bool(finding.actions) and not orderable),
        "source": card_source(finding, ctx),
    }
    if orderable:
        card["suggestions"] = _suggestions(finding, ctx)
        card["selectionBehavior"] = data.selection_behavior
    card["overrideReasons"] = override_reasons(finding.code)
    card["links"] = [smart_link(finding, ctx)]
    return card


def cards_for(findings: Sequence[Finding], ctx: CardContext) -> list[dict[str, Any]]:
    """One card per finding, in the given order."""
    return [card_for(f, ctx) for f in findings]
