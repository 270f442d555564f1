"""FHIR R4 Condition -> ConditionFact (rulebook §2.5, §10, §12; ``data/conditions.json``).

Concepts: schizophrenia, schizoaffective, suicidal-behaviour, ben, agranulocytosis, myocarditis.
Recognition order: BEN first (project-configured BEN codes, or code text / display containing
"benign ethnic neutropenia", "Duffy-null" or "Duffy null", rulebook §2.5) because a BEN
Condition may also carry a neutropenia code; then SNOMED CT codes, ICD-10-CM categories,
WHO ICD-10 categories; then phrases in the code text or displays.

A Condition whose verificationStatus is refuted or entered-in-error is not a fact and is
skipped; a BEN Condition that is only unconfirmed / provisional / differential is not used
either (policy: BEN lowers the ANC thresholds) and is reported as a data issue. A Condition
that is inactive, resolved or in remission is still a fact with ``active=False`` (a history of
suicidal behaviour counts even when resolved); a missing clinicalStatus reads as active unless
an abatement is recorded. Onset: onsetDateTime, onsetPeriod.start, then recordedDate; a year or
year-month only is read as its first day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from fhir_mappings.codetables import load_table
from fhir_mappings.fhir_values import SNOMED, normalise_text, parse_datetime
from fhir_mappings.mapped import Mapped, read_guarded
from smartapp.domain import ConditionFact

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
_SYSTEMS = {
    SNOMED: "snomed",
    "urn:oid:2.16.840.1.113883.6.96": "snomed",
    ICD10CM: "icd-10-cm",
    "urn:oid:2.16.840.1.113883.6.90": "icd-10-cm",
    ICD10: "icd-10",
    "urn:oid:2.16.840.1.113883.6.3": "icd-10",
}
_ORDER = ("snomed", "icd-10-cm", "icd-10")
_INACTIVE = frozenset({"inactive", "resolved", "remission"})
BEN = "ben"


@dataclass(frozen=True)
class _Rules:
    codes: dict[tuple[str, str], str]
    prefixes: dict[str, tuple[tuple[str, str], ...]]
    texts: tuple[tuple[str, str], ...]
    skip: dict[str, frozenset[str]]


def _compact(code: str) -> str:
    return code.replace(".", "").strip().upper()


@cache
def _rules() -> _Rules:
    codes: dict[tuple[str, str], str] = {}
    prefixes: dict[str, list[tuple[str, str]]] = {}
    texts: list[tuple[str, str]] = []
    skip: dict[str, set[str]] = {}
    for e in load_table("conditions", ("type",)).entries:
        if e["type"] == "code":
            codes[_SYSTEMS.get(e["system"], e["system"]), e["code"]] = e["concept"]
        elif e["type"] == "prefix":
            system = _SYSTEMS.get(e["system"], e["system"])
            prefixes.setdefault(system, []).append((_compact(e["prefix"]), e["concept"]))
        elif e["type"] == "text":
            texts.append((normalise_text(e["text"]), e["concept"]))
        elif e["type"] == "verification":
            for concept in ("*",) if e["concepts"] == "*" else e["concepts"]:
                skip.setdefault(concept, set()).update(e["statuses"])
    texts.sort(key=lambda t: t[1] != BEN)  # BEN phrases first, otherwise table order
    return _Rules(
        codes,
        {s: tuple(sorted(p, key=lambda x: -len(x[0]))) for s, p in prefixes.items()},
        tuple(texts),
        {c: frozenset(s) for c, s in skip.items()},
    )


def _codings(code: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(system label, code, display) of each coding; unknown systems keep their URL."""
    found = []
    codings = code.get("coding")
    for coding in codings if isinstance(codings, list) else ():
        if not isinstance(coding, dict):
            continue
        system, value, display = coding.get("system"), coding.get("code"), coding.get("display")
        label = _SYSTEMS.get(system, system) if isinstance(system, str) else ""
        found.append(
            (
                label,
                value if isinstance(value, str) else "",
                display if isinstance(display, str) else "",
            )
        )
    return found


