"""Terminology used by the synthetic patients: systems and codes from rulebook §12.

Only codes listed in the rulebook (or standard HL7 code systems) appear here. Drugs whose
RxNorm code the rulebook does not confirm (laxatives, benztropine, haloperidol decanoate as a
product) are written as text only, as many EHRs send them.
"""

from __future__ import annotations

from typing import Final

LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM: Final = "http://unitsofmeasure.org"
GTS: Final = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
OBS_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/condition-category"
DOSE_RATE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/dose-rate-type"
ROUTE_SNOMED: Final = SNOMED
MRN_SYSTEM: Final = "http://hospital.example.org/mrn"
FULL_URL_BASE: Final = "http://example.org/fhir"

#: Lab tests: key -> (LOINC code, LOINC display). Rulebook §12.
LAB_CODES: Final[dict[str, tuple[str, str]]] = {
    "anc": ("751-8", "Neutrophils [#/volume] in Blood by Automated count"),
    "anc-manual": ("753-4", "Neutrophils [#/volume] in Blood by Manual count"),
    "wbc": ("6690-2", "Leukocytes [#/volume] in Blood by Automated count"),
    "neutrophil-pct": ("770-8", "Neutrophils/100 leukocytes in Blood by Automated count"),
    "clozapine": ("6896-5", "Clozapine [Mass/volume] in Serum or Plasma"),
    "norclozapine": ("10992-6", "Norclozapine [Mass/volume] in Serum or Plasma"),
    "troponin-i": ("10839-9", "Troponin I.cardiac [Mass/volume] in Serum or Plasma"),
    "troponin-t": ("6598-7", "Troponin T.cardiac [Mass/volume] in Serum or Plasma"),
    "hs-troponin-i": (
        "89579-7",
        "Troponin I.cardiac [Mass/volume] in Serum or Plasma by High sensitivity method",
    ),
    "hs-troponin-t": (
        "67151-1",
        "Troponin T.cardiac [Mass/volume] in Serum or Plasma by High sensitivity method",
    ),
    "crp": ("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma"),
    "weight": ("29463-7", "Body weight"),
    "bmi": ("39156-5", "Body mass index (BMI) [Ratio]"),
    "hba1c": ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
    "glucose-fasting": ("1558-6", "Fasting glucose [Mass/volume] in Serum or Plasma"),
    "ldl": ("2089-1", "Cholesterol in LDL [Mass/volume] in Serum or Plasma"),
    "triglycerides": ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma"),
    "smoking": ("72166-2", "Tobacco smoking status"),
}

#: Smoking answers: key -> (LOINC answer, SNOMED code, display). Rulebook §12.
SMOKING_ANSWERS: Final[dict[str, tuple[str, str, str]]] = {
    "every-day": ("LA18976-3", "449868002", "Current every day smoker"),
    "some-day": ("LA18977-1", "428041000124106", "Current some day smoker"),
    "former": ("LA15920-4", "8517006", "Former smoker"),
    "never": ("LA18978-9", "266919005", "Never smoker"),
    "heavy": ("LA18981-3", "428071000124103", "Heavy tobacco smoker"),
    "light": ("LA18982-1", "428061000124105", "Light tobacco smoker"),
}

#: Conditions: key -> ((SNOMED code, display), (ICD-10-CM code, display) or None).
CONDITIONS: Final[dict[str, tuple[tuple[str, str], tuple[str, str] | None]]] = {
    "schizophrenia": (("58214004", "Schizophrenia"), ("F20.9", "Schizophrenia, unspecified")),
    "paranoid-schizophrenia": (
        ("58214004", "Schizophrenia"),
        ("F20.0", "Paranoid schizophrenia"),
    ),
    "schizoaffective": (
        ("68890003", "Schizoaffective disorder"),
        ("F25.0", "Schizoaffective disorder, bipolar type"),
    ),
    "suicide-attempt": (
        ("82313006", "Suicide attempt"),
        ("T14.91XA", "Suicide attempt, initial encounter"),
    ),
}

#: Clozapine products (RxNorm SCD, rulebook §12): key -> (code, display, strength mg).
CLOZAPINE_PRODUCTS: Final[dict[str, tuple[str, str, float]]] = {
    "12.5-odt": ("721773", "clozapine 12.5 MG Disintegrating Oral Tablet", 12.5),
    "25": ("197536", "clozapine 25 MG Oral Tablet", 25.0),
    "50": ("429212", "clozapine 50 MG Oral Tablet", 50.0),
    "100": ("197535", "clozapine 100 MG Oral Tablet", 100.0),
    "200": ("309374", "clozapine 200 MG Oral Tablet", 200.0),
}

#: RxNorm ingredient codes confirmed by rulebook §12: ingredient -> code.
RXNORM_INGREDIENTS: Final[dict[str, str]] = {
    "clozapine": "2626",
    "haloperidol": "5093",
    "perphenazine": "8076",
    "risperidone": "35636",
    "olanzapine": "61381",
    "quetiapine": "51272",
    "aripiprazole": "89013",
    "fluvoxamine": "42355",
    "ciprofloxacin": "2551",
    "carbamazepine": "2002",
    "valproic acid": "11118",
    "divalproex": "266856",
    "phenytoin": "8183",
}

#: BID/TID/QD timing codes (HL7 v3 GTSAbbreviation).
TIMING_CODES: Final[dict[str, tuple[str, str, int]]] = {
    "QD": ("QD", "daily", 1),
    "BID": ("BID", "twice a day", 2),
    "TID": ("TID", "three times a day", 3),
}
