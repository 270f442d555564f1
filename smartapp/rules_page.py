"""``/rules``: the rule data in force, readable by a clinician or a CDS committee.

Cards without a public source page link here (``/rules#<finding-code>``), so every card's
``source.url`` leads to the thresholds and citations behind it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flask import Blueprint, current_app, render_template

from smartapp.cds_hooks.cards import card_data
from smartapp.rules.findings import FINDING_CODES
from smartapp.rules.ruleset import Ruleset

blueprint = Blueprint("rules_page", __name__)


def _sections(rules: Ruleset) -> dict[str, list[dict[str, Any]]]:
    sections: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in rules.paths():
        p = rules.param(path)
        sections[path.split(".", 1)[0]].append(
            {"path": path, "value": p.value, "source": p.source, "ref": p.ref, "policy": p.policy}
        )
    return dict(sections)


@blueprint.get("/rules")
def rules() -> str:
    ruleset: Ruleset = current_app.extensions["smartapp.rules"]
    displays = card_data().displays
    return render_template(
        "rules.html",
        version=ruleset.version,
        findings=[(code, displays[code]) for code in FINDING_CODES],
        sections=_sections(ruleset),
        sources=sorted(ruleset.sources.items()),
    )
