"""A scenario: one synthetic patient with the story it tells and the finding codes it is
designed to produce (design.md, Contract 1)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from smartapp.synthetic.builders import Json
from smartapp.synthetic.chart import Chart

Build = Callable[[Chart], None]

_GIVEN = {
    "female": ("Ada", "Maya", "Nadia", "Ines", "Grace", "Amara", "Lena", "Sofia", "Ruth"),
    "male": ("Tomas", "Kwame", "Omar", "Daniel", "Felix", "Jonah", "Ravi", "Luis", "Samuel"),
}
_FAMILY = ("Okafor", "Lindqvist", "Moreau", "Hughes", "Tanaka", "Mensah", "Novak", "Brennan",
           "Castillo", "Adeyemi", "Kowalski", "Fischer", "Duarte", "Abbott", "Sato")  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    name: str
    story: str
    as_of: date
    profile: str
    expected_codes: tuple[str, ...]
    build: Build
    kind: str = "collection"
    note: str = ""

    def chart(self) -> Chart:
        rng = random.Random(f"demographics:{self.name}")  # noqa: S311 - test data
        gender = rng.choice(("female", "male"))
        birth = date(rng.randint(1965, 2002), rng.randint(1, 12), rng.randint(1, 28))
        return Chart(
            name=self.name,
            as_of=self.as_of,
            family=rng.choice(_FAMILY),
            given=rng.choice(_GIVEN[gender]),
            gender=gender,
            birth_date=birth.isoformat(),
        )

    def bundle(self) -> Json:
        chart = self.chart()
        self.build(chart)
        return chart.bundle(self.kind)

    def index_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            "story": self.story,
            "as_of": self.as_of.isoformat(),
            "profile": self.profile,
            "expected_codes": sorted(self.expected_codes),
            "file": f"{self.name}.json",
        }
        if self.note:
            entry["note"] = self.note
        return entry


REGISTRY: list[Scenario] = []
DEFAULT_AS_OF = date(2026, 3, 1)


def scenario(
    name: str,
    story: str,
    expected: tuple[str, ...],
    *,
    as_of: date = DEFAULT_AS_OF,
    profile: str = "us-fda",
    kind: str = "collection",
    note: str = "",
) -> Callable[[Build], Build]:
    """Register the decorated chart-building function as a scenario."""

    def register(build: Build) -> Build:
        if any(s.name == name for s in REGISTRY):
            raise ValueError(f"duplicate scenario {name!r}")
        REGISTRY.append(Scenario(name, story, as_of, profile, expected, build, kind, note))
        return build

    return register
