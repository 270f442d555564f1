"""JWK Set fetching and caching (CDS Hooks 2.0 Trusting CDS Clients; standards-checklist.md
"Security": keys by kid, cached, refetched on an unknown kid, never hammering the key host)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
import responses
from joserfc.jwk import ECKey, RSAKey

from smartapp.cds_hooks.jwks import JwksCache, JwksError, check_key_url, https_fetcher, parse_jwks
from tests.cds_hooks import jwt_keys as k
from tests.cds_hooks.jwt_keys import Clock

URL = "https://ehr.example.org/jwks.json"


class Host:
    """A JWKS host serving a sequence of documents (the last one repeats), or failing."""

    def __init__(self, *documents: Any) -> None:
        self.documents = list(documents)
        self.calls = 0
        self.down = False

    def __call__(self, url: str) -> Any:
        self.calls += 1
        if self.down:
            raise requests.ConnectionError("down")
        return self.documents[min(self.calls, len(self.documents)) - 1]


def cache(host: Host, clock: Clock, **options: Any) -> JwksCache:
    return JwksCache(host, clock=clock, **options)


# --- parse_jwks -------------------------------------------------------------------------------


def test_parse_keeps_signing_keys_by_kid() -> None:
    rsa, ec = k.rsa_key(), k.ec_key()
    keys = parse_jwks(k.jwks(rsa, ec))
    assert set(keys) == {rsa.kid, ec.kid}
    assert isinstance(keys[rsa.kid][0], RSAKey)
    assert isinstance(keys[ec.kid][0], ECKey)


def test_parse_skips_unusable_entries_but_keeps_the_rest() -> None:
    good = k.ec_key()
    document = {
        "keys": [
            good.public_jwk(),
            k.rsa_key().public_jwk(kid=None),
            k.rsa_key().public_jwk(use="enc", kid="enc"),
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "RSA", "n": "!!!", "e": "AQAB", "kid": "broken"},
            {"kty": "EC", "crv": "P-384", "x": 5, "y": [], "kid": "broken-ec"},
            "not a key",
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                "kid": "okp",
            },
        ]
    }
    assert list(parse_jwks(document)) == [good.kid]


def test_parse_imports_only_the_public_part() -> None:
    rsa = k.rsa_key()
    private_jwk = dict(rsa.private.as_dict(private=True), kid="leaky")
    key = parse_jwks({"keys": [private_jwk]})["leaky"][0]
    assert not key.is_private


def test_parse_keeps_several_keys_under_one_kid() -> None:
    rsa = k.rsa_key().public_jwk(kid="shared")
    ec = k.ec_key().public_jwk(kid="shared")
    assert len(parse_jwks({"keys": [rsa, ec]})["shared"]) == 2


@pytest.mark.parametrize("document", [None, [], {"keys": "x"}, {"kids": []}, "{}"])
def test_parse_refuses_documents_without_a_keys_list(document: Any) -> None:
    with pytest.raises(JwksError, match="jwks has no keys list"):
        parse_jwks(document)


# --- JwksCache ---------------------------------------------------------------------------------


def test_keys_are_cached_for_the_cache_lifetime() -> None:
    host, clock = Host(k.jwks(k.ec_key())), Clock()
    keys = cache(host, clock, cache_s=3600)
    for _ in range(5):
        keys.keys_for(URL, k.ec_key().kid)
    clock.advance(3599)
    keys.keys_for(URL, k.ec_key().kid)
    assert host.calls == 1
    clock.advance(1)
    keys.keys_for(URL, k.ec_key().kid)
    assert host.calls == 2


def test_cache_is_per_url() -> None:
    host, clock = Host(k.jwks(k.ec_key())), Clock()
    keys = cache(host, clock)
    keys.keys_for(URL, k.ec_key().kid)
    keys.keys_for(URL + "?v=2", k.ec_key().kid)
    assert host.calls == 2


def test_unknown_kid_refetches_once_and_finds_the_rotated_key() -> None:
    old, new = k.ec_key(kid="2024"), k.ec_key(kid="2025")
    host, clock = Host(k.jwks(old), k.jwks(new)), Clock()
    keys = cache(host, clock, min_refetch_s=60)
    keys.keys_for(URL, "2024")
    clock.advance(60)
    assert keys.keys_for(URL, "2025")[0].as_dict()["x"] == new.public_jwk()["x"]
    assert host.calls == 2
    with pytest.raises(JwksError, match="unknown kid"):  # retired: rate limit stops a refetch
        keys.keys_for(URL, "2024")
    assert host.calls == 2


def test_unknown_kid_refetch_is_rate_limited_per_url() -> None:
    host, clock = Host(k.jwks(k.ec_key())), Clock()
    keys = cache(host, clock, min_refetch_s=60)
    for n in range(10):
        with pytest.raises(JwksError, match="unknown kid"):
            keys.keys_for(URL, f"invented-{n}")
        clock.advance(5)
    assert host.calls == 1  # the first fetch found no such kid; 50 s later, still inside 60 s
    clock.advance(10)
    with pytest.raises(JwksError, match="unknown kid"):
        keys.keys_for(URL, "invented-again")
    assert host.calls == 2


def test_host_down_is_a_jwks_error_and_backs_off() -> None:
    host, clock = Host(k.jwks(k.ec_key())), Clock()
    host.down = True
    keys = cache(host, clock, failure_backoff_s=5)
    with pytest.raises(JwksError, match="jwks unavailable"):
        keys.keys_for(URL, k.ec_key().kid)
    with pytest.raises(JwksError, match="recent failure"):
        keys.keys_for(URL, k.ec_key().kid)
    assert host.calls == 1
    host.down = False
    clock.advance(5)
    assert keys.keys_for(URL, k.ec_key().kid)
    assert host.calls == 2


def test_stale_keys_are_not_used_when_the_host_is_down() -> None:
    host, clock = Host(k.jwks(k.ec_key())), Clock()
    keys = cache(host, clock, cache_s=600)
    keys.keys_for(URL, k.ec_key().kid)
    host.down = True
    clock.advance(600)
    with pytest.raises(JwksError, match="jwks unavailable"):
        keys.keys_for(URL, k.ec_key().kid)


def test_fresh_keys_survive_a_failed_unknown_kid_refetch() -> None:
    host, clock = Host(k.jwks(k.ec_key())), Clock()
    keys = cache(host, clock, min_refetch_s=60)
    keys.keys_for(URL, k.ec_key().kid)
    host.down = True
    clock.advance(61)
    with pytest.raises(JwksError):
        keys.keys_for(URL, "unknown")
    assert keys.keys_for(URL, k.ec_key().kid)
    assert host.calls == 2


def test_any_exception_from_fetch_json_is_a_jwks_error() -> None:
    def broken(url: str) -> Any:
        raise RuntimeError("bug in a custom fetcher")

    with pytest.raises(JwksError, match=r"jwks unavailable \(RuntimeError\)"):
        JwksCache(broken).keys_for(URL, "kid")


def test_malformed_document_is_a_jwks_error() -> None:
    with pytest.raises(JwksError, match="jwks has no keys list"):
        cache(Host({"not": "a jwks"}), Clock()).keys_for(URL, "kid")


def test_clock_stepping_back_does_not_freeze_the_cache() -> None:
    host, clock = Host(k.jwks(k.ec_key())), Clock()
    keys = cache(host, clock)
    keys.keys_for(URL, k.ec_key().kid)
    clock.advance(-7200)
    keys.keys_for(URL, k.ec_key().kid)
    assert host.calls == 2


def test_concurrent_misses_share_one_fetch() -> None:
    calls: list[str] = []

    def slow(url: str) -> Any:
        calls.append(url)
        time.sleep(0.05)
        return k.jwks(k.ec_key())

    keys = JwksCache(slow)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            keys.keys_for(URL, k.ec_key().kid)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert calls == [URL]


# --- https_fetcher ---------------------------------------------------------------------------


@responses.activate
def test_fetcher_reads_json_over_https() -> None:
    responses.get(URL, json=k.jwks(k.ec_key()))
    assert https_fetcher()(URL) == k.jwks(k.ec_key())
    assert responses.calls[0].request.headers["Accept"] == "application/json"


@responses.activate(assert_all_requests_are_fired=False)
@pytest.mark.parametrize(
    "url",
    [
        "http://ehr.example.org/jwks.json",
        "http://127.0.0.1:9000/jwks.json",
        "ftp://ehr.example.org/jwks.json",
        "file:///etc/passwd",
        "https:///no-host",
    ],
)
def test_fetcher_refuses_non_https_without_a_request(url: str) -> None:
    responses.get(url, json={"keys": []})
    with pytest.raises(JwksError, match="jwks url must be https"):
        https_fetcher()(url)
    assert len(responses.calls) == 0


@responses.activate
def test_fetcher_allows_loopback_http_when_asked() -> None:
    local = "http://127.0.0.1:9000/jwks.json"
    responses.get(local, json={"keys": []})
    assert https_fetcher(allow_loopback_http=True)(local) == {"keys": []}


def test_loopback_exception_covers_only_this_machine() -> None:
    check_key_url("http://localhost/jwks", allow_loopback_http=True)
    with pytest.raises(JwksError):
        check_key_url("http://10.0.0.5/jwks", allow_loopback_http=True)
    with pytest.raises(JwksError):
        check_key_url("http://localhost.evil.org/jwks", allow_loopback_http=True)


@responses.activate(assert_all_requests_are_fired=False)
def test_fetcher_does_not_follow_redirects() -> None:
    elsewhere = "https://evil.example.org/jwks.json"
    responses.get(URL, status=302, headers={"Location": elsewhere})
    responses.get(elsewhere, json={"keys": []})
    with pytest.raises(JwksError, match="jwks http 302"):
        https_fetcher()(URL)
    assert [call.request.url for call in responses.calls] == [URL]


@responses.activate
@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ({"status": 500}, "jwks http 500"),
        ({"status": 404, "json": {"keys": []}}, "jwks http 404"),
        ({"body": "<html>login</html>"}, "jwks is not JSON"),
        ({"body": b"\xff\xfe"}, "jwks is not JSON"),
        ({"body": requests.Timeout()}, r"jwks fetch failed \(Timeout\)"),
        ({"body": requests.ConnectionError()}, r"jwks fetch failed \(ConnectionError\)"),
    ],
)
def test_fetcher_failures_are_jwks_errors(reply: dict[str, Any], message: str) -> None:
    responses.get(URL, **reply)
    with pytest.raises(JwksError, match=message):
        https_fetcher()(URL)


@responses.activate
def test_fetcher_caps_the_body_size() -> None:
    responses.get(URL, body=b'{"keys": [' + b" " * 2000 + b"]}")
    with pytest.raises(JwksError, match="jwks too large"):
        https_fetcher(max_bytes=1000)(URL)


@responses.activate
def test_fetcher_passes_the_timeout() -> None:
    responses.get(URL, json={"keys": []})
    https_fetcher(timeout_s=1.5)(URL)
    assert getattr(responses.calls[0].request, "req_kwargs")["timeout"] == 1.5  # noqa: B009
