"""CDS Hooks 2.0 service (design.md, Contract 2): discovery, hook calls, feedback."""
