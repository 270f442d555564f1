"""UK profile traffic lights (rulebook §3): colours at 3.5 / 3.0 / 2.0 / 1.5 x10^9/L, a WBC or
neutrophil count on its own, the UK schedule, local BEN thresholds and the start rule."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from smartapp.domain import LabResult
from smartapp.rules.findings import AncSummary, Finding
from smartapp.rules.ruleset import Ruleset, default_ruleset
from tests.rules.test_anc import AS_OF, cloz, codes, lab, only, run

DAY = AS_OF - timedelta(days=1)


def fbc(day: date, wbc: float | None, neut: float | None, tag: str = "") -> tuple[LabResult, ...]:
    parts = []
    if wbc is not None:
        parts.append(lab(f"Observation/w{tag}", day, wbc, "wbc"))
    if neut is not None:
        parts.append(lab(f"Observation/n{tag}", day, neut))
    return tuple(parts)


def uk(*labs: LabResult, **kw: Any) -> tuple[list[Finding], AncSummary]:
    return run(tuple(labs), profile="uk-mhra", **kw)


@pytest.mark.parametrize(
    ("wbc", "neut", "colour"),
    [
        (3500, 2000, "green"),
        (3499, 2000, "amber"),
        (3000, 2000, "amber"),
        (2999, 2000, "red"),
        (3500, 1999, "amber"),
        (3500, 1500, "amber"),
        (3500, 1499, "red"),
        (3400, 1400, "red"),  # amber WBC and red neutrophils: the worse wins
        (3000, 1500, "amber"),
    ],
)
def test_colour_boundaries(wbc: float, neut: float, colour: str) -> None:
    findings, summary = uk(*fbc(DAY, wbc, neut))
    f = only(findings, f"fbc-{colour}")
    assert f.severity == {"green": "info", "amber": "warning", "red": "critical"}[colour]
    assert summary.category == colour and summary.threshold_set == "general"
    assert f"WBC {wbc / 1000:g}" in f.summary and f"neutrophils {neut / 1000:g}" in f.summary
    assert set(f.evidence) == {"Observation/w", "Observation/n"}
    assert not any(c.startswith("anc-") and c[4:] in ("normal", "mild") for c in codes(findings))


def test_neutrophils_alone_colour_and_say_wbc_is_missing() -> None:
    findings, summary = uk(*fbc(DAY, None, 1800))
    f = only(findings, "fbc-amber")
    assert "No WBC was measured" in f.detail and "WBC not measured" in f.summary
    assert summary.latest is not None and summary.latest.value == 1800


def test_wbc_alone_colours_and_says_neutrophils_are_missing() -> None:
    findings, summary = uk(*fbc(DAY, 2900, None))
    assert "No neutrophil count" in only(findings, "fbc-red").detail
    assert summary.latest is None and summary.category == "red"


def test_neutrophils_derived_from_the_differential() -> None:
    labs = (lab("Observation/w", DAY, 4000, "wbc"), lab("Observation/p", DAY, 45, "neutrophil-pct"))
    findings, summary = uk(*labs)
    assert summary.category == "amber"  # 1.8 x10^9/L neutrophils
    assert set(only(findings, "fbc-amber").evidence) == {"Observation/w", "Observation/p"}


# Schedule: weekly to week 18, every 2 weeks to 52, then every 4 weeks.


@pytest.mark.parametrize(
    ("day", "frequency", "interval"),
    [(125, "weekly", 7), (126, "every-2-weeks", 14), (363, "every-2-weeks", 14),
     (364, "every-4-weeks", 28)],
)  # fmt: skip
def test_uk_phase_boundaries(day: int, frequency: str, interval: int) -> None:
    start = AS_OF - timedelta(days=day)
    _, summary = run(fbc(AS_OF, 4000, 2500), (cloz(start=start),), profile="uk-mhra")
    assert summary.frequency == frequency
    assert summary.next_due == AS_OF + timedelta(days=interval)


def test_amber_twice_weekly_until_green() -> None:
    _, summary = uk(*fbc(DAY, 3200, 2500))
    assert summary.frequency == "twice-weekly" and summary.next_due == DAY + timedelta(days=3)
    _, summary = uk(*fbc(DAY - timedelta(days=3), 3200, 2500, "1"), *fbc(DAY, 3600, 2500, "2"))
    assert summary.frequency == "weekly"


def test_red_daily_until_two_consecutive_greens() -> None:
    def after(*rows: tuple[float, float]) -> str | None:
        labs = [r for i, (w, n) in enumerate(rows)
                for r in fbc(AS_OF - timedelta(days=len(rows) - i), w, n, str(i))]  # fmt: skip
        return uk(*labs)[1].frequency

    assert after((2900, 2500)) == "daily"
    assert after((2900, 2500), (4000, 2500)) == "daily"
    assert after((2900, 2500), (4000, 2500), (3200, 2500), (4000, 2500)) == "daily"
    assert after((2900, 2500), (4000, 2500), (4000, 2500)) == "weekly"


def test_restart_and_missing_apply_in_the_uk_profile() -> None:
    new_start = AS_OF - timedelta(days=20 * 7)
    meds = (
        cloz("MedicationRequest/old", date(2023, 1, 1), new_start - timedelta(days=45)),
        cloz("MedicationRequest/new", new_start),
    )
    findings, summary = run(fbc(DAY, 4000, 2500), meds, profile="uk-mhra")
    assert "anc-schedule-restart" not in codes(findings)  # UK weekly phase ends at week 18
    findings, summary = run((), meds, profile="uk-mhra")
    assert only(findings, "anc-missing").severity == "critical"
    assert summary.category == "unknown" and summary.overdue


def test_overdue_in_the_uk_profile() -> None:
    findings, _ = uk(*fbc(AS_OF - timedelta(days=8), 4000, 2500))
    assert "FBC" in only(findings, "anc-overdue").summary


# Start (baseline) rule: WBC >= 3.5 and neutrophils >= 2.0.

DRAFT = (cloz("MedicationRequest/draft", None, proposed=True),)


@pytest.mark.parametrize(
    ("wbc", "neut", "low"), [(3500, 2000, False), (3499, 2000, True), (3500, 1999, True)]
)
def test_uk_start_requires_green_counts(wbc: float, neut: float, low: bool) -> None:
    findings, _ = run(fbc(DAY, wbc, neut), DRAFT, profile="uk-mhra")
    assert ("anc-baseline-low" in codes(findings)) is low
    assert ("fbc-green" in codes(findings)) is not low


def test_uk_start_with_a_part_missing_is_baseline_missing() -> None:
    findings, _ = run(fbc(DAY, None, 2500), DRAFT, profile="uk-mhra")
    assert "no WBC" in only(findings, "anc-baseline-missing").summary


# BEN: local thresholds, unset by default.


def ben_rules(values: dict[str, float]) -> Ruleset:
    """Local BEN thresholds as a site would configure them (policy overrides)."""
    return default_ruleset().with_overrides({f"anc_uk.ben.{k}": v for k, v in values.items()})


def test_ben_without_local_thresholds_uses_the_general_ones_and_says_so() -> None:
    assert default_ruleset().value("anc_uk.ben.neut_green_min") is None
    findings, summary = uk(*fbc(DAY, 3600, 1800), ben=True)
    f = only(findings, "fbc-amber")
    assert "no local UK BEN thresholds are configured" in f.detail
    assert summary.threshold_set == "general" and "Condition/ben" in f.evidence


def test_configured_ben_thresholds_are_used() -> None:
    rules = ben_rules(
        {
            "wbc_green_min": 3000,
            "wbc_amber_min": 2500,
            "neut_green_min": 1500,
            "neut_amber_min": 1000,
        }
    )
    findings, summary = uk(*fbc(DAY, 3000, 1500), ben=True, rules=rules)
    assert summary.category == "green" and summary.threshold_set == "ben"
    assert "fbc-green" in codes(findings)
    partial = ben_rules({"neut_green_min": 1500})
    assert uk(*fbc(DAY, 3000, 1500), ben=True, rules=partial)[1].category == "amber"


def test_not_on_clozapine_shows_the_colour_only() -> None:
    findings, summary = run(fbc(DAY, 2900, 2500), (), profile="uk-mhra")
    assert findings == [] and summary.category == "red" and summary.frequency is None
