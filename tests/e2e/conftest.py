"""The end-to-end fixtures: a SMART authorization server (tests/oauth_server_fixture.py) and
headless Chromium (tests/browser_fixture.py); ``fhir_server`` comes from tests/conftest.py."""

from tests.browser_fixture import browser_page, playwright_driver
from tests.oauth_server_fixture import oauth_server_factory

__all__ = ["browser_page", "oauth_server_factory", "playwright_driver"]
