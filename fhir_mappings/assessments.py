"""Observation answers that are assessments, not lab values: smoking status -> SmokingObservation
and rating-scale totals -> RatingScore.

Rulebook §6 and §12 (smoking status, LOINC 72166-2 and its answers, ``data/smoking.json``) and
§10 criterion 4 (PANSS, BPRS and CGI-S totals, ``data/ratings.json``). Scales are recognised by
code or by phrases in the code text; subscales and items are excluded by phrase. A smoking answer
we cannot read is state ``unknown``; a score outside its scale's range is a ``DataIssue``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from fhir_mappings.codetables import load_table
from fhir_mappings.fhir_values import (
    NUMBER_WITH_UNIT,
    Target,
    absent,
    finite_number,
    normalise_text,
    system_of,
)
from fhir_mappings.mapped import Mapped
from smartapp.domain import RatingScore, SmokingObservation, SmokingState


@dataclass(frozen=True)
class _Scale:
    target: Target
    phrases: tuple[str, ...]
    exclude: tuple[str, ...]


def assessment_codes() -> dict[tuple[str, str], Target]:
    """(system, code) -> Target for smoking status and the rating scales that have codes."""
    targets: dict[tuple[str, str], Target] = {}
    for e in _smoking_entries("observation"):
        targets[e["system"], e["code"]] = Target("smoking", "smoking", "smoking status", e["code"])
    entries = load_table("ratings").entries
    for scale, entry in zip(_scales(), entries, strict=True):
        for coding in entry.get("codes", ()):
            targets[coding["system"], coding["code"]] = scale.target
    return targets


@cache
def _scales() -> tuple[_Scale, ...]:
    scales = []
    for e in load_table("ratings", ("scale", "label", "phrases", "exclude", "min", "max")).entries:
        low, high = float(e["min"]), float(e["max"])
        target = Target("rating", e["scale"], e["label"], "", False, low, high)
        phrases = tuple(normalise_text(p) for p in e["phrases"])
        scales.append(_Scale(target, phrases, tuple(normalise_text(x) for x in e["exclude"])))
    return tuple(scales)


@cache
def _rating_hint() -> re.Pattern[str]:
    words = {p.split()[0] for s in _scales() for p in s.phrases}
    return re.compile("|".join(sorted(words)))


def _smoking_entries(kind: str) -> list[dict[str, Any]]:
    return [dict(e) for e in load_table("smoking", ("type",)).entries if e["type"] == kind]


@cache
def _smoking_answers() -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, dict[str, Any]]]:
    codes = {(e["system"], e["code"]): e for e in _smoking_entries("answer")}
    texts = {normalise_text(e["text"]): e for e in _smoking_entries("text")}
    return codes, texts


def rating_by_text(texts: list[str]) -> Target | None:
    """The rating scale whose phrases occur in one of ``texts`` without an excluding phrase
    (a subscale or item) in the rest of it (rulebook §10 criterion 4)."""
    hint = _rating_hint()
    for raw in texts:
        if not hint.search(raw.lower()):
            continue
        text = normalise_text(raw)
        for scale in _scales():
            if any(p in text for p in scale.phrases):
                rest = text
                for p in scale.phrases:
                    rest = rest.replace(p, " ")
                if not any(x in " " + rest + " " for x in scale.exclude):
                    return scale.target
    return None


def map_smoking(holder: dict[str, Any], ref: str, when: tuple[datetime, bool], out: Mapped) -> None:
    """Smoking status answer -> state (rulebook §6, §12; ``data/smoking.json``)."""
    codes, texts = _smoking_answers()
    answer = holder.get("valueCodeableConcept")
    candidates: list[str] = []
    if isinstance(answer, dict):
        codings = answer.get("coding")
        for coding in codings if isinstance(codings, list) else ():
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                entry = codes.get((system_of(coding), coding["code"]))
                if entry is not None:
                    return _add_smoking(out, ref, when, entry, entry["display"])
                if isinstance(coding.get("display"), str):
                    candidates.append(coding["display"])
                candidates.append(coding["code"])
        if isinstance(answer.get("text"), str):
            candidates.insert(0, answer["text"])
    elif isinstance(holder.get("valueString"), str):
        candidates.append(holder["valueString"])
    else:
        out.issue(ref, absent(holder, "smoking status"))
        return
    for text in candidates:
        entry = texts.get(normalise_text(text))
        if entry is not None:
            return _add_smoking(out, ref, when, entry, text)
    unknown = {"state": "unknown"}
    return _add_smoking(out, ref, when, unknown, candidates[0] if candidates else "")


def _add_smoking(
    out: Mapped, ref: str, when: tuple[datetime, bool], entry: dict[str, Any], answer: str
) -> None:
    state: SmokingState = entry["state"]
    e_cig = bool(entry.get("e_cigarette_only", False))
    out.smoking.append(SmokingObservation(ref, when[0], state, answer, e_cig))


def map_rating(
    holder: dict[str, Any], target: Target, ref: str, when: tuple[datetime, bool], out: Mapped
) -> None:
    """Rating-scale total (rulebook §10 criterion 4); outside the scale's range is an issue."""
    q = holder.get("valueQuantity")
    if isinstance(q, dict):
        value = finite_number(q.get("value"))
    elif "valueInteger" in holder:
        value = finite_number(holder["valueInteger"])
    elif isinstance(holder.get("valueString"), str):
        match = NUMBER_WITH_UNIT.fullmatch(holder["valueString"])
        value = float(match.group(2)) if match and not match.group(1) else None
    else:
        out.issue(ref, absent(holder, target.label))
        return
    if value is None or not target.low <= value <= target.high:
        out.issue(
            ref, f"{target.label}: score is not a number from {target.low:g} to {target.high:g}"
        )
        return
    out.ratings.append(RatingScore(ref, target.name, value, when[0]))
