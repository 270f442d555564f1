"""Code tables: versioned data files in ``fhir_mappings/data`` with a source for each entry.

Every table is a JSON object ``{"version": "...", "description": "...", "entries": [...]}``
whose entries are objects that each carry a ``source`` (where the code or value was taken
from, e.g. ``"rulebook §12"`` or ``"RxNorm RxNav 2026-01"``). Tables are validated when first
loaded; a malformed table is a packaging error and raises ``CodeTableError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


class CodeTableError(ValueError):
    """A code table file is malformed."""


@dataclass(frozen=True)
class CodeTable:
    name: str
    version: str
    entries: tuple[Mapping[str, Any], ...]


def parse_table(name: str, data: Any, required: tuple[str, ...] = ()) -> CodeTable:
    if not isinstance(data, dict) or not isinstance(data.get("version"), str):
        raise CodeTableError(f"{name}: needs a version")
    entries = data.get("entries")
    if not isinstance(entries, list) or not entries:
        raise CodeTableError(f"{name}: needs a non-empty entries list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("source"):
            raise CodeTableError(f"{name}: entry {i} has no source")
        missing = [k for k in required if k not in entry]
        if missing:
            raise CodeTableError(f"{name}: entry {i} lacks {', '.join(missing)}")
    return CodeTable(name, data["version"], tuple(entries))


@cache
def load_table(name: str, required: tuple[str, ...] = ()) -> CodeTable:
    """Load ``fhir_mappings/data/{name}.json`` once and validate it."""
    path = resources.files("fhir_mappings") / "data" / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CodeTableError(f"{name}: {exc}") from exc
    return parse_table(name, data, required)
