"""Synthetic patients as FHIR R4 Bundles: the golden scenarios (``scenarios``) and large
longitudinal patients for benchmarks (``longitudinal``)."""
