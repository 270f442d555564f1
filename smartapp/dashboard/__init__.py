"""The clinician dashboard of the SMART app (issue 4 item 4; design.md Contract 3): ``views``
(the pages), ``data`` (the launched patient's FHIR data), ``page`` (what the page shows),
``charts`` / ``level_chart`` / ``clozapine_timeline`` / ``svg`` (server-side SVG), ``calendar``
(what is due when), ``pharmacology`` (rulebook §11) and ``text`` (finding text as safe HTML)."""
