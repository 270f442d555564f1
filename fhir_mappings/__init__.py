"""FHIR R4 JSON -> the domain model of ``smartapp.domain``: codes recognised, units and doses
normalised, unreadable data reported as data issues rather than guessed."""
