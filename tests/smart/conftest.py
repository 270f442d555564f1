from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from flask import Flask

from tests.smart import flow


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return flow.make_app(tmp_path)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
