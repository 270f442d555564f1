"""Benchmark: the CDS Hooks service under gunicorn, over HTTP on 127.0.0.1.

Prints, next to the targets of design.md:
1. order-sign with full prefetch, 10-year patient: p50/p95/p99 service time;
2. the same with prefetch missing, against a FHIR server that adds 20 ms per request;
3. sustained request rate with zero errors for a typical patient (2 years on clozapine),
   with worker memory at the start and the end.

Everything real: gunicorn workers (``smartapp serve``), JWT verification with a JWKS served on
loopback, the Medplum-backed test FHIR server (``tests/fhir_server``, ``npm ci`` first), prefetch
built by running the service's own prefetch templates against that server as an EHR would.
Prints figures and asserts nothing. Bounded: every loop stops by count or by time.

    .venv/bin/python benchmarks/cds_hooks_load.py [--sustain-s 60] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import requests
from joserfc import jwt
from joserfc.jwk import ECKey
from load_driver import LoadResult, run_wrk

from smartapp.cds_hooks import discovery
from smartapp.fhir_client import FhirClient
from smartapp.fhir_load import load_bundle
from smartapp.synthetic.longitudinal import ten_year_bundle, typical_bundle

ROOT = Path(__file__).resolve().parents[1]
ISSUER = "https://bench-ehr.example.org"
SERVICE = "clozapine-order-sign"
AS_OF = date(2026, 3, 1)
TARGETS = {"full": 50.0, "missing": 150.0, "rate": 200.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args!r} exited early")
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout_s} s")


@contextmanager
def jwks_server(key: ECKey) -> Iterator[str]:
    body = json.dumps({"keys": [key.as_dict(private=False)]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()


@contextmanager
def fhir_server(delay_ms: int) -> Iterator[str]:
    folder = ROOT / "tests" / "fhir_server"
    if not (folder / "node_modules").exists():
        subprocess.run(["npm", "ci", "--silent"], cwd=folder, check=True)
    port = free_port()
    process = subprocess.Popen(
        ["node", str(folder / "server.mjs"), "--port", str(port), "--delay-ms", str(delay_ms)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        wait_http(base + "/metadata", process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def app_server(
    jwks_url: str, workers: int, threads: int
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "SMARTAPP_DATABASE_URL": f"sqlite:///{folder}/bench.db",
            "SMARTAPP_CDS_TRUSTED_ISSUERS": json.dumps({ISSUER: {"jwks_url": jwks_url}}),
            "SMARTAPP_CDS_JWKS_ALLOW_LOOPBACK_HTTP": "true",
            "SMARTAPP_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "smartapp", "serve", "--port", str(port),
             "--workers", str(workers), "--threads", str(threads)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/healthz", process)
            yield base, process
        finally:
            process.terminate()
            process.wait(timeout=30)


def token(key: ECKey, audience: str) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": audience, "iat": now, "exp": now + 300,
              "jti": str(uuid.uuid4()), "sub": "bench-client"}  # fmt: skip
    header = {"alg": "ES384", "typ": "JWT", "kid": key.kid}
    return str(jwt.encode(header, claims, key, algorithms=["ES384"]))


def patient_id(bundle: dict[str, Any]) -> str:
    return str(
        next(
            e["resource"]["id"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Patient"
        )
    )


def gather_prefetch(fhir_base: str, pid: str) -> dict[str, Any]:
    """Run the service's own prefetch templates against the FHIR server, as an EHR would."""
    context = {"patientId": pid, "userId": "Practitioner/bench"}
    client = FhirClient(fhir_base, timeout=30, max_pages=500)
    prefetch: dict[str, Any] = {}
    for key, template in discovery.PREFETCH.items():
        query = discovery.expand(template, context, "Practitioner/bench")
        path, _, text = query.partition("?")
        if not text:
            prefetch[key] = client.get(path)
            continue
        params: dict[str, list[str]] = {}
        for name, value in parse_qsl(text):
            params.setdefault(name, []).append(value)
        entries = [{"resource": r} for r in client.search(path, params)]
        prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    return prefetch


def hook_body(pid: str, fhir_base: str | None, prefetch: dict[str, Any] | None) -> bytes:
    draft = {
        "resourceType": "MedicationRequest", "id": "draft-cipro", "status": "draft",
        "intent": "order", "subject": {"reference": f"Patient/{pid}"},
        "medicationCodeableConcept": {"coding": [{
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "2551",
            "display": "ciprofloxacin"}], "text": "ciprofloxacin 500 mg tablet"},
        "dosageInstruction": [{"timing": {"code": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation",
            "code": "BID"}]}}, "doseAndRate": [{"doseQuantity": {"value": 500, "unit": "mg",
            "system": "http://unitsofmeasure.org", "code": "mg"}}]}],
    }  # fmt: skip
    body: dict[str, Any] = {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/bench",
            "patientId": pid,
            "draftOrders": {"resourceType": "Bundle", "type": "collection",
                            "entry": [{"resource": draft}]},
        },
    }  # fmt: skip
    if fhir_base:
        body["fhirServer"] = fhir_base
        body["fhirAuthorization"] = {"access_token": "bench-token", "token_type": "Bearer",
                                     "expires_in": 300, "scope": "patient/*.read",
                                     "subject": "bench"}  # fmt: skip
    if prefetch is not None:
        body["prefetch"] = prefetch
    return json.dumps(body).encode()


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return (
        f"p50 {pick(0.50):6.1f} ms  p95 {pick(0.95):6.1f} ms  p99 {pick(0.99):6.1f} ms "
        f"(n={len(samples)}, mean {statistics.mean(samples):.1f})"
    )


