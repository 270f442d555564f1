"""Versioned rule data: every clinical threshold, with the source it comes from.

The rulebook's values live in ``smartapp/rules/data/*.json``. ``ruleset.json`` holds the
version and the source list; every other JSON file there is a part, which holds parameters under
a top-level section, each parameter an object ``{"value": ..., "source": "L1", "ref": "...",
"policy": false}``. A parameter marked ``policy`` is a local choice rather than a published
rule and may be overridden from configuration (``Ruleset.with_overrides``).

Rules read parameters by dotted path (``rs.num("anc.general.normal_min")``) and cite them
with ``rs.cite(path)``; nothing in the rules is a bare clinical literal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

Profile = Literal["us-fda", "uk-mhra"]
PROFILES: tuple[Profile, ...] = ("us-fda", "uk-mhra")


class RulesetError(ValueError):
    """The rule data is malformed or a rule asked for a parameter that does not exist."""


@dataclass(frozen=True)
class Parameter:
    path: str
    value: Any
    source: str
    ref: str
    policy: bool


class Ruleset:
    """The loaded, validated rule data of one version (plus any policy overrides)."""

    def __init__(
        self, version: str, sources: Mapping[str, str], params: Mapping[str, Parameter]
    ) -> None:
        self.version = version
        self.sources = dict(sources)
        self._params = dict(params)

    def param(self, path: str) -> Parameter:
        try:
            return self._params[path]
        except KeyError:
            raise RulesetError(f"no rule parameter {path!r}") from None

    def value(self, path: str) -> Any:
        return self.param(path).value

    def num(self, path: str) -> float:
        value = self.value(path)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RulesetError(f"rule parameter {path!r} is not a number")
        return float(value)

    def days(self, path: str) -> int:
        return int(self.num(path))

    def strings(self, path: str) -> tuple[str, ...]:
        value = self.value(path)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RulesetError(f"rule parameter {path!r} is not a list of strings")
        return tuple(value)

    def cite(self, *paths: str) -> str:
        """Citation for one or more parameters, one clause per source with its references:
        ``"L1 US clozapine PI (Table 1; Table 2); L2 Wagner 2022 (Table 6)"``."""
        refs: dict[str, list[str]] = {}
        for path in paths:
            p = self.param(path)
            seen = refs.setdefault(p.source, [])
            if p.ref and p.ref not in seen:
                seen.append(p.ref)
        return "; ".join(
            f"{tag} {self.sources[tag]}" + (f" ({'; '.join(r)})" if r else "")
            for tag, r in refs.items()
        )

    def paths(self, prefix: str = "") -> list[str]:
        return sorted(p for p in self._params if p.startswith(prefix))

    def with_overrides(self, overrides: Mapping[str, Any]) -> Ruleset:
        """A copy with policy parameters replaced. Overriding a published (non-policy)
        threshold is refused: that is a change to the rulebook, not configuration."""
        params = dict(self._params)
        for path, value in overrides.items():
            current = self.param(path)
            if not current.policy:
                raise RulesetError(f"{path!r} is a published rule, not a policy setting")
            unset = current.value is None  # a policy left for local configuration
            numeric = isinstance(value, int | float) and isinstance(current.value, int | float)
            if not unset and type(value) is not type(current.value) and not numeric:
                raise RulesetError(f"override for {path!r} has the wrong type")
            params[path] = Parameter(path, value, "local", "local policy override", True)
        sources = {**self.sources, "local": "Local policy (configuration override)"}
        return Ruleset(self.version, sources, params)


def _flatten(
    section: str, node: Any, sources: Mapping[str, str], out: dict[str, Parameter]
) -> None:
    if not isinstance(node, dict):
        raise RulesetError(f"{section}: expected an object")
    if "value" in node:
        source = node.get("source")
        if not isinstance(source, str) or source not in sources:
            raise RulesetError(f"{section}: unknown or missing source {source!r}")
        out[section] = Parameter(
            section, node["value"], source, str(node.get("ref", "")), bool(node.get("policy"))
        )
        return
    for key, child in node.items():
        if key.startswith("_"):
            continue
        _flatten(f"{section}.{key}" if section else key, child, sources, out)


def parse_ruleset(manifest: Mapping[str, Any], parts: Mapping[str, Mapping[str, Any]]) -> Ruleset:
    version = manifest.get("version")
    sources = manifest.get("sources")
    if not isinstance(version, str) or not isinstance(sources, dict):
        raise RulesetError("ruleset.json needs a version and a sources object")
    params: dict[str, Parameter] = {}
    for name, part in parts.items():
        before = len(params)
        for section, node in part.items():
            if section.startswith("_"):
                continue
            _flatten(section, node, sources, params)
        if len(params) == before:
            raise RulesetError(f"{name}: no parameters")
    return Ruleset(version, sources, params)


@lru_cache(maxsize=1)
def default_ruleset() -> Ruleset:
    """The ruleset shipped with the package, loaded and validated once."""
    folder = resources.files("smartapp.rules") / "data"
    manifest = json.loads((folder / "ruleset.json").read_text(encoding="utf-8"))
    parts = {
        entry.name: json.loads(entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".json") and entry.name != "ruleset.json"
    }
    return parse_ruleset(manifest, parts)


@dataclass(frozen=True)
class RuleContext:
    """What every rule receives besides the patient: the evaluation date, the profile and the
    rule data. Rules never read the clock."""

    as_of: date
    profile: Profile
    rules: Ruleset
    cpz_method: str = "gardner-2010"
