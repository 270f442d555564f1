"""A local EHR (the sandbox, the benchmark) serves its JWKS over http on loopback: allowed only
when CDS_JWKS_ALLOW_LOOPBACK_HTTP is on; everything else stays https only."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import responses

from tests.cds_hooks import jwt_keys as k
from tests.cds_hooks import requests_builder as rb

LOCAL_ISS = "http://127.0.0.1:9/ehr"
LOCAL_JWKS = "http://127.0.0.1:9/ehr/jwks.json"
PATH = "/cds-services"


@pytest.mark.parametrize("allowed, status", [(True, 200), (False, 401)])
def test_loopback_http_jwks_only_when_allowed(tmp_path: Path, allowed: bool, status: int) -> None:
    key = k.ec_key()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(LOCAL_JWKS, json=k.jwks(key))
        app = rb.make_app(
            tmp_path, CDS_VERIFY_JWT=True, CDS_JWKS_ALLOW_LOOPBACK_HTTP=allowed,
            CDS_TRUSTED_ISSUERS={LOCAL_ISS: {"jwks_url": LOCAL_JWKS}},
        )  # fmt: skip
        token = k.sign(
            key, k.claims("http://localhost" + PATH, iss=LOCAL_ISS, now=datetime.now(UTC))
        )
        response = app.test_client().get(PATH, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status
