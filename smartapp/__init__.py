"""TRS and clozapine safety: SMART on FHIR app and CDS Hooks service."""

__version__ = "0.1.0"
