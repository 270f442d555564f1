"""The synthetic patients: every scenario, its bundle, and the index of stories and expected
finding codes (the golden test set, the sandbox's patients, the benchmark input).

``write_all(folder)`` writes ``<name>.json`` for each scenario plus ``index.json``; output is
deterministic (stable ids, sorted keys, indent 2, trailing newline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from smartapp.synthetic import patients_anc, patients_safety, patients_trs
from smartapp.synthetic.builders import Json
from smartapp.synthetic.scenario import REGISTRY, Scenario

_MODULES = (patients_anc, patients_safety, patients_trs)  # importing them registers them


def all_scenarios() -> tuple[Scenario, ...]:
    return tuple(REGISTRY)


def get(name: str) -> Scenario:
    for s in REGISTRY:
        if s.name == name:
            return s
    raise KeyError(name)


def dumps(data: Any) -> str:
    """The canonical JSON text of a generated file."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def index() -> list[dict[str, Any]]:
    return [s.index_entry() for s in REGISTRY]


def bundles() -> dict[str, Json]:
    return {s.name: s.bundle() for s in REGISTRY}


def rendered() -> dict[str, str]:
    """File name -> content for every file ``write_all`` writes."""
    files = {f"{name}.json": dumps(bundle) for name, bundle in bundles().items()}
    files["index.json"] = dumps(index())
    return files


def write_all(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
