"""FHIR R4 Observation and DiagnosticReport -> LabResult, SmokingObservation, RatingScore.

Rulebook §2.6, §4, §5, §6, §9, §10 and §12. Lab codes come from ``data/labs.json`` (LOINC) and
units are normalised by ``units.to_canonical``; smoking status and rating scales are read by
``assessments`` (``data/smoking.json``, ``data/ratings.json``), dates by ``fhir_values``.

Reading rules (safety principle: missing or unreadable data is never normal):
- status entered-in-error / cancelled: skipped without an issue; final, amended, corrected and
  preliminary are used; any other status (registered, unknown, missing) on a result we care
  about is a ``DataIssue``.
- time: effectiveDateTime, effectivePeriod.start, effectiveInstant, then issued; a date-only
  value is midnight UTC with ``date_only``; a dateTime without offset is read as UTC; a year or
  year-month only, or nothing at all, is a ``DataIssue``. Contained results of a
  DiagnosticReport without their own time take the report's.
- value: valueQuantity (a comparator such as ``<0.01`` is dropped and the number used, and kept
  in ``LabResult.original``: a bound is the best reading of a result at a detection limit);
  valueString only when it holds a number *and* a unit (``"1.5 10*9/L"``); no value or a
  dataAbsentReason is a ``DataIssue``. An ANC-coded result in ``%`` is a neutrophil
  percentage and is mapped as ``neutrophil-pct``.
- referenceRange.high, converted like the value (its own unit, else the value's), is the ULN;
  when several normal ranges are given (e.g. by sex) the lowest high is used, which flags
  more, not less. A range in an unreadable unit gives no ULN.
- components of a panel (a CBC with components) map like stand-alone results and keep the
  parent's reference as evidence.
- an Observation with no readable code at all is listed in ``Mapped.unmapped``; a readable
  code we do not use (sodium) is ignored.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from fhir_mappings.assessments import assessment_codes, map_rating, map_smoking, rating_by_text
from fhir_mappings.codetables import load_table
from fhir_mappings.fhir_values import (
    NUMBER_WITH_UNIT,
    UCUM,
    Target,
    absent,
    finite_number,
    parse_datetime,
    system_of,
)
from fhir_mappings.mapped import Mapped, read_guarded
from fhir_mappings.units import UnitError, canonical_unit, concept_units, to_canonical, unit_kind
from smartapp.domain import LabResult

SKIPPED_STATUSES = frozenset({"entered-in-error", "cancelled"})
USABLE_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})
_PERCENT_MEANS = {"anc": "neutrophil-pct"}


@cache
def _code_targets() -> dict[tuple[str, str], Target]:
    targets: dict[tuple[str, str], Target] = {}
    for e in load_table("labs", ("system", "code", "concept")).entries:
        label = concept_units(e["concept"]).label  # every lab concept needs unit rules
        targets[e["system"], e["code"]] = Target(
            "lab", e["concept"], label, e["code"], e.get("fasting", False)
        )
    targets.update(assessment_codes())
    return targets


def recognise(code: Any) -> tuple[Target | None, bool]:
    """(what the CodeableConcept means, whether it carried any readable code or text)."""
    if not isinstance(code, dict):
        return None, False
    texts: list[str] = []
    readable = False
    codings = code.get("coding")
    table = _code_targets()
    for coding in codings if isinstance(codings, list) else ():
        if not isinstance(coding, dict):
            continue
        value = coding.get("code")
        if isinstance(value, str) and value:
            hit = table.get((system_of(coding), value))
            if hit is not None:
                return hit, True
            readable = True
        display = coding.get("display")
        if isinstance(display, str) and display:
            texts.append(display)
    text = code.get("text")
    if isinstance(text, str) and text:
        texts.append(text)
    return rating_by_text(texts), readable or bool(texts)


def report_time(resource: dict[str, Any]) -> tuple[datetime, bool] | str | None:
    """The time of an Observation or DiagnosticReport in rulebook order (effectiveDateTime,
    effectivePeriod.start, effectiveInstant, issued); ``None`` when absent, a problem when
    unreadable."""
    period = resource.get("effectivePeriod")
    if "effectiveDateTime" in resource:
        field, value = "effectiveDateTime", resource["effectiveDateTime"]
    elif isinstance(period, dict) and "start" in period:
        field, value = "effectivePeriod.start", period["start"]
    elif "effectiveInstant" in resource:
        field, value = "effectiveInstant", resource["effectiveInstant"]
    elif "issued" in resource:
        field, value = "issued", resource["issued"]
    else:
        return None
    parsed = parse_datetime(value)
    return parsed or f"{field} '{str(value)[:40]}' is not a full date or date-time"


def _quantity(holder: dict[str, Any], label: str) -> tuple[float, list[str], str] | str:
    """(number, candidate units, original text) of a lab value, or the problem."""
    q = holder.get("valueQuantity")
    if q is not None:
        if not isinstance(q, dict):
            return f"{label}: valueQuantity is not an object"
        number = finite_number(q.get("value"))
        if number is None:
            return f"{label}: valueQuantity has no numeric value"
        units = []
        code, unit = q.get("code"), q.get("unit")
        if isinstance(code, str) and code and q.get("system") in (UCUM, None):
            units.append(code)
        if isinstance(unit, str) and unit.strip() and unit not in units:
            units.append(unit)
        comparator = q.get("comparator")
        prefix = comparator if isinstance(comparator, str) else ""
        return number, units, f"{prefix}{q['value']} {units[-1] if units else ''}".strip()
    text = holder.get("valueString")
    if isinstance(text, str):
        match = NUMBER_WITH_UNIT.fullmatch(text)
        if match is None or not match.group(3):
            return f"{label}: value '{text[:40]}' is not a number with a unit"
        return float(match.group(2)), [match.group(3)], text.strip()
    return absent(holder, label)


def _convert(concept: str, value: float, units: list[str]) -> tuple[float, str] | str:
    problem = ""
    for unit in units:
        try:
            return to_canonical(concept, value, unit), unit
        except UnitError as exc:
            problem = problem or str(exc)
    return problem


def _uln(holder: dict[str, Any], concept: str, value_unit: str) -> float | None:
    """Lowest referenceRange.high among normal ranges, in the canonical unit (None if none)."""
    ranges = holder.get("referenceRange")
    best: float | None = None
    for rr in ranges if isinstance(ranges, list) else ():
        if not isinstance(rr, dict) or not isinstance(rr.get("high"), dict):
            continue
        kind = rr.get("type")
        if kind is not None and not _is_normal_range(kind):
            continue
        high = rr["high"]
        number = finite_number(high.get("value"))
        if number is None:
            continue
        own = [u for u in (high.get("code"), high.get("unit")) if isinstance(u, str) and u]
        converted = _convert(concept, number, own or [value_unit])
        if isinstance(converted, tuple) and (best is None or converted[0] < best):
            best = converted[0]
    return best


def _is_normal_range(kind: Any) -> bool:
    codings = kind.get("coding") if isinstance(kind, dict) else None
    codes = (
        {c.get("code") for c in codings if isinstance(c, dict)}
        if isinstance(codings, list)
        else set()
    )
    return "normal" in codes


def _lab(
    holder: dict[str, Any], target: Target, ref: str, when: tuple[datetime, bool], out: Mapped
) -> None:
    concept, label = target.name, target.label
    read = _quantity(holder, label)
    if isinstance(read, str):
        out.issue(ref, read)
        return
    value, units, original = read
    if not units:
        out.issue(ref, f"{label}: no unit")
        return
    if concept in _PERCENT_MEANS and unit_kind(units[0]) == "fraction":
        concept = _PERCENT_MEANS[concept]
    if value < 0:
        out.issue(ref, f"{label}: negative value {value}")
        return
    converted = _convert(concept, value, units)
    if isinstance(converted, str):
        out.issue(ref, converted)
        return
    canonical, unit = converted
    out.labs.append(
        LabResult(
            ref=ref,
            concept=concept,
            value=canonical,
            unit=canonical_unit(concept),
            when=when[0],
            date_only=when[1],
            uln=_uln(holder, concept, unit),
            original=original,
            code=target.code,
            fasting=target.fasting,
        )
    )


def _labels(parts: list[tuple[dict[str, Any], Target]]) -> str:
    return ", ".join(sorted({target.label for _, target in parts}))


def _map_into(
    resource: dict[str, Any], ref: str, out: Mapped, fallback: tuple[datetime, bool] | None
) -> bool:
    """Map one Observation into ``out``; False when it carried no readable code at all."""
    status = resource.get("status")
    if isinstance(status, str) and status in SKIPPED_STATUSES:
        return True
    code = resource.get("code")
    if code is not None and not isinstance(code, dict):
        out.issue(ref, "Observation.code is not a CodeableConcept")
        return True
    target, readable = recognise(code)
    parts: list[tuple[dict[str, Any], Target]] = [(resource, target)] if target else []
    components = resource.get("component")
    for component in components if isinstance(components, list) else ():
        if isinstance(component, dict):
            found, seen = recognise(component.get("code"))
            readable = readable or seen
            if found is not None:
                parts.append((component, found))
    if not parts:
        return readable
    if not isinstance(status, str) or status not in USABLE_STATUSES:
        out.issue(ref, f"{_labels(parts)}: status '{status}' is not a usable result")
        return True
    when = report_time(resource)
    if when is None:
        when = fallback
    if not isinstance(when, tuple):
        out.issue(ref, f"{_labels(parts)}: {when or 'no effective time or issued date'}")
        return True
    for holder, found in parts:
        if found.kind == "lab":
            _lab(holder, found, ref, when, out)
        elif found.kind == "smoking":
            map_smoking(holder, ref, when, out)
        else:
            map_rating(holder, found, ref, when, out)
    return True


def map_observation(resource: dict[str, Any], *, report: dict[str, Any] | None = None) -> Mapped:
    """One Observation (with its components) -> labs, smoking status and rating scores.

    ``report``: the DiagnosticReport that lists this Observation in ``result``, if known; its
    time is used when the Observation has none (reports often carry the only time)."""
    out = Mapped()
    map_observation_into(resource, out, report=report)
    return out


def map_observation_into(
    resource: dict[str, Any], out: Mapped, *, report: dict[str, Any] | None = None
) -> None:
    """``map_observation`` adding to ``out`` (one ``Mapped`` for a whole record). A malformed
    Observation leaves only its issue: what it had added is taken back."""

    def read(observation: dict[str, Any], ref: str, into: Mapped) -> None:
        when = report_time(report) if isinstance(report, dict) else None
        if not _map_into(observation, ref, into, when if isinstance(when, tuple) else None):
            into.unmapped.append(ref)

    read_guarded("Observation", resource, out, read)


def map_diagnostic_report(resource: dict[str, Any]) -> Mapped:
    """The contained results of a DiagnosticReport (``result`` "#id", and their ``hasMember``
    "#id"), with the report's reference as evidence and the report's time when a result has
    none. Results referenced by a literal reference are mapped on their own by the assembler."""
    out = Mapped()
    map_diagnostic_report_into(resource, out)
    return out


def map_diagnostic_report_into(resource: dict[str, Any], out: Mapped) -> None:
    """``map_diagnostic_report`` adding to ``out``; a malformed report leaves only its issue."""
    read_guarded("DiagnosticReport", resource, out, _map_report)


def _local_refs(items: Any) -> list[str]:
    refs = []
    for item in items if isinstance(items, list) else ():
        target = item.get("reference") if isinstance(item, dict) else None
        if isinstance(target, str) and target.startswith("#"):
            refs.append(target[1:])
    return refs


def _map_report(resource: dict[str, Any], ref: str, out: Mapped) -> None:
    status = resource.get("status")
    if isinstance(status, str) and status in SKIPPED_STATUSES:
        return
    contained = resource.get("contained")
    observations = {
        c["id"]: c
        for c in (contained if isinstance(contained, list) else ())
        if isinstance(c, dict)
        and c.get("resourceType") == "Observation"
        and isinstance(c.get("id"), str)
    }
    when = report_time(resource)
    fallback = when if isinstance(when, tuple) else None
    pending, seen, unreadable = _local_refs(resource.get("result")), set(), False
    while pending:
        local = pending.pop(0)
        observation = observations.get(local)
        if observation is None or local in seen:
            continue
        seen.add(local)
        unreadable |= not _map_into(observation, ref, out, fallback)
        pending.extend(_local_refs(observation.get("hasMember")))
    if unreadable:
        out.unmapped.append(ref)
