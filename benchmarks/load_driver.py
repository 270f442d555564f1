"""Sustained load on one URL with wrk (Debian package ``wrk``), a C load generator.

A Python client on the same two cores spends as much CPU per request as the service it
measures; wrk costs a fraction of that, so the figure is the server's. Every request carries
its own pre-signed CDS client JWT (a ``jti`` is accepted once): the tokens are split between
wrk's threads in its Lua script. Bounded by ``--duration``; counts non-2xx answers and socket
errors as errors.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = r"""
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  local threads = tonumber(args[3])
  tokens, k = {}, 0
  for line in io.lines(args[1]) do
    if k % threads == id then tokens[#tokens + 1] = line end
    k = k + 1
  end
  local f = io.open(args[2], "rb")
  body = f:read("*a")
  f:close()
  next_token = 0
end
function request()
  next_token = next_token + 1
  local t = tokens[next_token] or "exhausted"
  return wrk.format("POST", nil, {["Authorization"] = "Bearer " .. t,
                                  ["Content-Type"] = "application/json"}, body)
end
"""


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (elapsed s, MB)

    @property
    def rate(self) -> float:
        return (self.requests - self.errors) / self.seconds


def _count(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    return int(found.group(1)) if found else 0


def run_wrk(
    url: str,
    body: bytes,
    tokens: list[str],
    seconds: float,
    *,
    connections: int = 16,
    threads: int = 2,
    sample: Callable[[], float] | None = None,
) -> LoadResult:
    """Drive ``url`` for ``seconds``; ``sample`` (worker RSS in MB) is read every 10 s."""
    with tempfile.TemporaryDirectory() as folder:
        script, token_file, body_file = (Path(folder) / n for n in ("load.lua", "t.txt", "b.json"))
        script.write_text(SCRIPT)
        token_file.write_text("\n".join(tokens) + "\n")
        body_file.write_bytes(body)
        command = [
            "wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s",
            "-s", str(script), url, "--", str(token_file), str(body_file), str(threads),
        ]  # fmt: skip
        start = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        samples: list[tuple[float, float]] = []
        while process.poll() is None:
            if sample is not None:
                samples.append((time.monotonic() - start, sample()))
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                continue
        output = process.stdout.read() if process.stdout else ""
    total = _count(r"(\d+) requests in", output)
    errors = _count(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    return LoadResult(total, errors, seconds, samples)
