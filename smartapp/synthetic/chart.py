"""A patient's chart under construction: stable ids, dates relative to ``as_of``, and the
clinical entries the scenarios are written in (an ANC, a clozapine order, a smoking status).

Offsets are whole days relative to the patient's ``as_of`` (``-7`` = a week before). Nothing
reads the clock, so every bundle is the same on every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from smartapp.synthetic import builders as b
from smartapp.synthetic import terms
from smartapp.synthetic.builders import Json

#: ANC reference ranges per unit (low, high), the way labs print them.
_ANC_RANGES = {"10*9/L": (1.5, 8.0), "10*3/uL": (1.5, 8.0), "/uL": (1500.0, 8000.0)}
_WBC_RANGES = {"10*9/L": (4.0, 11.0), "10*3/uL": (4.0, 11.0), "/uL": (4000.0, 11000.0)}


@dataclass(frozen=True)
class Dose:
    """A clozapine product taken as ``tablets`` per administration on a timing code."""

    product: str
    tablets: float
    timing: str = "BID"

    @property
    def daily_mg(self) -> float:
        per_day = terms.TIMING_CODES[self.timing][2]
        return terms.CLOZAPINE_PRODUCTS[self.product][2] * self.tablets * per_day


@dataclass
class Chart:
    name: str
    as_of: date
    family: str
    given: str
    gender: str = "female"
    birth_date: str = "1990-01-01"
    resources: list[Json] = field(default_factory=list)
    search_modes: dict[str, str] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.name)  # noqa: S311 - reproducible test data, not secrets
        self.add(b.patient(self.name, self.family, self.given, self.gender, self.birth_date))

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def subject(self) -> str:
        return f"Patient/{self.name}"

    def new_id(self, tag: str) -> str:
        n = self._counts.get(tag, 0) + 1
        self._counts[tag] = n
        return f"{self.name}-{tag}{n}"

    def add(self, resource: Json) -> Json:
        self.resources.append(resource)
        return resource

    def day(self, offset: int) -> str:
        return (self.as_of + timedelta(days=offset)).isoformat()

    def at(self, offset: int, hour: int = 8, minute: int = 0) -> str:
        return f"{self.day(offset)}T{hour:02d}:{minute:02d}:00Z"

    def bundle(self, kind: str = "collection") -> Json:
        return b.bundle(
            self.name,
            self.resources,
            timestamp=self.at(0, 12),
            kind=kind,
            search_modes=self.search_modes,
        )

    # -- observations -----------------------------------------------------------------------
    def lab(
        self,
        key: str,
        offset: int,
        value: float,
        unit: str,
        *,
        ucum_code: str | None = None,
        low: float | None = None,
        high: float | None = None,
        hour: int = 8,
        minute: int = 0,
        status: str = "final",
        category: str = "laboratory",
        tag: str | None = None,
    ) -> Json:
        code, display = terms.LAB_CODES[key]
        code_ucum = ucum_code if ucum_code is not None else unit
        rr = b.reference_range(low, high, unit, code_ucum) if (low, high) != (None, None) else None
        return self.add(
            b.observation(
                self.new_id(tag or key.split("-")[0]),
                self.subject,
                b.concept(display, b.coding(terms.LOINC, code, display)),
                self.at(offset, hour, minute),
                category=category,
                value={"valueQuantity": b.quantity(value, unit, code_ucum)},
                reference_range=rr,
                status=status,
                issued=self.at(offset, min(hour + 2, 23), minute),
            )
        )

    def anc(
        self,
        offset: int,
        value: float,
        unit: str = "10*9/L",
        *,
        hour: int = 8,
        minute: int = 0,
        status: str = "final",
    ) -> Json:
        low, high = _ANC_RANGES[unit]
        return self.lab(
            "anc", offset, value, unit, low=low, high=high, hour=hour, minute=minute, status=status
        )

    def wbc(self, offset: int, value: float, unit: str = "10*9/L", *, hour: int = 8) -> Json:
        low, high = _WBC_RANGES[unit]
        return self.lab("wbc", offset, value, unit, low=low, high=high, hour=hour)

    def neutrophil_pct(self, offset: int, value: float, *, hour: int = 8) -> Json:
        return self.lab(
            "neutrophil-pct", offset, value, "%", low=40, high=75, hour=hour, tag="neutpct"
        )

    def troponin(self, offset: int, value: float, *, uln: float = 26, hour: int = 9) -> Json:
        """High-sensitivity troponin I in ng/L with the assay's 99th-percentile ULN."""
        return self.lab("hs-troponin-i", offset, value, "ng/L", high=uln, hour=hour, tag="trop")

    def crp(self, offset: int, value: float, *, hour: int = 9) -> Json:
        return self.lab("crp", offset, value, "mg/L", high=5, hour=hour)

    def levels(
        self, offset: int, clozapine: float, norclozapine: float, unit: str = "ng/mL"
    ) -> None:
        """A trough clozapine and norclozapine pair from the same specimen (07:30)."""
        self.lab("clozapine", offset, clozapine, unit, hour=7, minute=30, tag="cloz-level")
        self.lab("norclozapine", offset, norclozapine, unit, hour=7, minute=30, tag="norcloz")

    def weight(self, offset: int, kg: float, height_m: float = 1.70) -> None:
        self.lab("weight", offset, kg, "kg", category="vital-signs", hour=10)
        bmi = round(kg / height_m**2, 1)
        self.lab("bmi", offset, bmi, "kg/m2", category="vital-signs", hour=10)

    def metabolic_panel(self, offset: int) -> None:
        """Fasting HbA1c, glucose and lipids (rulebook §9)."""
        r = self.rng
        self.lab("hba1c", offset, round(r.uniform(5.2, 5.9), 1), "%", high=5.7, hour=8)
        self.lab(
            "glucose-fasting", offset, r.randint(82, 99), "mg/dL", low=70, high=99, tag="glucose"
        )
        self.lab("ldl", offset, r.randint(90, 128), "mg/dL", high=130)
        self.lab("triglycerides", offset, r.randint(95, 160), "mg/dL", high=150, tag="tg")

    def smoking(self, offset: int, answer: str) -> Json:
        loinc_answer, sct, display = terms.SMOKING_ANSWERS[answer]
        code, code_display = terms.LAB_CODES["smoking"]
        value = b.concept(
            display,
            b.coding(terms.LOINC, loinc_answer, display),
            b.coding(terms.SNOMED, sct, display),
        )
        return self.add(
            b.observation(
                self.new_id("smoking"),
                self.subject,
                b.concept(code_display, b.coding(terms.LOINC, code, code_display)),
                self.at(offset, 11),
                category="social-history",
                value={"valueCodeableConcept": value},
            )
        )

    def panss(self, offset: int, total: int) -> Json:
        """PANSS total, recognised by text: no LOINC code confirmed offline."""
        return self.add(
            b.observation(
                self.new_id("panss"),
                self.subject,
                b.concept("PANSS total score"),
                self.at(offset, 14),
                category="survey",
                value={"valueQuantity": b.quantity(total, "{score}")},
            )
        )

    # -- conditions -------------------------------------------------------------------------
    def diagnosis(self, key: str, onset: int, *, clinical_status: str = "active") -> Json:
        (sct, sct_display), icd = terms.CONDITIONS[key]
        codings = [b.coding(terms.SNOMED, sct, sct_display)]
        if icd:
            codings.append(b.coding(terms.ICD10CM, icd[0], icd[1]))
        return self.add(
            b.condition(
                self.new_id("cond"),
                self.subject,
                b.concept(icd[1] if icd else sct_display, *codings),
                self.day(onset),
                clinical_status=clinical_status,
                category="encounter-diagnosis",
            )
        )

    def text_condition(self, text: str, onset: int) -> Json:
        """A Condition known only by its text (BEN has no SNOMED CT or LOINC concept)."""
        return self.add(
            b.condition(self.new_id("cond"), self.subject, b.concept(text), self.day(onset))
        )

    # -- medications ------------------------------------------------------------------------
    def order(
        self,
        medication: Json,
        dosages: list[Json],
        *,
        authored: int,
        status: str,
        contained: list[Json] | None = None,
        tag: str = "medreq",
    ) -> Json:
        return self.add(
            b.medication_request(
                self.new_id(tag),
                self.subject,
                medication,
                dosages,
                status=status,
                authored=self.at(authored, 10),
                contained=contained,
            )
        )


def status_for(chart: Chart, end: int | None, draft: bool = False) -> str:
    """An order's status from its end offset: ended orders are completed."""
    if draft:
        return "draft"
    return "completed" if end is not None and end <= 0 else "active"
