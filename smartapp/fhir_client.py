"""A small FHIR R4 REST client (requests), modelled on smart-on-fhir's client-py: reads,
searches that follow every ``next`` page, bounded retries, and ``FhirError``s a caller can act
on. Used by the CDS Hooks prefetch fallback (design.md Contract 2: "missing prefetch keys are
fetched from fhirServer ... in parallel, following paging") and the SMART app (issue 4 item 3).

The bearer token goes only to URLs on the base URL's origin and under its path; any other URL
(a ``next`` link, a redirect, an absolute URL) is refused with kind ``offsite`` before anything
is sent. Tokens are never logged; URLs are logged without their query, at debug level.

Threads: one client may serve several threads at once (``run_parallel``). Headers, the token
among them, are built per request and never stored on the ``requests.Session``; a session made
here refuses all cookies, so concurrent requests share only urllib3's thread-safe connection
pool. A session passed in is used as given (share one ``make_session()`` between clients to
pool connections across tokens; its owner closes it).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from http.cookiejar import DefaultCookiePolicy
from typing import Any, TypeVar
from urllib.parse import unquote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from fhir_mappings import json_text
from smartapp.fhir_search import (
    FhirError,
    FhirErrorKind,
    encode_query,
    next_link,
    outcome_text,
    page_resources,
)

__all__ = ["FhirClient", "FhirError", "FhirErrorKind", "make_session", "run_parallel"]

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
RETRY_STATUSES = frozenset({429, 503})
RETRY_AFTER_CAP_S = 5.0
MAX_REDIRECTS = 3
DEFAULT_PORTS = {"http": 80, "https": 443}
RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
RESOURCE_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
T = TypeVar("T")


def make_session(pool_maxsize: int = 16) -> requests.Session:
    """A session for FHIR traffic: no cookies kept (no state shared between threads, patients
    or tokens) and a connection pool big enough for ``run_parallel``."""
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def shown(url: str) -> str:
    """A URL fit for logs and messages: no query, fragment or user info."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme)


def retry_after_s(value: str | None) -> float | None:
    """Retry-After in delta-seconds, capped at RETRY_AFTER_CAP_S; None when absent or an
    HTTP-date (the exponential backoff applies then)."""
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), RETRY_AFTER_CAP_S)