def timed_calls(url: str, body: bytes, key: ECKey, count: int) -> list[float]:
    session = requests.Session()
    samples: list[float] = []
    for _ in range(count):
        headers = {"Authorization": f"Bearer {token(key, url)}",
                   "Content-Type": "application/json"}  # fmt: skip
        start = time.perf_counter()
        response = session.post(url, data=body, headers=headers, timeout=30)
        samples.append((time.perf_counter() - start) * 1e3)
        if response.status_code != 200:
            raise SystemExit(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
    return samples


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def sustain(url: str, body: bytes, key: ECKey, seconds: float, threads: int) -> tuple[int, int]:
    tokens_needed = int(seconds * 400) + 100
    tokens = [token(key, url) for _ in range(tokens_needed)]
    lock = threading.Lock()
    done = [0, 0]  # ok, errors
    stop = time.monotonic() + seconds

    def worker() -> None:
        session = requests.Session()
        while time.monotonic() < stop:
            with lock:
                if not tokens:
                    return
                jwt_token = tokens.pop()
            headers = {"Authorization": f"Bearer {jwt_token}", "Content-Type": "application/json"}
            try:
                ok = session.post(url, data=body, headers=headers, timeout=30).status_code == 200
            except requests.RequestException:
                ok = False
            with lock:
                done[0 if ok else 1] += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return done[0], done[1]


def report_sustained(
    url: str, body: bytes, key: ECKey, master: int, args: argparse.Namespace
) -> None:
    workers = worker_pids(master)
    print(f"sustained, typical patient ({len(body) / 1e3:.0f} kB body), {args.sustain_s:.0f} s, "
          f"{len(workers)} workers:")  # fmt: skip
    if shutil.which("wrk"):
        tokens = [token(key, url) for _ in range(int(args.sustain_s * 400))]
        result = run_wrk(url, body, tokens, args.sustain_s, sample=lambda: rss_mb(workers))
        result.rss_mb.append((args.sustain_s, rss_mb(workers)))
        ok, errors, client = result.requests - result.errors, result.errors, "wrk, 16 connections"
    else:
        before = rss_mb(workers)
        ok, errors = sustain(url, body, key, args.sustain_s, args.threads)
        samples = [(0.0, before), (args.sustain_s, rss_mb(workers))]
        client = f"Python client, {args.threads} threads (install wrk for a lighter client)"
        result = LoadResult(ok + errors, errors, args.sustain_s, samples)
    print(f"  {ok / args.sustain_s:6.1f} requests/s, {ok} ok, {errors} errors ({client})"
          f"   target >= {TARGETS['rate']:.0f}/s with zero errors")  # fmt: skip
    trace = ", ".join(f"{t:.0f} s: {mb:.0f} MB" for t, mb in result.rss_mb)
    print(f"  worker RSS {trace}")


def run(args: argparse.Namespace) -> None:
    key = ECKey.generate_key("P-384", parameters={"kid": "bench-1"}, private=True)
    ten_year, typical = ten_year_bundle(as_of=AS_OF), typical_bundle(as_of=AS_OF)
    with jwks_server(key) as jwks_url, fhir_server(args.fhir_delay_ms) as fhir_base:
        loader = FhirClient(fhir_base, timeout=60)
        for bundle in (ten_year, typical):
            load_bundle(loader, bundle)
        big, small = patient_id(ten_year), patient_id(typical)
        prefetch_big = gather_prefetch(fhir_base, big)
        prefetch_small = gather_prefetch(fhir_base, small)
        with app_server(jwks_url, args.workers, args.server_threads) as (base, process):
            url = f"{base}/cds-services/{SERVICE}"
            full = hook_body(big, None, prefetch_big)
            timed_calls(url, full, key, 10)  # warm every worker
            print(f"order-sign, full prefetch, 10-year patient ({len(full) / 1e6:.1f} MB body):")
            print(f"  {percentiles(timed_calls(url, full, key, args.requests))}"
                  f"   target p95 < {TARGETS['full']:.0f} ms")  # fmt: skip
            missing = hook_body(big, fhir_base, None)
            print(f"order-sign, prefetch missing, FHIR server +{args.fhir_delay_ms} ms/request:")
            print(f"  {percentiles(timed_calls(url, missing, key, max(20, args.requests // 4)))}"
                  f"   target p95 < {TARGETS['missing']:.0f} ms")  # fmt: skip
            typical_body = hook_body(small, None, prefetch_small)
            timed_calls(url, typical_body, key, 10)  # warm every worker on this patient too
            report_sustained(url, typical_body, key, process.pid, args)
    print(f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--sustain-s", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0, help="0: 2 x cores + 1")
    parser.add_argument("--server-threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--fhir-delay-ms", type=int, default=20)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
