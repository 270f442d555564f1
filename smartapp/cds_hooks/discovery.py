"""CDS Hooks discovery: the three services and their prefetch templates (CDS Hooks 2.0
§Discovery, §Prefetch template; design.md Contract 2).

Templates use only CDS Hooks 2.0 prefetch tokens: ``{{context.<field>}}`` for a top-level string
field of the hook's context, and the user tokens derived from ``context.userId``
(``{{userPractitionerId}}``, ``{{userPractitionerRoleId}}``, ``{{userPatientId}}``,
``{{userRelatedPersonId}}``). ``{{today()}}`` and FHIRPath belong to the 3.0 ballot and are not
used. The lab search lists every LOINC code the lab, smoking and rating code tables recognise
(fhir_mappings/data), built when this module is imported so that a code added to a table is
asked for too; when the list would make a URL too long it is split over ``labs``, ``labs2``, ...
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fhir_mappings.codetables import load_table


class PrefetchError(ValueError):
    """A prefetch template cannot be expanded for this request (a token has no value)."""


PATIENT_ID = "{{context.patientId}}"
# Ask for large pages: a 10-year patient holds ~1,500 Observations, and every page is a round
# trip. Servers cap _count at their own maximum (FHIR R4 search §3.1.1.5.6), which is fine.
PAGE_SIZE = 1000
# Keep each template short enough that base URL + template stays under ~2,000 characters, a
# limit some proxies and servers still apply to GET URLs.
MAX_TEMPLATE_CHARS = 1800
LAB_CATEGORY = "http://terminology.hl7.org/CodeSystem/v2-0074|LAB"
SURVEY_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category|survey"

USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}
TOKEN = re.compile(r"\{\{(.*?)\}\}")
CONTEXT_TOKEN = re.compile(r"context\.[A-Za-z][A-Za-z0-9]*")
# A substituted value is a FHIR id (R4 §2.24.0.1 id) or Type/id, so it cannot add query
# parameters or change the path of the URL it is placed in (".." is not an id here).
FHIR_ID = re.compile(r"(?:[A-Z][A-Za-z]{1,63}/)?(?!\.+$)[A-Za-z0-9\-.]{1,64}")


@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: str
    description: str
    prefetch: Mapping[str, str]

    def as_json(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": dict(self.prefetch),
        }


def _search(resource_type: str, *params: str) -> str:
    query = "&".join((f"patient={PATIENT_ID}", *params, f"_count={PAGE_SIZE}"))
    return f"{resource_type}?{query}"


#: Observation searches run in parallel, one per group, so that a long history answers in one
#: page per query instead of pages fetched one after another: blood counts, then drug levels
#: and cardiac markers; everything else (metabolic, smoking, rating scales) forms the last group.
LAB_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"anc", "wbc", "neutrophil-pct", "band-pct"}),
    frozenset({"clozapine", "norclozapine", "clozapine-total", "troponin-i", "troponin-t", "crp"}),
)


def _group_of(concept: str) -> int:
    return next((i for i, g in enumerate(LAB_GROUPS) if concept in g), len(LAB_GROUPS))


def observation_code_groups() -> list[list[str]]:
    """``system|code`` of every Observation code the mappings recognise, in LAB_GROUPS order:
    labs, the smoking status observation codes, and any project-configured rating codings."""
    groups: list[list[str]] = [[] for _ in range(len(LAB_GROUPS) + 1)]
    for e in load_table("labs").entries:
        groups[_group_of(e["concept"])].append(f"{e['system']}|{e['code']}")
    rest = groups[-1]
    rest += [
        f"{e['system']}|{e['code']}"
        for e in load_table("smoking").entries
        if e.get("type") == "observation"
    ]
    for entry in load_table("ratings").entries:
        rest += [f"{c['system']}|{c['code']}" for c in entry.get("codes", ())]
    return [list(dict.fromkeys(g)) for g in groups if g]


def observation_codes() -> list[str]:
    return [code for group in observation_code_groups() for code in group]


def _code_chunks(codes: Iterable[str], limit: int) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    for code in codes:
        candidate = [*chunks[-1], code]
        if chunks[-1] and len(_search("Observation", "code=" + ",".join(candidate))) > limit:
            chunks.append([code])
        else:
            chunks[-1] = candidate
    return [c for c in chunks if c]


def lab_templates(limit: int = MAX_TEMPLATE_CHARS) -> dict[str, str]:
    """``labs``, ``labs2``, ``labs3``...: one search per LAB_GROUPS group, each split further
    when its code list does not fit one URL."""
    chunks = [c for group in observation_code_groups() for c in _code_chunks(group, limit)]
    return {
        ("labs" if i == 0 else f"labs{i + 1}"): _search("Observation", "code=" + ",".join(chunk))
        for i, chunk in enumerate(chunks)
    }


def _prefetch() -> dict[str, str]:
    return {
        "patient": f"Patient/{PATIENT_ID}",
        "medicationRequests": _search("MedicationRequest", "_include=MedicationRequest:medication"),
        "medicationDispenses": _search(
            "MedicationDispense", "_include=MedicationDispense:medication"
        ),
        "medicationAdministrations": _search(
            "MedicationAdministration", "_include=MedicationAdministration:medication"
        ),
        **lab_templates(),
        # Lab reports: results often carry no time of their own, or sit contained in the report.
        "labReports": _search("DiagnosticReport", f"category={LAB_CATEGORY}"),
        # Rating scales (PANSS, BPRS, CGI-S) have no confirmed LOINC code (ratings.json), so
        # they are found by category and recognised by name.
        "assessments": _search("Observation", f"category={SURVEY_CATEGORY}"),
        "conditions": _search("Condition"),
    }


PREFETCH = _prefetch()
LAB_KEYS = tuple(k for k in PREFETCH if re.fullmatch(r"labs\d*", k))
MEDICATION_REQUEST_KEYS = ("medicationRequests",)

SERVICES = (
    Service(
        id="clozapine-patient-view",
        hook="patient-view",
        title="Clozapine safety and treatment-resistant schizophrenia",
        description=(
            "When a chart opens: clozapine ANC monitoring (latest result against the US or UK "
            "thresholds, monitoring frequency, next due date and whether it is overdue), "
            "myocarditis monitoring in the first weeks, clozapine levels and the "
            "clozapine/norclozapine ratio, smoking changes, interacting drugs, constipation and "
            "metabolic monitoring, and whether two adequate antipsychotic trials have failed "
            "(treatment-resistant schizophrenia)."
        ),
        prefetch=PREFETCH,
    ),
    Service(
        id="clozapine-order-select",
        hook="order-select",
        title="Clozapine order check (on selection)",
        description=(
            "As an order is selected: for a new clozapine order, baseline ANC eligibility, "
            "start dose and re-titration after a break; for a drug ordered alongside clozapine "
            "(fluvoxamine, ciprofloxacin, carbamazepine, valproate, anticholinergics...), the "
            "interaction; for a non-clozapine antipsychotic, whether the patient meets "
            "treatment-resistant schizophrenia criteria and clozapine should be considered."
        ),
        prefetch=PREFETCH,
    ),
    Service(
        id="clozapine-order-sign",
        hook="order-sign",
        title="Clozapine order check (before signing)",
        description=(
            "Before orders are signed: baseline ANC eligibility, start dose, titration and "
            "maximum dose for clozapine orders, interactions between the draft orders and "
            "clozapine, monitoring that is due, and treatment-resistant schizophrenia status "
            "when another antipsychotic is ordered."
        ),
        prefetch=PREFETCH,
    ),
)


def discovery_document() -> dict[str, Any]:
    """The body of ``GET /cds-services`` (a fresh copy each call)."""
    return {"services": [s.as_json() for s in SERVICES]}


def service(service_id: str) -> dict[str, Any] | None:
    """One service's discovery entry, or None for an unknown id."""
    for s in SERVICES:
        if s.id == service_id:
            return copy.deepcopy(s.as_json())
    return None


