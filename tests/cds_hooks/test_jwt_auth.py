"""CDS client JWT verification (CDS Hooks 2.0 Trusting CDS Clients; standards-checklist.md
"Security"): every rejection is a JwtRejected with a reason, never another exception."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from smartapp.cds_hooks.jwt_auth import (
    CdsJwtVerifier,
    InMemoryReplayGuard,
    JwtRejected,
    VerifiedClient,
)
from tests.cds_hooks import jwt_keys as k
from tests.cds_hooks.jwt_keys import Clock

URL = k.SERVICE_URL


def bearer(token: str) -> str:
    return f"Bearer {token}"


def rejected(verifier: CdsJwtVerifier, token: str, aud: str = URL) -> JwtRejected:
    with pytest.raises(JwtRejected) as caught:
        verifier.verify(bearer(token), aud)
    return caught.value


# --- accepted tokens -------------------------------------------------------------------------


def test_sandbox_es384_token_is_accepted() -> None:
    token = k.sandbox_token(jti="sandbox-jti-1")
    client = k.verifier().verify(bearer(token), URL)
    assert client == VerifiedClient(
        issuer=k.SANDBOX_ISS,
        subject=None,
        jti="sandbox-jti-1",
        # exp = iat + 300 comes before iat + max age (600); plus 60 s leeway.
        expires_at=k.NOW + timedelta(seconds=360),
    )


def test_epic_rs384_token_is_accepted_with_subject() -> None:
    client = k.verifier().verify(bearer(k.epic_token()), URL)
    assert client.issuer == k.EPIC_ISS
    assert client.subject == k.EPIC_CLIENT_ID


def test_long_lived_token_is_remembered_only_until_max_age() -> None:
    token = k.sandbox_token(lifetime_s=3600)
    client = k.verifier().verify(bearer(token), URL)
    assert client.expires_at == k.NOW + timedelta(seconds=600 + 60)


def test_aud_as_list_containing_the_url() -> None:
    token = k.sandbox_token(aud=["https://other.example.org/cds-services", URL])
    assert k.verifier().verify(bearer(token), URL).issuer == k.SANDBOX_ISS


def test_bearer_scheme_is_case_insensitive() -> None:
    client = k.verifier().verify(f"bearer  {k.sandbox_token()} ", URL)
    assert client.issuer == k.SANDBOX_ISS


def test_unknown_claims_and_header_members_are_ignored() -> None:
    body = k.claims(tenant="labs", fhirUser="Practitioner/1", extra={"nested": [1, 2]})
    token = k.sign(k.ec_key(), body, jku=k.SANDBOX_JKU, x5t="abc", custom="1")
    assert k.verifier().verify(bearer(token), URL).jti == body["jti"]


def test_default_replay_guard_refuses_a_second_use() -> None:
    verifier = CdsJwtVerifier(k.trusted_issuers(), fetch_json=k.static_jwks(), clock=lambda: k.NOW)
    token = k.sandbox_token()
    verifier.verify(bearer(token), URL)
    assert rejected(verifier, token).reason == "jti replayed"


# --- authorization header ------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Token abc.def.ghi", "JWT x.y.z"],
)
def test_missing_or_non_bearer_authorization(header: str | None) -> None:
    with pytest.raises(JwtRejected) as caught:
        k.verifier().verify(header, URL)
    assert caught.value.reason == "no bearer token"


def test_oversized_token_is_refused_before_parsing() -> None:
    with pytest.raises(JwtRejected) as caught:
        k.verifier().verify("Bearer " + "a" * 20_000, URL)
    assert caught.value.reason == "token too large"


# --- times -------------------------------------------------------------------------------


def test_expired_beyond_leeway() -> None:
    token = k.sandbox_token(now=k.NOW - timedelta(seconds=361))  # exp = NOW - 61 s
    assert rejected(k.verifier(), token).reason == "token expired"


def test_expired_within_leeway_is_accepted() -> None:
    token = k.sandbox_token(now=k.NOW - timedelta(seconds=359))  # exp = NOW - 59 s
    assert k.verifier().verify(bearer(token), URL).issuer == k.SANDBOX_ISS


def test_iat_in_future_beyond_leeway() -> None:
    token = k.sandbox_token(now=k.NOW + timedelta(seconds=61))
    assert rejected(k.verifier(), token).reason == "iat in future"


def test_iat_slightly_in_future_is_clock_skew() -> None:
    token = k.sandbox_token(now=k.NOW + timedelta(seconds=59))
    assert k.verifier().verify(bearer(token), URL).issuer == k.SANDBOX_ISS


def test_too_old_even_if_not_expired() -> None:
    issued = k.NOW - timedelta(seconds=661)
    token = k.sandbox_token(now=issued, lifetime_s=3600)
    assert rejected(k.verifier(), token).reason == "token too old"


def test_max_age_is_configurable() -> None:
    token = k.sandbox_token(now=k.NOW - timedelta(seconds=200))
    assert rejected(k.verifier(max_age_s=100), token).reason == "token too old"
    assert k.verifier(max_age_s=300).verify(bearer(token), URL).issuer == k.SANDBOX_ISS


def test_nbf_in_future_is_refused() -> None:
    nbf = int(k.NOW.timestamp()) + 120
    assert rejected(k.verifier(), k.sandbox_token(nbf=nbf)).reason == "token not yet valid"


def test_nbf_not_a_number_is_refused() -> None:
    assert rejected(k.verifier(), k.sandbox_token(nbf="soon")).reason == "nbf not a number"


@pytest.mark.parametrize("claim", ["exp", "iat"])
@pytest.mark.parametrize("value", [None, "1741944600", True, 10**20])
def test_missing_or_non_numeric_times(claim: str, value: Any) -> None:
    token = k.sandbox_token(**{claim: value}) if value is not None else None
    if value is None:
        body = k.claims()
        del body[claim]
        token = k.sign(k.ec_key(), body, jku=k.SANDBOX_JKU)
    assert token is not None
    assert rejected(k.verifier(), token).reason == f"{claim} missing or invalid"


def test_infinite_exp_is_not_json() -> None:
    assert rejected(k.verifier(), k.sandbox_token(exp=float("inf"))).reason == "malformed token"


def test_far_future_exp_is_capped_by_max_age() -> None:
    token = k.sandbox_token(exp=10**11)  # the year 5138
    client = k.verifier().verify(bearer(token), URL)
    assert client.expires_at == k.NOW + timedelta(seconds=660)


# --- audience --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "aud",
    [
        URL + "/",
        URL.upper(),
        "https://cds.example.org/cds-services",
        "https://cds.example.org/cds-services/clozapine-order-sign/feedback",
        ["https://other.example.org"],
        [],
        42,
    ],
)
def test_aud_mismatch(aud: Any) -> None:
    assert rejected(k.verifier(), k.sandbox_token(aud=aud)).reason == "aud mismatch"


def test_aud_missing() -> None:
    body = k.claims()
    del body["aud"]
    token = k.sign(k.ec_key(), body, jku=k.SANDBOX_JKU)
    assert rejected(k.verifier(), token).reason == "aud mismatch"


# --- issuer, jku, sub --------------------------------------------------------------------------


def test_unknown_issuer() -> None:
    token = k.sandbox_token(iss="https://evil.example.org")
    error = rejected(k.verifier(), token)
    assert error.reason == "issuer not trusted"
    assert error.issuer == "https://evil.example.org"


def test_missing_issuer() -> None:
    assert rejected(k.verifier(), k.sandbox_token(iss=None)).reason == "issuer not trusted"


@responses.activate(assert_all_requests_are_fired=False)
def test_jku_off_the_allow_list_is_never_fetched() -> None:
    evil = "https://evil.example.org/jwks.json"
    responses.get(evil, json=k.jwks(k.ec_key()))
    responses.get(k.SANDBOX_JKU, json=k.jwks(k.ec_key()))
    verifier = CdsJwtVerifier(k.trusted_issuers(), clock=lambda: k.NOW)  # real HTTP fetcher
    token = k.sign(k.ec_key(), k.claims(), jku=evil)
    assert rejected(verifier, token).reason == "jku not allowed"
    assert len(responses.calls) == 0


@responses.activate
def test_allowed_jku_is_fetched_over_https() -> None:
    responses.get(k.SANDBOX_JKU, json=k.jwks(k.ec_key()))
    verifier = CdsJwtVerifier(k.trusted_issuers(), clock=lambda: k.NOW)
    assert verifier.verify(bearer(k.sandbox_token()), URL).issuer == k.SANDBOX_ISS
    assert [call.request.url for call in responses.calls] == [k.SANDBOX_JKU]


def test_jku_of_another_trusted_issuer_is_refused() -> None:
    token = k.sign(k.ec_key(), k.claims(), jku=k.EPIC_JWKS)
    assert rejected(k.verifier(), token).reason == "jku not allowed"


def test_jku_not_a_string() -> None:
    token = k.unsigned({"alg": "ES384", "kid": k.ec_key().kid, "jku": [k.SANDBOX_JKU]}, k.claims())
    assert rejected(k.verifier(), token).reason == "jku not allowed"


def test_without_jku_keys_come_from_the_configured_url() -> None:
    calls: list[str] = []
    verifier = k.verifier(fetch_json=k.static_jwks(calls=calls))
    verifier.verify(bearer(k.epic_token()), URL)
    assert calls == [k.EPIC_JWKS]


def test_issuer_without_jwks_url_needs_a_jku() -> None:
    issuers = {k.SANDBOX_ISS: {"jku": [k.SANDBOX_JKU]}}
    token = k.sign(k.ec_key(), k.claims())
    error = rejected(k.verifier(trusted_issuers=issuers), token)
    assert error.reason == "jku missing and no jwks_url configured"


def test_sub_allow_list() -> None:
    issuers = k.trusted_issuers()
    issuers[k.EPIC_ISS]["sub"] = ["another-client"]
    assert rejected(k.verifier(trusted_issuers=issuers), k.epic_token()).reason == (
        "sub not allowed"
    )
    issuers[k.EPIC_ISS]["sub"] = [k.EPIC_CLIENT_ID]
    assert k.verifier(trusted_issuers=issuers).verify(bearer(k.epic_token()), URL).subject


def test_sub_not_a_string() -> None:
    assert rejected(k.verifier(), k.sandbox_token(sub=7)).reason == "sub not a string"


@pytest.mark.parametrize(
    "config",
    [
        {"jwks_url": 5},
        {"jku": "https://a.example.org/jwks"},
        {"jku": [1]},
        {},
        {"jwks_url": "https://a.example.org/jwks", "sub": "client"},
        "https://a.example.org/jwks",
    ],
)
def test_malformed_issuer_configuration_fails_at_start(config: Any) -> None:
    with pytest.raises(ValueError, match=r"trusted issuer https://a\.example\.org"):
        CdsJwtVerifier({"https://a.example.org": config})


# --- algorithms and keys -------------------------------------------------------------------


def test_alg_none_is_refused_before_keys() -> None:
    calls: list[str] = []
    token = k.unsigned({"alg": "none", "typ": "JWT", "kid": k.ec_key().kid}, k.claims())
    assert rejected(k.verifier(fetch_json=k.static_jwks(calls=calls)), token).reason == (
        "alg not allowed"
    )
    assert calls == []


@pytest.mark.parametrize("alg", ["None", "NONE", "RS256", "ES256", "PS384", "EdDSA", "", 384])
def test_other_algs_are_refused(alg: Any) -> None:
    token = k.unsigned({"alg": alg, "kid": k.ec_key().kid}, k.claims(), b"sig")
    assert rejected(k.verifier(), token).reason == "alg not allowed"


def test_missing_alg() -> None:
    token = k.unsigned({"kid": k.ec_key().kid}, k.claims(), b"sig")
    assert rejected(k.verifier(), token).reason == "alg not allowed"


@pytest.mark.parametrize("alg", ["HS256", "HS384"])
def test_hmac_signed_with_the_public_key_pem_is_refused(alg: str) -> None:
    calls: list[str] = []
    token = k.hmac_token(k.rsa_key().public_pem(), k.claims(iss=k.EPIC_ISS), k.rsa_key().kid, alg)
    verifier = k.verifier(fetch_json=k.static_jwks(calls=calls))
    assert rejected(verifier, token).reason == "alg not allowed"
    assert calls == []


def test_hmac_token_relabelled_rs384_fails_the_signature() -> None:
    pem = k.rsa_key().public_pem()
    hs = k.hmac_token(pem, k.claims(iss=k.EPIC_ISS), k.rsa_key().kid, "HS384")
    _, payload, signature = hs.split(".")
    header = k.b64json({"alg": "RS384", "typ": "JWT", "kid": k.rsa_key().kid})
    token = f"{header}.{payload}.{signature}"
    assert rejected(k.verifier(), token).reason == "bad signature"


def test_rsa_key_with_es384_header_is_refused() -> None:
    rsa = k.rsa_key()
    token = k.unsigned(
        {"alg": "ES384", "typ": "JWT", "kid": rsa.kid}, k.claims(iss=k.EPIC_ISS), b"x" * 96
    )
    assert rejected(k.verifier(), token).reason == "key does not fit alg"


def test_ec_key_on_the_wrong_curve_is_refused() -> None:
    p256 = k.ec_key(kid="p256", curve="P-256")
    token = k.unsigned({"alg": "ES384", "kid": "p256", "jku": k.SANDBOX_JKU}, k.claims(), b"x" * 64)
    fetch = k.static_jwks({k.SANDBOX_JKU: k.jwks(p256)})
    assert rejected(k.verifier(fetch_json=fetch), token).reason == "key does not fit alg"


@pytest.mark.filterwarnings("ignore:Key size should be")
def test_short_rsa_key_is_refused() -> None:
    short = k.rsa_key(kid="short", bits=1024)
    fetch = k.static_jwks({k.EPIC_JWKS: k.jwks(short)})
    token = k.sign(short, k.claims(iss=k.EPIC_ISS))
    assert rejected(k.verifier(fetch_json=fetch), token).reason == "key does not fit alg"


def test_key_declaring_another_alg_is_refused() -> None:
    rsa = k.rsa_key()
    fetch = k.static_jwks({k.EPIC_JWKS: {"keys": [rsa.public_jwk(alg="RS256")]}})
    token = k.sign(rsa, k.claims(iss=k.EPIC_ISS))
    assert rejected(k.verifier(fetch_json=fetch), token).reason == "key does not fit alg"


def test_signature_by_another_key_with_the_same_kid() -> None:
    impostor = k.ec_key(kid="impostor")
    token = k.sign(impostor, k.claims(), kid=k.ec_key().kid, jku=k.SANDBOX_JKU)
    assert rejected(k.verifier(), token).reason == "bad signature"


def test_embedded_jwk_header_is_never_trusted() -> None:
    attacker = k.ec_key(kid="attacker")
    token = k.sign(
        attacker, k.claims(), kid=k.ec_key().kid, jku=k.SANDBOX_JKU, jwk=attacker.public_jwk()
    )
    assert rejected(k.verifier(), token).reason == "bad signature"


def test_tampered_payload_fails_the_signature() -> None:
    header, _, signature = k.sandbox_token().split(".")
    forged = k.b64json(k.claims(aud=URL, jti="forged"))
    assert rejected(k.verifier(), f"{header}.{forged}.{signature}").reason == "bad signature"


def test_missing_kid() -> None:
    token = k.sign(k.ec_key(), k.claims(), kid=None, jku=k.SANDBOX_JKU)
    assert rejected(k.verifier(), token).reason == "kid missing"


def test_crit_header_is_refused() -> None:
    header = {"alg": "ES384", "kid": k.ec_key().kid, "jku": k.SANDBOX_JKU, "crit": ["b64"]}
    token = k.unsigned(header, k.claims(), b"x" * 96)
    assert rejected(k.verifier(), token).reason == "crit header not supported"


def test_jwks_endpoint_down_is_a_rejection() -> None:
    def down(url: str) -> Any:
        raise ConnectionError("connection refused")

    error = rejected(k.verifier(fetch_json=down), k.sandbox_token())
    assert error.reason.startswith("jwks unavailable")


@responses.activate
def test_jwks_http_500_is_a_rejection() -> None:
    responses.get(k.SANDBOX_JKU, status=500)
    verifier = CdsJwtVerifier(k.trusted_issuers(), clock=lambda: k.NOW)
    assert rejected(verifier, k.sandbox_token()).reason == "jwks unavailable: jwks http 500"


# --- jti and replay ----------------------------------------------------------------------


@pytest.mark.parametrize("jti", [None, "", 17, ["a"]])
def test_missing_or_invalid_jti(jti: Any) -> None:
    body = k.claims()
    body["jti"] = jti
    if jti is None:
        del body["jti"]
    token = k.sign(k.ec_key(), body, jku=k.SANDBOX_JKU)
    assert rejected(k.verifier(), token).reason == "jti missing"


def test_overlong_jti() -> None:
    assert rejected(k.verifier(), k.sandbox_token(jti="j" * 256)).reason == "jti too long"


def test_replayed_jti_is_refused() -> None:
    verifier = k.verifier()
    token = k.sandbox_token(jti="once")
    verifier.verify(bearer(token), URL)
    error = rejected(verifier, token)
    assert (error.reason, error.issuer, error.jti) == ("jti replayed", k.SANDBOX_ISS, "once")


def test_same_jti_from_another_issuer_is_not_a_replay() -> None:
    verifier = k.verifier()
    verifier.verify(bearer(k.sandbox_token(jti="shared")), URL)
    assert verifier.verify(bearer(k.epic_token(jti="shared")), URL).jti == "shared"


def test_replay_callback_receives_issuer_jti_and_acceptance_end() -> None:
    seen: list[tuple[str, str, datetime]] = []

    def replay(iss: str, jti: str, expires_at: datetime) -> bool:
        seen.append((iss, jti, expires_at))
        return True

    k.verifier(replay=replay).verify(bearer(k.sandbox_token(jti="abc")), URL)
    assert seen == [(k.SANDBOX_ISS, "abc", k.NOW + timedelta(seconds=360))]


def test_rejected_tokens_are_not_remembered() -> None:
    seen: list[str] = []

    def replay(iss: str, jti: str, expires_at: datetime) -> bool:
        seen.append(jti)
        return True

    rejected(k.verifier(replay=replay), k.sandbox_token(aud=URL + "/"))
    assert seen == []


def test_in_memory_guard_forgets_after_expiry() -> None:
    clock = Clock()
    guard = InMemoryReplayGuard(clock)
    until = k.NOW + timedelta(seconds=10)
    assert guard("iss", "j", until) is True
    assert guard("iss", "j", until) is False
    clock.advance(11)
    assert guard("iss", "j", until + timedelta(seconds=11)) is True


# --- key rotation (through the verifier) -------------------------------------------------


def test_unknown_kid_then_rotation_refetches_once() -> None:
    old, new = k.ec_key(kid="old"), k.ec_key(kid="new")
    served = [k.jwks(old), k.jwks(old, new)]
    calls: list[str] = []

    def fetch(url: str) -> Any:
        calls.append(url)
        return served[min(len(calls), len(served)) - 1]

    clock = Clock()
    verifier = k.verifier(fetch_json=fetch, clock=clock)
    verifier.verify(bearer(k.sign(old, k.claims(), jku=k.SANDBOX_JKU)), URL)
    clock.advance(61)  # past the refetch rate limit, well inside the cache lifetime
    client = verifier.verify(bearer(k.sign(new, k.claims(now=clock.now), jku=k.SANDBOX_JKU)), URL)
    assert client.issuer == k.SANDBOX_ISS
    assert calls == [k.SANDBOX_JKU, k.SANDBOX_JKU]


def test_unknown_kid_refetch_is_rate_limited() -> None:
    calls: list[str] = []
    verifier = k.verifier(fetch_json=k.static_jwks(calls=calls))
    for n in range(5):
        token = k.sign(k.ec_key(kid=f"invented-{n}"), k.claims(), jku=k.SANDBOX_JKU)
        assert rejected(verifier, token).reason == "unknown kid"
    assert calls == [k.SANDBOX_JKU]


# --- malformed tokens --------------------------------------------------------------------


def _seg(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


GOOD_HEADER = k.b64json({"alg": "ES384", "kid": "x"})
GOOD_BODY = k.b64json(k.claims())
DUPLICATE_ALG = _seg(b'{"alg":"ES384","alg":"none","kid":"x"}')
NAN_ALG = _seg(b'{"alg":NaN,"kid":"x"}')
DEEP = _seg(b"[" * 5000)


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b",
        "a.b.c.d",
        "..",
        f"{GOOD_HEADER}..sig",
        "!!!.###.$$$",
        f"{_seg(b'not json')}.{k.b64json(k.claims())}.c2ln",
        f"{k.b64json([1, 2])}.{k.b64json(k.claims())}.c2ln",
        f"{GOOD_HEADER}.{k.b64json('a string')}.c2ln",
        f"{GOOD_HEADER}.{_seg(bytes([0xFF, 0xFE]))}.c2ln",
        f"{DUPLICATE_ALG}.{GOOD_BODY}.c2ln",
        f"{NAN_ALG}.{GOOD_BODY}.c2ln",
        f"{DEEP}.{GOOD_BODY}.c2ln",
        "a" + GOOD_HEADER + ".e30.c2ln",  # base64 of impossible length
    ],
)
def test_malformed_tokens(token: str) -> None:
    assert rejected(k.verifier(), token).reason == "malformed token"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_random_strings_only_ever_raise_jwt_rejected(text: str) -> None:
    with pytest.raises(JwtRejected):
        k.verifier().verify(f"Bearer {text}", URL)


segment = st.binary(max_size=120).map(_seg)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    header=st.dictionaries(
        st.sampled_from(["alg", "kid", "jku", "crit", "typ"]), json_values, max_size=5
    ),
    body=st.dictionaries(
        st.sampled_from(["iss", "aud", "exp", "iat", "nbf", "jti", "sub"]), json_values
    ),
    signature=segment,
)
def test_random_structured_tokens_only_ever_raise_jwt_rejected(
    header: dict[str, Any], body: dict[str, Any], signature: str
) -> None:
    header_text = _seg(json.dumps(header).encode())
    body_text = _seg(json.dumps(body).encode())
    with pytest.raises(JwtRejected):
        k.verifier().verify(f"Bearer {header_text}.{body_text}.{signature}", URL)


def test_messages_never_contain_the_token() -> None:
    token = k.sandbox_token(aud="https://wrong.example.org")
    error = rejected(k.verifier(), token)
    for part in token.split("."):
        assert part not in str(error)
        assert part not in repr(error)


def test_logged_claims_are_sanitised() -> None:
    token = k.sandbox_token(iss="https://evil\n.example.org/" + "x" * 200)
    error = rejected(k.verifier(), token)
    assert error.issuer is not None
    assert "\n" not in error.issuer
    assert len(error.issuer) == 80


def test_clock_defaults_to_now() -> None:
    verifier = CdsJwtVerifier(k.trusted_issuers(), fetch_json=k.static_jwks())
    now = datetime.now(UTC)
    assert verifier.verify(bearer(k.sandbox_token(now=now)), URL).issuer == k.SANDBOX_ISS
