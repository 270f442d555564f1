"""FHIR search mechanics without I/O: the query string of a search, and the resources, errors
and ``next`` link of one searchset page (FHIR R4 RESTful API §3.1.0 "Search"; Bundle.link,
Bundle.entry.search.mode). ``FhirError`` lives here because reading a page is where most of
them are raised; import it from ``smartapp.fhir_client``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote, urlencode

FhirErrorKind = Literal[
    "timeout", "http", "auth", "outcome", "malformed", "connection", "offsite", "truncated"
]
MESSAGE_MAX = 300
BLOCKING_SEVERITIES = frozenset({"error", "fatal"})
# Characters left readable in a query: FHIR's OR separator ",", and ":" "/" which RFC 3986
# allows in a query (_include=MedicationRequest:medication, subject=Patient/1). "|" and "+"
# are escaped: a raw "+" in a date's offset would reach the server as a space.
QUERY_SAFE = ",:/"


class FhirError(Exception):
    """A FHIR request that gave no usable data, so the caller knows its data is incomplete.

    ``kind``: ``timeout`` (connect or read), ``connection`` (refused, reset, DNS), ``auth``
    (401/403), ``http`` (any other status >= 300, also 429/503 once retries are spent),
    ``outcome`` (an OperationOutcome, or a searchset entry with an error, where data was
    expected), ``malformed`` (not JSON, not the Bundle or resource expected, a paging loop),
    ``offsite`` (a URL outside the FHIR base: refused, nothing sent), ``truncated`` (more
    pages than ``max_pages``: the results so far are incomplete and are not returned).
    ``status`` is the HTTP status when there was one. ``str()`` is one line with no token.
    """

    def __init__(self, kind: FhirErrorKind, message: str, status: int | None = None) -> None:
        one_line = " ".join(message.split())
        super().__init__(one_line)
        self.kind: FhirErrorKind = kind
        self.status = status


def encode_query(params: Mapping[str, str | Sequence[str]]) -> str:
    """``params`` as a query string: a list value repeats the parameter (``code=a&code=b``
    means AND); a comma inside a value is kept (``code=a,b`` means OR), as the caller wrote it.
    An empty list is refused: dropping the parameter would widen the search silently."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        values = [value] if isinstance(value, str) else list(value)
        if not values:
            raise ValueError(f"search parameter {name!r} has no values")
        for item in values:
            if not isinstance(item, str):
                raise TypeError(f"search parameter {name!r}: values must be strings")
            pairs.append((name, item))
    return urlencode(pairs, safe=QUERY_SAFE, quote_via=quote)


def outcome_text(outcome: Mapping[str, Any]) -> str:
    """The diagnostics (or details.text, or code) of each issue of an OperationOutcome, joined,
    one line, shortened to MESSAGE_MAX characters."""
    parts: list[str] = []
    issues = outcome.get("issue")
    for issue in issues if isinstance(issues, list) else []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details")
        text = issue.get("diagnostics") or (
            details.get("text") if isinstance(details, dict) else None
        )
        text = text or issue.get("code")
        if isinstance(text, str) and text.strip():
            parts.append(text.strip())
    joined = " ".join("; ".join(parts).split())
    return joined if len(joined) <= MESSAGE_MAX else joined[: MESSAGE_MAX - 3] + "..."


def blocks(outcome: Mapping[str, Any]) -> bool:
    """True when an OperationOutcome has an issue of severity error or fatal; an issue without
    a readable severity counts as an error (missing data is never normal)."""
    issues = outcome.get("issue")
    if not isinstance(issues, list) or not issues:
        return True
    return any(
        not isinstance(issue, dict) or issue.get("severity") not in ("warning", "information")
        for issue in issues
    )


def _require_bundle(page: Any, where: str) -> Mapping[str, Any]:
    if isinstance(page, dict) and page.get("resourceType") == "Bundle":
        return page
    if isinstance(page, dict) and page.get("resourceType") == "OperationOutcome":
        raise FhirError("outcome", f"{where}: OperationOutcome instead of a Bundle: "
                        f"{outcome_text(page) or 'no diagnostics'}")  # fmt: skip
    found = page.get("resourceType") if isinstance(page, dict) else type(page).__name__
    raise FhirError("malformed", f"{where}: expected a Bundle, got {str(found)[:60]!r}")


def page_resources(page: Any, where: str) -> list[dict[str, Any]]:
    """The resources of one Bundle page, in order (matches and ``_include``s alike).

    An OperationOutcome entry (search.mode ``outcome``, or any OperationOutcome in the page)
    with an error raises ``outcome``; one with only warnings or information is not data and is
    dropped. An entry without a resource raises ``malformed``: a gap we cannot see is worse
    than a failed query we can report."""
    bundle = _require_bundle(page, where)
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise FhirError("malformed", f"{where}: Bundle.entry is not a list")
    resources: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise FhirError("malformed", f"{where}: entry {index} holds no resource")
        search = entry.get("search")
        mode = search.get("mode") if isinstance(search, dict) else None
        if mode == "outcome" or resource["resourceType"] == "OperationOutcome":
            if blocks(resource):
                raise FhirError("outcome", f"{where}: the server reported an error: "
                                f"{outcome_text(resource) or 'no diagnostics'}")  # fmt: skip
            continue
        resources.append(resource)
    return resources


def next_link(page: Any, where: str) -> str | None:
    """The URL of the page's ``next`` link, or None on the last page."""
    links = _require_bundle(page, where).get("link", [])
    if not isinstance(links, list):
        raise FhirError("malformed", f"{where}: Bundle.link is not a list")
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if not isinstance(url, str) or not url:
                raise FhirError("malformed", f"{where}: the next link has no url")
            return url
    return None