def prefetch_templates(service_id: str) -> dict[str, str] | None:
    """The prefetch templates of a service, or None for an unknown id."""
    found = service(service_id)
    return dict(found["prefetch"]) if found else None


def template_tokens(template: str) -> list[str]:
    """The token names in a template, e.g. ``["context.patientId"]``."""
    return [t.strip() for t in TOKEN.findall(template)]


def is_v2_token(name: str) -> bool:
    """A CDS Hooks 2.0 prefetch token: ``context.<field>`` or one of the four user tokens."""
    return bool(CONTEXT_TOKEN.fullmatch(name)) or name in USER_TOKENS


def _token_value(name: str, context: Mapping[str, Any], user: str | None) -> str:
    if CONTEXT_TOKEN.fullmatch(name):
        value = context.get(name.removeprefix("context."))
        if not isinstance(value, str) or not value:
            raise PrefetchError(f"prefetch token {name} has no value in the request context")
    elif name in USER_TOKENS:
        rtype = USER_TOKENS[name]
        who = user if user is not None else context.get("userId")
        if not isinstance(who, str) or not who.startswith(f"{rtype}/"):
            raise PrefetchError(f"prefetch token {name}: the user is not a {rtype}")
        value = who.removeprefix(f"{rtype}/")
    else:
        raise PrefetchError(f"prefetch token {name!r} is not a CDS Hooks 2.0 token")
    if not FHIR_ID.fullmatch(value):
        raise PrefetchError(f"prefetch token {name}: the value is not a FHIR id")
    return value


def expand(template: str, context: Mapping[str, Any], user: str | None) -> str:
    """Substitute the prefetch tokens of ``template`` (CDS Hooks 2.0 §Prefetch tokens).

    ``user`` is the hook's ``context.userId`` (``Practitioner/123``...); None falls back to
    ``context["userId"]``. Raises ``PrefetchError`` when a token has no value, is not a 2.0
    token, or its value is not a FHIR id: the caller then treats that key as missing."""
    if "{{" in TOKEN.sub("", template) or "}}" in TOKEN.sub("", template):
        raise PrefetchError("prefetch template has an unbalanced token")
    return TOKEN.sub(lambda m: _token_value(m.group(1).strip(), context, user), template)
