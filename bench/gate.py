"""What the access gate costs: REST throughput, latency and server CPU per request with auth off, with
trusted-header auth, with an API token, and with rate limits on (set high enough never to refuse), beside
a bare FastAPI app started in the same run.

    .venv/bin/python bench/gate.py [--seconds 5] [--rounds 3] [--connections 32]

The load generator is wrk (Debian package `wrk`; `scripts/bench-setup` installs it), so the client is not
the bottleneck; each server's CPU time comes from /proc/<pid>/stat before and after its run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
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
from tests.support.processes import free_port, start_api  # noqa: E402

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
    # Limits high enough never to refuse this load. The moving window keeps one timestamp per request in
    # its window, so its cost grows with the window's count: a per-second window keeps that small.
    "token + rate limits": (
        {
            "ATHENA_AUTH_ENABLED": "true",
            "ATHENA_AUTH_API_TOKENS": f"b:bench:Operator:{token_digest(TOKEN).hex()}",
            "ATHENA_RATE_LIMIT_READ": "2000/second",
            "ATHENA_RATE_LIMIT_RUN_START": "2000/second",
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


def start_bare() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "baselines.py"), "rest", str(port)])
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/bare", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}"


def median_figure(name: str, figures: list[Figure]) -> Figure:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    return Figure(
        name,
        med([f.rps for f in figures]),
        med([f.p50_ms for f in figures]),
        med([f.p99_ms for f in figures]),
        sum(f.non_2xx for f in figures),
        med([f.cpu_ms_per_request for f in figures]),
    )


class _Peer:
    """The one thing the gate asks of a gRPC context on the allowed path."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"


def micro(calls: int = 20_000) -> list[tuple[str, float]]:
    """Microseconds per call of the gate's decision and the request checks, in-process: figures stable
    enough to compare, where the HTTP figures above move by ±10 % between runs on a shared machine."""
    import asyncio

    from athena.v1 import runs_pb2
    from athena_client.contract import HEADER_MAX_CHARS
    from athena_server.access.gate import Gate
    from athena_server.bounds import check_headers, check_message
    from athena_server.config import Settings

    base = (("x-trace-id", "3f2c1a4e-9a7b-4c55-8f0e-1a2b3c4d5e6f"), ("x-athena-client-address", "127.0.0.1"))
    token = (("authorization", f"Bearer {TOKEN}"),)
    limited = {**CONFIGS["API token"][0], "ATHENA_RATE_LIMIT_READ": f"{calls * 2}/second"}
    cases = [
        ("gate, auth off", CONFIGS["auth off"][0], ()),
        ("gate, header auth", CONFIGS["header auth"][0], (("x-athena-identity", "alice"),)),
        ("gate, API token", CONFIGS["API token"][0], token),
        # Every call lands in one window here: the moving window's worst case for this many calls.
        (f"gate, API token + rate limit ({calls} in window)", limited, token),
    ]

    async def admit(gate: Gate, metadata: tuple[tuple[str, str], ...]) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            await gate.admit("/athena.v1.SystemService/GetCapabilities", _Peer(), metadata)
        return (time.perf_counter() - start) / calls * 1e6

    figures: list[tuple[str, float]] = []
    for label, env, extra in cases:
        settings = Settings(**{k.removeprefix("ATHENA_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
        gate = Gate(settings, store=None)  # type: ignore[arg-type]  # the allowed path never writes
        figures.append((label, asyncio.run(admit(gate, base + extra))))
    request = runs_pb2.CreateRunRequest(session_id="s1", input="hello", provider="mock", model="default")
    checks = [
        ("header bounds", lambda: check_headers(base, HEADER_MAX_CHARS)),
        ("CreateRunRequest bounds", lambda: check_message(request, "createRun")),
    ]
    for label, check in checks:
        start = time.perf_counter()
        for _ in range(calls):
            check()
        figures.append((label, (time.perf_counter() - start) / calls * 1e6))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="per scenario and round")
    parser.add_argument("--rounds", type=int, default=3, help="the scenarios run in turn this many times")
    parser.add_argument("--connections", type=int, default=32)
    opts = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run scripts/bench-setup (Debian package wrk).")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "runs.lua"
        script.write_text(RUN_SCRIPT)
        # Every server runs for the whole benchmark and the scenarios take turns, round after round, so a
        # machine that slows down or speeds up meanwhile affects them all alike; medians are reported.
        bare_proc, bare_url = start_bare()
        scenarios: list[tuple[str, int, str, dict[str, str], Path | None]] = [
            ("bare FastAPI GET", bare_proc.pid, f"{bare_url}/bare", {}, None)
        ]
        servers = []
        try:
            for name, (env, headers) in CONFIGS.items():
                server = start_api(Path(tmp) / name.replace(" ", "-"), env={**env, "ATHENA_LOG_LEVEL": "WARNING"})
                servers.append(server)
                pid = server.proc.pid
                scenarios.append(
                    (f"GET /capabilities, {name}", pid, f"{server.rest_url}/api/v1/capabilities", headers, None)
                )
                scenarios.append((f"POST /runs, {name}", pid, server.rest_url, headers, script))
            results: dict[str, list[Figure]] = {name: [] for name, *_ in scenarios}
            for round_ in range(opts.rounds):
                order = scenarios if round_ % 2 == 0 else scenarios[::-1]
                for name, pid, url, headers, lua in order:
                    results[name].append(wrk(url, pid, opts.seconds, opts.connections, headers, lua))
        finally:
            for server in servers:
                server.stop()
            bare_proc.terminate()
            bare_proc.wait(10)
    print(f"medians of {opts.rounds} rounds of {opts.seconds} s, {opts.connections} connections")
    print(f"{'scenario':<42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'CPU ms/req':>11}")
    for name, figures in results.items():
        f = median_figure(name, figures)
        row = f"{f.rps:>8.0f} {f.p50_ms:>8.1f} {f.p99_ms:>8.1f} {f.non_2xx:>8} {f.cpu_ms_per_request:>11.2f}"
        print(f"{f.name:<42} {row}")
    print("\nin-process, per call")
    for label, micros in micro():
        print(f"{label:<50} {micros:>8.1f} us")


if __name__ == "__main__":
    main()