def _by_code(system: str, value: str, rules: _Rules) -> str | None:
    concept = rules.codes.get((system, value))
    if concept is None and value:
        compact = _compact(value)
        for prefix, candidate in rules.prefixes.get(system, ()):
            if compact.startswith(prefix):
                return candidate
    return concept


def _by_text(texts: list[str], rules: _Rules, only_ben: bool) -> tuple[str, str] | None:
    normalised = [normalise_text(t) for t in texts]
    for phrase, concept in rules.texts:
        if only_ben and concept != BEN:
            return None
        if any(phrase in text for text in normalised):
            return concept, f"text:{phrase.strip()}"
    return None


def recognise_condition(code: Any) -> tuple[str, str] | None:
    """(concept, how it was recognised) for a Condition.code, in the module's order."""
    if not isinstance(code, dict):
        return None
    rules = _rules()
    codings = _codings(code)
    text = code.get("text")
    texts = [d for _, _, d in codings if d] + ([text] if isinstance(text, str) and text else [])
    for system, value, _ in codings:
        if value and rules.codes.get((system, value)) == BEN:
            return BEN, f"{system}:{value}"
    ben_text = _by_text(texts, rules, only_ben=True)
    if ben_text is not None:
        return ben_text
    for wanted in _ORDER:
        for system, value, _ in codings:
            concept = _by_code(system, value, rules) if system == wanted else None
            if concept is not None:
                return concept, f"{system}:{value}"
    return _by_text(texts, rules, only_ben=False)


def _status(element: Any) -> str | None:
    codings = element.get("coding") if isinstance(element, dict) else None
    for coding in codings if isinstance(codings, list) else ():
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            return str(coding["code"])
    return None


def _partial_date(value: Any) -> date | None:
    parsed = parse_datetime(value)
    if parsed is not None:
        return parsed[0].date()
    if isinstance(value, str) and len(value) in (4, 7):
        try:
            return date.fromisoformat(value + ("-01-01" if len(value) == 4 else "-01"))
        except ValueError:
            return None
    return None


def _onset(resource: dict[str, Any]) -> date | None:
    period = resource.get("onsetPeriod")
    for value in (
        resource.get("onsetDateTime"),
        period.get("start") if isinstance(period, dict) else None,
        resource.get("recordedDate"),
    ):
        found = _partial_date(value)
        if found is not None:
            return found
    return None


def _display(code: dict[str, Any]) -> str:
    text = code.get("text")
    if isinstance(text, str) and text:
        return text
    codings = _codings(code)
    return next((d for _, _, d in codings if d), next((v for _, v, _ in codings if v), ""))


def _readable(code: Any) -> bool:
    return isinstance(code, dict) and bool(
        any(v or d for _, v, d in _codings(code)) or code.get("text")
    )


def _map(resource: dict[str, Any], ref: str, out: Mapped) -> None:
    rules = _rules()
    verification = _status(resource.get("verificationStatus"))
    if verification in rules.skip.get("*", ()):
        return
    code = resource.get("code")
    if code is not None and not isinstance(code, dict):
        out.issue(ref, "Condition.code is not a CodeableConcept")
        return
    found = recognise_condition(code)
    if found is None:
        if not _readable(code):
            out.unmapped.append(ref)
        return
    concept, how = found
    if verification in rules.skip.get(concept, ()):
        out.issue(ref, f"{concept} Condition is only '{verification}': not used")
        return
    clinical = _status(resource.get("clinicalStatus"))
    if clinical is None:
        abated = any(k.startswith("abatement") for k in resource)
        active = not abated
    else:
        active = clinical not in _INACTIVE
    display = _display(code) if isinstance(code, dict) else ""
    out.conditions.append(ConditionFact(ref, concept, display, active, _onset(resource), how))


def map_condition(resource: dict[str, Any]) -> Mapped:
    """One Condition -> at most one ConditionFact (see the module docstring for the rules)."""
    out = Mapped()
    map_condition_into(resource, out)
    return out


def map_condition_into(resource: dict[str, Any], out: Mapped) -> None:
    """``map_condition`` adding to ``out``; a malformed Condition leaves only its issue."""
    read_guarded("Condition", resource, out, _map)
