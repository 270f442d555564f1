"""``smart_style_url`` (SMART App Launch 2.2, app-launch "Styling"; issue 4 item 4): the EHR's
style values are fetched on the server, each value checked against a strict pattern, and served
from our own origin as CSS custom properties (``/smart/style.css``), so the Content Security
Policy never has to allow the EHR's origin or inline styles.

Properties: ``--smart-color-background``, ``--smart-color-text``, ... (the SMART member names
with ``_`` as ``-``). A value that fails its pattern is dropped, never passed through.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import requests

from smartapp.smart.discovery import DiscoveryError, check_endpoint

log = logging.getLogger(__name__)

MAX_STYLE_BYTES = 64 * 1024
_COLOR = re.compile(r"#[0-9A-Fa-f]{3,8}|rgba?\([0-9.,%\s]{5,40}\)|[a-z]{3,20}")
_DIMENSION = re.compile(r"\d{1,4}(\.\d{1,3})?(px|em|rem|%)?")
_FONT = re.compile(r"[A-Za-z0-9 ,\-'\"]{1,120}")
PATTERNS: Mapping[str, re.Pattern[str]] = {
    "color_background": _COLOR,
    "color_error": _COLOR,
    "color_highlight": _COLOR,
    "color_modal_backdrop": _COLOR,
    "color_success": _COLOR,
    "color_text": _COLOR,
    "dim_border_radius": _DIMENSION,
    "dim_font_size": _DIMENSION,
    "dim_spacing_size": _DIMENSION,
    "font_family_body": _FONT,
    "font_family_heading": _FONT,
}


def _acceptable(value: Any, pattern: re.Pattern[str]) -> bool:
    """The value fits its pattern, and its quotes pair up (an open quote would swallow the
    rest of the style sheet)."""
    return (
        isinstance(value, str)
        and pattern.fullmatch(value.strip()) is not None
        and value.count("'") % 2 == 0
        and value.count('"') % 2 == 0
    )


def sanitize(document: Any) -> dict[str, str]:
    if not isinstance(document, dict):
        return {}
    return {
        key: str(document[key]).strip()
        for key, pattern in PATTERNS.items()
        if _acceptable(document.get(key), pattern)
    }


def fetch_style(
    url: str, *, http: requests.Session, timeout: float, allow_http: bool
) -> dict[str, str]:
    """The checked style values, or ``{}`` when they cannot be fetched (the app's own style
    then applies; nothing clinical depends on it)."""
    try:
        check_endpoint(url, allow_http)
        response = http.get(
            url, headers={"Accept": "application/json"}, timeout=timeout, allow_redirects=False
        )
        if response.status_code != 200 or len(response.content) > MAX_STYLE_BYTES:
            raise ValueError(f"HTTP {response.status_code}")
        return sanitize(json.loads(response.content))
    except (DiscoveryError, requests.RequestException, ValueError) as exc:
        log.info("smart_style_url not used (%s)", type(exc).__name__)
        return {}


def css(values: Mapping[str, str]) -> str:
    lines = [
        f"  --smart-{key.replace('_', '-')}: {values[key]};" for key in PATTERNS if key in values
    ]
    return ":root {\n" + "\n".join(lines) + "\n}\n"
