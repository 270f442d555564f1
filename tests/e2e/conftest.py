"""The end-to-end tests use the SMART authorization server (tests/oauth_server_fixture.py),
headless Chromium (tests/browser_fixture.py) and the FHIR server, all registered as plugins in
tests/conftest.py."""
