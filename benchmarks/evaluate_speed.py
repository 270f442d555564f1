"""Benchmark: ``smartapp evaluate`` on the 10-year patient, as a ratio to ``json.loads``.

Target (design.md, performance targets): the whole evaluation - read the JSON, map it, run
every rule, render Contract 1 JSON - takes less than 10 x the time of ``json.loads`` of the
same file. Prints its figures; it asserts nothing, so it can never flake a test run.

    .venv/bin/python benchmarks/evaluate_speed.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import date
from pathlib import Path

from fhir_mappings.record import build_record, load_json_input
from smartapp.evaluation_json import to_json
from smartapp.rules.evaluate import evaluate
from smartapp.synthetic.longitudinal import ten_year_bundle

TARGET_RATIO = 10.0


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm caches (code tables, rule data) once, as a long-running server would
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    as_of = date(2026, 3, 1)
    bundle = ten_year_bundle(as_of=as_of)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ten-year.json"
        path.write_text(json.dumps(bundle), encoding="utf-8")
        text = path.read_text(encoding="utf-8")
        kinds: dict[str, int] = {}
        for entry in bundle["entry"]:
            rtype = entry["resource"]["resourceType"]
            kinds[rtype] = kinds.get(rtype, 0) + 1

        def full() -> object:
            record = build_record(load_json_input(path))
            return to_json(evaluate(record, as_of))

        base = timed(lambda: json.loads(text), args.repeat)
        ours = timed(full, args.repeat)
        cli = [
            sys.executable,
            "-m",
            "smartapp",
            "evaluate",
            str(path),
            "--as-of",
            as_of.isoformat(),
        ]
        wall = timed(lambda: subprocess.run(cli, check=True, capture_output=True), 5)
        tracemalloc.start()
        full()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    ratio = statistics.median(ours) / statistics.median(base)
    print(
        f"patient: {len(text) / 1e6:.2f} MB, "
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    )
    print(f"json.loads          median {statistics.median(base) * 1e3:8.2f} ms")
    print(
        f"smartapp evaluate   median {statistics.median(ours) * 1e3:8.2f} ms "
        f"(min {min(ours) * 1e3:.2f}, max {max(ours) * 1e3:.2f})"
    )
    print(
        f"ratio               {ratio:8.2f} x json.loads (target < {TARGET_RATIO:.0f} x): "
        + ("MEETS TARGET" if ratio < TARGET_RATIO else "MISSES TARGET")
    )
    print(
        f"CLI wall time       median {statistics.median(wall) * 1e3:8.2f} ms "
        "(whole process: interpreter start, imports, evaluation, output)"
    )
    print(f"peak memory         {peak / 1e6:8.1f} MB (tracemalloc, one evaluation)")


if __name__ == "__main__":
    main()
