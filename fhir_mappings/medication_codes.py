"""Which drug a medication resource names (rulebook §1 courses, §7 interactions, §8 dosing,
§9 laxatives, §10 TRS).

A drug is recognised from its codes first (RxNorm ingredient and clozapine product codes, ATC,
SNOMED, from ``data/medications.json``), then from ingredient and brand names in its text,
matched case-insensitively on word boundaries (``recognised_by`` says which). Codes and text are
read from ``medicationCodeableConcept`` or the referenced Medication (contained, or from the
Bundle through ``resolve``), including ``Medication.ingredient``. Long-acting injections are
recognised by name, with the default interval the table gives.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from fhir_mappings.codetables import load_table
from fhir_mappings.dosage import Strength, strength_from_ratio, strength_from_text

Resource = dict[str, Any]
Resolver = Callable[[str], Resource | None]

SYSTEMS = {
    "http://www.nlm.nih.gov/research/umls/rxnorm": "rxnorm",
    "http://www.whocc.no/atc": "atc",
    "http://snomed.info/sct": "snomed",
}
ANTIPSYCHOTIC = "antipsychotic"


@dataclass(frozen=True)
class Drug:
    """What a medication resource names, as far as it could be recognised."""

    ingredients: tuple[str, ...]
    recognised_by: str | None
    display: str
    strength: Strength | None = None
    long_acting: bool = False
    lai_interval_days: float | None = None
    unknown_antipsychotic: str | None = None  # an N05A code whose ingredient is not known

    @property
    def dosing(self) -> tuple[Strength | None, bool, float | None]:
        return self.strength, self.long_acting, self.lai_interval_days

    @property
    def antipsychotic(self) -> bool:
        classes = _index().classes
        return self.unknown_antipsychotic is not None or any(
            classes.get(i) == ANTIPSYCHOTIC for i in self.ingredients
        )


@dataclass
class _Index:
    codes: dict[tuple[str, str], tuple[tuple[str, ...], Strength | None]] = field(
        default_factory=dict
    )
    classes: dict[str, str] = field(default_factory=dict)
    by_term: dict[str, tuple[str, ...]] = field(default_factory=dict)
    lai_by_term: dict[str, list[tuple[str, float | None]]] = field(default_factory=dict)
    atc_classes: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    names: re.Pattern[str] = re.compile(r"(?!x)x")
    lai_names: re.Pattern[str] = re.compile(r"(?!x)x")


def _norm(term: str) -> str:
    return re.sub(r"[\s\-]+", " ", term.replace("’", "'").lower()).strip()


def _alternation(terms: list[str]) -> re.Pattern[str]:
    parts = sorted({_norm(t) for t in terms}, key=len, reverse=True)
    escaped = (re.escape(p).replace(r"\ ", r"[\s\-]+") for p in parts)
    return re.compile(r"(?<![\w])(?:" + "|".join(escaped) + r")(?![\w])", re.IGNORECASE)


@cache
def _index() -> _Index:
    """The code table indexed once: dicts keyed by (system, code), one regex for names."""
    idx = _Index()
    for entry in load_table("medications").entries:
        kind = entry.get("kind")
        if kind in ("ingredient", "combination"):
            names = tuple(entry.get("ingredients") or (entry["name"],))
            for name in names:
                idx.classes[name] = str(entry.get("class", ""))
            for system in ("rxnorm", "atc", "snomed"):
                for code in entry.get(system, ()):
                    idx.codes[(system, str(code).upper())] = (names, None)
            for term in entry.get("terms", ()):
                idx.by_term[_norm(term)] = names
        elif kind == "product":
            strength = Strength(entry.get("strength_mg"), entry.get("strength_mg_per_ml"))
            key = (str(entry["system"]), str(entry["code"]).upper())
            idx.codes[key] = (tuple(entry["ingredients"]), strength)
        elif kind == "lai":
            for term in entry["terms"]:
                idx.lai_by_term.setdefault(_norm(term), []).append(
                    (str(entry["ingredient"]), entry.get("interval_days"))
                )
        elif kind == "atc-class":
            idx.atc_classes.append((str(entry["prefix"]), tuple(entry.get("exclude", ()))))
    idx.names = _alternation(list(idx.by_term))
    idx.lai_names = _alternation(list(idx.lai_by_term))
    return idx


def _concepts(
    resource: Resource, resolve: Resolver
) -> tuple[list[Any], list[str], Resource | None]:
    """CodeableConcepts and free texts naming the drug, and the Medication if referenced."""
    concept = resource.get("medicationCodeableConcept")
    if concept is not None:
        return [concept], [], None
    reference = resource.get("medicationReference")
    if not isinstance(reference, dict):
        return [], [], None
    texts = [reference["display"]] if isinstance(reference.get("display"), str) else []
    medication = _find(reference.get("reference"), resource, resolve)
    if medication is None:
        return [], texts, None
    concepts = [medication.get("code")]
    ingredients = medication.get("ingredient")
    for item in ingredients if isinstance(ingredients, list) else []:
        if not isinstance(item, dict):
            continue
        concepts.append(item.get("itemCodeableConcept"))
        target = item.get("itemReference")
        if isinstance(target, dict):
            substance = _find(target.get("reference"), medication, resolve) or _find(
                target.get("reference"), resource, resolve
            )
            concepts.append(substance.get("code") if substance else None)
            if isinstance(target.get("display"), str):
                texts.append(target["display"])
    return [c for c in concepts if c is not None], texts, medication


def _find(target: Any, holder: Resource, resolve: Resolver) -> Resource | None:
    if not isinstance(target, str) or not target:
        return None
    if target.startswith("#"):
        contained = holder.get("contained")
        for item in contained if isinstance(contained, list) else []:
            if isinstance(item, dict) and item.get("id") == target[1:]:
                return item
        return None
    found = resolve(target)
    return found if isinstance(found, dict) else None


def _codings(concepts: list[Any]) -> tuple[list[tuple[str, str]], list[str]]:
    codes: list[tuple[str, str]] = []
    texts: list[str] = []
    for concept in concepts:
        if not isinstance(concept, dict):
            continue
        if isinstance(concept.get("text"), str):
            texts.append(concept["text"])
        codings = concept.get("coding")
        for coding in codings if isinstance(codings, list) else []:
            if not isinstance(coding, dict):
                continue
            system = SYSTEMS.get(str(coding.get("system", "")).rstrip("/"))
            if system and isinstance(coding.get("code"), str):
                codes.append((system, coding["code"].strip().upper()))
            if isinstance(coding.get("display"), str):
                texts.append(coding["display"])
    return codes, texts


def _medication_strength(medication: Resource | None) -> Strength | None:
    ingredients = medication.get("ingredient") if medication else None
    if not isinstance(ingredients, list):
        return None
    found = [strength_from_ratio(i.get("strength")) for i in ingredients if isinstance(i, dict)]
    known = [s for s in found if s is not None]
    return known[0] if len(known) == 1 else None


def recognise(resource: Resource, resolve: Resolver) -> Drug | None:
    """Recognise the drug a medication resource names; ``None`` when it names nothing at all."""
    idx = _index()
    concepts, texts, medication = _concepts(resource, resolve)
    codes, code_texts = _codings(concepts)
    texts = code_texts + texts
    if not codes and not any(t.strip() for t in texts):
        return None
    ingredients: dict[str, None] = {}
    labels: list[str] = []
    strength: Strength | None = None
    unknown_ap: str | None = None
    for system, code in codes:
        hit = idx.codes.get((system, code))
        if hit is not None:
            ingredients.update(dict.fromkeys(hit[0]))
            labels.append(f"{system}:{code}")
            strength = strength or hit[1]
        elif system == "atc" and _is_antipsychotic_class(code, idx):
            unknown_ap = unknown_ap or code
    joined = " | ".join(texts)
    text_names, text_labels = _text_hits(joined)
    ingredients.update(dict.fromkeys(text_names))
    labels.extend(text_labels)
    names = tuple(ingredients)
    long_acting, interval = _long_acting(joined, names)
    if strength is None:
        strength = _medication_strength(medication) or strength_from_text(texts)
    display = next((t for t in texts if t.strip()), labels[0] if labels else "medication")
    return Drug(
        names,
        labels[0] if labels else (f"atc:{unknown_ap}" if unknown_ap else None),
        display.strip(),
        strength,
        long_acting,
        interval,
        unknown_ap if not names else None,
    )


def _is_antipsychotic_class(code: str, idx: _Index) -> bool:
    return any(
        code.startswith(prefix) and not code.startswith(exclude)
        for prefix, exclude in idx.atc_classes
    )


@lru_cache(maxsize=4096)
def _text_hits(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Ingredients named in the text and their labels (cached: orders repeat their drugs)."""
    idx = _index()
    names: dict[str, None] = {}
    labels: list[str] = []
    for match in idx.names.finditer(text):
        term = _norm(match.group(0))
        names.update(dict.fromkeys(idx.by_term[term]))
        labels.append(f"text:{term}")
    return tuple(names), tuple(labels)


@lru_cache(maxsize=4096)
def _long_acting(text: str, names: tuple[str, ...]) -> tuple[bool, float | None]:
    """Long-acting injection named in the text, and its default interval (the shortest one
    any matching entry gives: the higher daily dose is the safer reading for §8)."""
    idx = _index()
    found = False
    intervals: list[float] = []
    for match in idx.lai_names.finditer(text):
        for ingredient, days in idx.lai_by_term[_norm(match.group(0))]:
            generic = ingredient == "*" and any(idx.classes.get(n) == ANTIPSYCHOTIC for n in names)
            if ingredient in names or generic:
                found = True
                if days is not None:
                    intervals.append(float(days))
    return found, (min(intervals) if intervals else None)
