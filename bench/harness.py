"""What the run-path benchmarks (bench/rest_wrk.py, grpc_load.py, streams.py, replicas.py, path.py) share:
a server's CPU time read from /proc (its whole process tree), wrk runs parsed, percentiles, the bare
baselines and Athena servers started as separate processes, and persisted runs counted in the store.

The figures are measured from outside the server, as an operator would: the load generators are separate
processes (wrk, or several Python client processes), and CPU per request is the server's own utime+stime
delta divided by what it served, never the client's.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.processes import AthenaProcess, free_port, start_api  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc/<pid>/task/*/children (every thread's children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def tree_cpu_seconds(pid: int) -> float:
    """utime+stime of `pid` and every live descendant, plus the reaped children's (cutime+cstime): the CPU a
    server that spawns workers spent, read from /proc/<pid>/stat. A descendant that exits between two
    readings without being reaped by its parent loses its time; Athena's children are reaped."""
    total = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError, IndexError):
            fields = _stat_fields(current)
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
            todo += _children(current)
    return total / CLK_TCK


def own_cpu_seconds() -> float:
    """This process's CPU time (user+system), for reporting a load generator's own load."""
    times = os.times()
    return times.user + times.system


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


# --- wrk ----------------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    server_cpu_s: float
    client_cpu_s: float  # wrk's own CPU time (2 threads), to show the load generator is not the bottleneck

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu_s * 1000 / max(self.requests, 1)


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run scripts/bench-setup (Debian package wrk).")


def wrk(
    url: str,
    server_pid: int,
    seconds: int,
    connections: int,
    script: Path | None = None,
    script_args: tuple[str, ...] = (),
) -> WrkResult:
    """One wrk run (2 threads, `--latency`); the server's CPU (process tree) is read around it."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    if script is not None:
        args += ["-s", str(script)]
    before, children = tree_cpu_seconds(server_pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    tail = ["--", *script_args] if script_args else []
    done = subprocess.run([*args, url, *tail], capture_output=True, text=True)
    used = tree_cpu_seconds(server_pid) - before
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (reaped.ru_utime - children.ru_utime) + (reaped.ru_stime - children.ru_stime)
    out = done.stdout
    if done.returncode != 0 or "requests in" not in out:
        raise RuntimeError(f"wrk failed ({done.returncode}): {out}\n{done.stderr}")

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, out, re.M)
        if match is None:
            raise RuntimeError(f"wrk output without {pattern!r}:\n{out}")
        return match

    requests_line = find(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        requests=int(requests_line.group(1)),
        seconds=_ms(requests_line.group(2) + requests_line.group(3)) / 1000,
        rps=float(find(r"Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=_ms(find(r"^\s+50%\s+(\S+)").group(1)),
        p90_ms=_ms(find(r"^\s+90%\s+(\S+)").group(1)),
        p99_ms=_ms(find(r"^\s+99%\s+(\S+)").group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        server_cpu_s=used,
        client_cpu_s=wrk_cpu,
    )


# --- servers ------------------------------------------------------------------------------------------


def _spawn_baseline(kind: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "baselines.py"), kind, str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def bare_rest() -> Iterator[tuple[int, str]]:
    """The bare FastAPI app of bench/baselines.py: yields (pid, base URL)."""
    port = free_port()
    proc = _spawn_baseline("rest", port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/bare", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the bare FastAPI baseline did not start") from None
                time.sleep(0.05)
        yield proc.pid, f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@contextlib.contextmanager
def bare_grpc() -> Iterator[tuple[int, str]]:
    """The bare grpc.aio echo of bench/baselines.py: yields (pid, target)."""
    port = free_port()
    proc = _spawn_baseline("grpc", port)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
        yield proc.pid, f"127.0.0.1:{port}"
    finally:
        _stop(proc)


#: Quiet logs (a log line per request would be part of what is measured, and is not the default elsewhere).
SERVER_ENV = {"ATHENA_LOG_LEVEL": "WARNING"}


@contextlib.contextmanager
def athena(workdir: Path, env: dict[str, str] | None = None, workers: int = 1) -> Iterator[tuple[AthenaProcess, Path]]:
    """`athena api serve [--workers N]` on SQLite at `workdir/bench.db`: yields (process, database file).
    The process is stopped (SIGTERM, graceful) when the block ends, so the file can then be counted."""
    db = workdir / "bench.db"
    extra = ["--db", str(db), *(["--workers", str(workers)] if workers > 1 else [])]
    server = start_api(workdir, env={**SERVER_ENV, **(env or {})}, extra=extra)
    try:
        yield server, db
    finally:
        server.stop()


def count_rows(db: Path, table: str, where: str = "") -> int:
    """Rows of a table in a stopped server's SQLite file."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table} {where}").fetchone()[0])


# --- the table --------------------------------------------------------------------------------


@dataclass
class Row:
    """One row of issue 13's table: what was measured this run, the goal, and whether it was met."""

    figure: str
    before: str
    measured: str
    goal: str
    met: bool | None  # None: nothing to judge (the harness could not measure it)


def print_rows(rows: list[Row]) -> None:
    width = max(len(r.figure) for r in rows)
    print(f"\n{'figure':<{width}}  {'before':>24}  {'measured':>34}  {'goal':>16}  result")
    for r in rows:
        verdict = "n/a" if r.met is None else ("PASS" if r.met else "FAIL")
        print(f"{r.figure:<{width}}  {r.before:>24}  {r.measured:>34}  {r.goal:>16}  {verdict}")