class FhirClient:
    """A FHIR server at ``base_url`` (e.g. ``https://ehr.example/fhir/r4``) and an optional
    bearer token. ``timeout`` applies to connecting and to each read, per attempt; ``retries``
    bounds the retries of 429 answers, and of 503 answers and lost connections when the
    request is idempotent (GETs; transactions of GET/PUT only), spaced ``backoff_s * 2**n``
    plus jitter, or as Retry-After says (capped at RETRY_AFTER_CAP_S). Timeouts are not
    retried: a caller with a deadline would only miss it. ``sleep`` may be replaced (tests)."""

    def __init__(
        self,
        base_url: str,
        access_token: str | None = None,
        *,
        timeout: float = 5.0,
        max_pages: int = 50,
        retries: int = 2,
        backoff_s: float = 0.2,
        session: requests.Session | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError("FHIR base URL must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("FHIR base URL must not have a query or fragment")
        if max_pages < 1 or retries < 0 or timeout <= 0 or backoff_s < 0:
            raise ValueError("max_pages >= 1, retries >= 0, timeout > 0 and backoff_s >= 0")
        self.base = base_url.rstrip("/")
        self._base_path = parts.path.rstrip("/")
        self._origin = _origin(self.base)
        self._token = access_token or None
        self.timeout = timeout
        self.max_pages = max_pages
        self.retries = retries
        self.backoff_s = backoff_s
        self._owns_session = session is None
        self.session = session if session is not None else make_session()
        self.sleep: Callable[[float], None] = time.sleep  # tests replace it

    def __repr__(self) -> str:
        return f"FhirClient({self.base!r})"

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session if this client made it."""
        if self._owns_session:
            self.session.close()

    # -- public API ---------------------------------------------------------------------
    def get(self, relative_or_absolute_url: str) -> Any:
        """One JSON document from a URL relative to the base (``Patient/1``,
        ``Observation?code=...``) or absolute under it."""
        return self._request_json("GET", relative_or_absolute_url)

    def read(self, resource_type: str, id: str) -> dict[str, Any]:
        """``GET [base]/Type/id``; the answer must be that resource type."""
        _check_type(resource_type)
        if not RESOURCE_ID.fullmatch(id):
            raise ValueError(f"not a FHIR resource id: {id[:70]!r}")
        where = f"read {resource_type}/{id}"
        document = self.get(f"{resource_type}/{id}")
        if isinstance(document, dict) and document.get("resourceType") == resource_type:
            return document
        if isinstance(document, dict) and document.get("resourceType") == "OperationOutcome":
            raise self._error("outcome", f"{where}: {outcome_text(document)}")
        raise self._error("malformed", f"{where}: the answer is not a {resource_type}")

    def search(
        self, resource_type: str, params: Mapping[str, str | Sequence[str]]
    ) -> list[dict[str, Any]]:
        """``GET [base]/Type?params`` and every ``next`` page: all resources in server order,
        ``_include``d ones too, nothing deduplicated (the record assembler does that)."""
        _check_type(resource_type)
        query = encode_query(params)
        first = self.get(f"{resource_type}?{query}" if query else resource_type)
        return self._follow(first, f"search {resource_type}")

    def follow(self, bundle: dict[str, Any]) -> list[dict[str, Any]]:
        """The resources of ``bundle`` (e.g. a prefetched searchset) and of every ``next``
        page after it, fetched from this server."""
        return self._follow(bundle, "bundle")

    def transaction(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """``POST [base]`` a transaction or batch Bundle; every entry must succeed (2xx).
        Retried on 503 or a lost connection only when every entry is a GET or PUT."""
        idempotent = all(method in ("GET", "PUT") for method in _request_methods(bundle))
        body = json.dumps(bundle, separators=(",", ":")).encode()
        answer = self._request_json("POST", "", body, idempotent=idempotent)
        if not isinstance(answer, dict) or answer.get("resourceType") != "Bundle":
            raise self._error("malformed", "transaction: the answer is not a Bundle")
        entries = answer.get("entry", [])
        for index, entry in enumerate(entries if isinstance(entries, list) else [None]):
            response = entry.get("response") if isinstance(entry, dict) else None
            status = response.get("status") if isinstance(response, dict) else None
            if not isinstance(status, str) or not status.startswith("2"):
                raise self._error("outcome", f"transaction: entry {index} failed ({status!s:.40})")
        return answer

    # -- paging -------------------------------------------------------------------------
    def _follow(self, page: Any, where: str) -> list[dict[str, Any]]:
        resources = page_resources(page, where)
        seen: set[str] = set()
        pages = 1
        while (url := next_link(page, where)) is not None:
            if pages >= self.max_pages:
                raise self._error(
                    "truncated",
                    f"{where}: more than {self.max_pages} pages of results; data incomplete",
                )
            if url in seen:
                raise self._error("malformed", f"{where}: the next links loop")
            seen.add(url)
            page = self.get(url)
            resources.extend(page_resources(page, where))
            pages += 1
        return resources

    # -- transport ----------------------------------------------------------------------
    def _error(self, kind: FhirErrorKind, message: str, status: int | None = None) -> FhirError:
        if self._token:
            message = message.replace(self._token, "[token]")
        return FhirError(kind, message, status)

    def _resolve(self, url: str) -> str:
        """The absolute URL, if it lies under the base; else ``offsite`` (nothing is sent)."""
        try:
            absolute = urljoin(self.base + "/", url)
            origin = _origin(absolute)
            path = urlsplit(absolute).path
        except ValueError:
            raise self._error("malformed", f"not a usable URL: {url[:80]!r}") from None
        segments = {unquote(segment) for segment in path.split("/")}
        inside = path == self._base_path or path.startswith(self._base_path + "/")
        if origin != self._origin or not inside or segments & {".", ".."}:
            raise self._error("offsite", f"refused a URL outside the FHIR base: {shown(absolute)}")
        return absolute

    def _headers(self, body: bytes | None) -> dict[str, str]:
        headers = {"Accept": FHIR_JSON}
        if body is not None:
            headers["Content-Type"] = FHIR_JSON
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _request_json(
        self, method: str, url: str, body: bytes | None = None, *, idempotent: bool = True
    ) -> Any:
        target = self._resolve(url)
        response = self._send(method, target, body, idempotent)
        redirects = 0
        while response.is_redirect and method == "GET":
            redirects += 1
            if redirects > MAX_REDIRECTS:
                raise self._error("http", f"GET {shown(target)}: too many redirects")
            target = self._resolve(urljoin(target, response.headers["Location"]))
            response = self._send(method, target, body, idempotent)
        return self._json(method, target, response)

    def _send(
        self, method: str, url: str, body: bytes | None, idempotent: bool
    ) -> requests.Response:
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = self.session.request(
                    method, url, data=body, headers=self._headers(body),
                    timeout=self.timeout, allow_redirects=False,
                )  # fmt: skip
            except requests.Timeout:
                raise self._error(
                    "timeout", f"{method} {shown(url)}: no answer within {self.timeout:g} s"
                ) from None
            except requests.RequestException as exc:
                if (
                    isinstance(exc, requests.ConnectionError)
                    and idempotent
                    and attempt < self.retries
                ):
                    self._pause(attempt, None)
                    attempt += 1
                    continue
                raise self._error(
                    "connection", f"{method} {shown(url)}: {type(exc).__name__}"
                ) from None
            status = response.status_code
            log.debug("%s %s -> %d in %.0f ms", method, shown(url), status,
                      1000 * (time.monotonic() - started))  # fmt: skip
            retryable = status == 429 or (status in RETRY_STATUSES and idempotent)
            if not retryable or attempt >= self.retries:
                return response
            self._pause(attempt, response.headers.get("Retry-After"))
            attempt += 1

    def _pause(self, attempt: int, retry_after: str | None) -> None:
        delay = retry_after_s(retry_after)
        if delay is None:
            jitter = random.uniform(0, self.backoff_s)  # noqa: S311 - jitter, not security
            delay = self.backoff_s * 2**attempt + jitter
        self.sleep(delay)

    def _json(self, method: str, url: str, response: requests.Response) -> Any:
        where = f"{method} {shown(url)}"
        status = response.status_code
        if status >= 300:
            kind: FhirErrorKind = "auth" if status in (401, 403) else "http"
            detail = _outcome_detail(response)
            reason = f"HTTP {status}" + (f": {detail}" if detail else "")
            raise self._error(kind, f"{where}: {reason}", status)
        try:
            return json_text.loads(response.content)
        except (ValueError, RecursionError):
            raise self._error("malformed", f"{where}: the answer is not JSON", status) from None


def _request_methods(bundle: Mapping[str, Any]) -> list[object]:
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return [None]
    requests_ = [e.get("request") if isinstance(e, dict) else None for e in entries]
    return [r.get("method") if isinstance(r, dict) else None for r in requests_]


def _check_type(resource_type: str) -> None:
    if not RESOURCE_TYPE.fullmatch(resource_type):
        raise ValueError(f"not a FHIR resource type: {resource_type[:70]!r}")


def _outcome_detail(response: requests.Response) -> str:
    """The OperationOutcome diagnostics of an error answer, or '' when the body is not one."""
    try:
        body = json_text.loads(response.content)
    except (ValueError, RecursionError):
        return ""
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return outcome_text(body)
    return ""


def run_parallel(
    tasks: Mapping[str, Callable[[], T]], max_workers: int
) -> dict[str, T | FhirError]:
    """Run ``tasks`` on a thread pool; each name maps to its task's result or its FhirError.
    Any other exception is a bug: it propagates, and tasks not yet started are cancelled."""
    if max_workers < 1:
        raise ValueError("max_workers must be at least 1")
    if not tasks:
        return {}
    results: dict[str, T | FhirError] = {}
    with ThreadPoolExecutor(min(max_workers, len(tasks)), thread_name_prefix="fhir") as pool:
        futures: dict[str, Future[T]] = {name: pool.submit(task) for name, task in tasks.items()}
        try:
            for name, future in futures.items():
                try:
                    results[name] = future.result()
                except FhirError as error:
                    results[name] = error
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return results
