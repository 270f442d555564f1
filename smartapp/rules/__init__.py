"""The clinical core: pure functions of (patient record, as_of, profile) -> findings."""
