"""What the access gate costs: REST throughput, latency and server CPU per request with auth off, with
trusted-header auth, with an API token, and with rate limits on (set high enough never to refuse), beside
a bare FastAPI app started in the same run.

    .venv/bin/python bench/gate.py [--seconds 8] [--connections 32]

The load generator is wrk (Debian package `wrk`; `scripts/bench-setup` installs it), so the client is not
the bottleneck; each server's CPU time comes from /proc/<pid>/stat before and after its run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from athena_server.access.config import token_digest  # noqa: E402
from tests.servers import free_port, start_api  # noqa: E402

TOKEN = "bench-token-0123456789"
# A new session per run (runs in one session are serial); the -H headers are merged in, since wrk.format
# uses only the headers it is given.
RUN_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"sessionId":"b-%d-%d","input":"hi"}', math.random(1, 1000000000), counter)
  local headers = {["Content-Type"] = "application/json"}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  return wrk.format("POST", "/api/v1/runs", headers, body)
end
"""
CONFIGS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    # name: (server environment, request headers)
    "auth off": ({}, {}),
    "header auth": (
        {"ATHENA_AUTH_ENABLED": "true", "ATHENA_AUTH_IDENTITY_ROLE_MAP": "alice:Operator"},
        {"x-athena-identity": "alice"},
    ),
    "API token": (
        {"ATHENA_AUTH_ENABLED": "true", "ATHENA_AUTH_API_TOKENS": f"b:bench:Operator:{token_digest(TOKEN).hex()}"},
        {"authorization": f"Bearer {TOKEN}"},
    ),
    "token + rate limits": (
        {
            "ATHENA_AUTH_ENABLED": "true",
            "ATHENA_AUTH_API_TOKENS": f"b:bench:Operator:{token_digest(TOKEN).hex()}",
            "ATHENA_RATE_LIMIT_READ": "100000000/minute",
            "ATHENA_RATE_LIMIT_RUN_START": "100000000/minute",
        },
        {"authorization": f"Bearer {TOKEN}"},
    ),
}


@dataclass
class Figure:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    cpu_ms_per_request: float


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, pid: int, seconds: int, connections: int, headers: dict[str, str], script: Path | None) -> Figure:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for key, value in headers.items():
        args += ["-H", f"{key}: {value}"]
    if script is not None:
        args += ["-s", str(script)]
    before = cpu_seconds(pid)
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(pid) - before
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Figure(
        name="",
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        p99_ms=_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        cpu_ms_per_request=used * 1000 / max(total, 1),
    )


def bare(seconds: int, connections: int) -> Figure:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "baselines.py"), "rest", str(port)])
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/bare", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        figure = wrk(f"http://127.0.0.1:{port}/bare", proc.pid, seconds, connections, {}, None)
        figure.name = "bare FastAPI GET"
        return figure
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    opts = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run scripts/bench-setup (Debian package wrk).")
    figures = [bare(opts.seconds, opts.connections)]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "runs.lua"
        script.write_text(RUN_SCRIPT)
        for name, (env, headers) in CONFIGS.items():
            server = start_api(Path(tmp) / name.replace(" ", "-"), env={**env, "ATHENA_LOG_LEVEL": "WARNING"})
            try:
                pid = server.proc.pid
                url = f"{server.rest_url}/api/v1/capabilities"
                for route, target, lua in (("GET /capabilities", url, None), ("POST /runs", server.rest_url, script)):
                    figure = wrk(target, pid, opts.seconds, opts.connections, headers, lua)
                    figure.name = f"{route}, {name}"
                    figures.append(figure)
            finally:
                server.stop()
    print(f"{'scenario':<42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'CPU ms/req':>11}")
    for f in figures:
        print(
            f"{f.name:<42} {f.rps:>8.0f} {f.p50_ms:>8.1f} {f.p99_ms:>8.1f} {f.non_2xx:>8} {f.cpu_ms_per_request:>11.2f}"
        )


if __name__ == "__main__":
    main()
