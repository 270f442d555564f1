"""The pharmacology panel data (rulebook §11): every value sourced, ranges where sources differ."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest

from smartapp.dashboard.pharmacology import (
    PharmacologyDataError,
    occupancy_figure,
    parse_pharmacology,
    pharmacology,
)
from smartapp.rules.ruleset import default_ruleset
from tests.dashboard.helpers import NS, find_all, parse


def raw() -> dict[str, Any]:
    path = resources.files("smartapp.dashboard") / "data" / "pharmacology.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_every_figure_carries_known_p_sources() -> None:
    data = pharmacology()
    figures = [o.sources for o in data.occupancy] + [a.sources for a in data.affinities]
    tags = {t for sources in figures for t in sources}
    assert tags <= {"P1", "P2", "P3", "P4"}
    assert all(figures)
    assert data.sources == {t: default_ruleset().sources[t] for t in sorted(tags)}
    assert all(a.sources == ("P4",) for a in data.affinities)


def test_occupancy_values_of_the_rulebook() -> None:
    data = pharmacology()
    window = data.occupancy_of("d2-window")
    assert (window.low, window.high, window.text) == (60, 78, "60-78 %")
    d2 = data.occupancy_of("clozapine-d2")
    assert (d2.typical, d2.low, d2.high, d2.text) == (47, 20, 67, "47 % (20-67 %)")
    assert data.occupancy_of("clozapine-5ht2a").text == "about 89 %"
    with pytest.raises(KeyError):
        data.occupancy_of("nope")


def test_affinities_tightest_first_with_ranges_where_sources_differ() -> None:
    data = pharmacology()
    table = [(a.receptor, a.text, a.differs) for a in data.affinities]
    assert table == [
        ("5-HT2A", "2.6", False),
        ("H1", "3.1", False),
        ("5-HT2C", "4.8", False),
        ("M1 (muscarinic)", "about 6-10", True),
        ("alpha1", "6.8", False),
        ("D4", "about 9", False),
        ("alpha2", "15-158", True),
        ("D2", "126-210", True),
        ("5-HT1A", "160", False),
    ]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["affinities"][0].update(source=[]), "source must be a non-empty list"),
        (lambda d: d["affinities"][0].update(source=["X9"]), "unknown source tag"),
        (lambda d: d["affinities"][0].update(low=5, high=1), "low is above high"),
        (lambda d: d["occupancy"][0].update(high=120), "percentage"),
        (lambda d: d["occupancy"][2].update(typical=90), "typical lies outside"),
        (lambda d: d.update(affinities=[]), "empty"),
        (lambda d: d.pop("version"), "version"),
    ],
)
def test_malformed_data_is_refused(mutate: Any, message: str) -> None:
    data = copy.deepcopy(raw())
    mutate(data)
    with pytest.raises(PharmacologyDataError, match=message):
        parse_pharmacology(data, default_ruleset().sources)


def test_occupancy_figure_has_a_text_alternative() -> None:
    root = parse(occupancy_figure())
    desc = root.find(f"{NS}desc")
    assert desc is not None and "about 47 %" not in (desc.text or "")
    assert "Clozapine, striatal D2 at clinical doses: 47 % (20-67 %)" in (desc.text or "")
    (window,) = find_all(root, "rect", "occupancy-window")
    # 0-100 % over x 40..820: the window starts at 60 % -> x = 508
    assert float(window.get("x") or 0) == pytest.approx(508)
    assert float(window.get("width") or 0) == pytest.approx(0.18 * 780)
