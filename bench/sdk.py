"""What the SDK costs per call: `athena_client` beside the bare call it wraps, on the same RPC against the
same server, over gRPC (a generated `*_pb2_grpc` stub on a plain `grpc.insecure_channel`) and REST (an
`httpx.Client` GET of the same route, its JSON parsed).

    .venv/bin/python bench/sdk.py [--seconds 2] [--rounds 5]

One `athena api serve` (SQLite, in a temporary directory) started here serves every scenario. Calls are
sequential from one client thread, so wall time per call is latency, not throughput. Client CPU is
`time.process_time()` of this process (every thread, gRPC's included); server CPU comes from
`/proc/<pid>/stat` of the server before and after each scenario. The scenarios take turns for `--rounds`
rounds (order reversed every other round) and the medians are printed with the SDK/bare ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import athena_client  # noqa: E402
from athena.v1 import runs_pb2, runs_pb2_grpc, system_pb2, system_pb2_grpc  # noqa: E402
from tests.support.processes import start_api  # noqa: E402


@dataclass(frozen=True)
class Figure:
    calls: int
    wall_us: float
    client_cpu_us: float
    server_cpu_us: float


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(call: Callable[[], object], server_pid: int, seconds: float) -> Figure:
    for _ in range(50):  # warm-up: connections, caches, first-call costs
        call()
    calls = 0
    server_before, client_before = cpu_seconds(server_pid), time.process_time()
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(20):
            call()
        calls += 20
    wall = time.perf_counter() - started
    client, server = time.process_time() - client_before, cpu_seconds(server_pid) - server_before
    return Figure(calls, wall / calls * 1e6, client / calls * 1e6, server / calls * 1e6)


def median(figures: list[Figure]) -> Figure:
    return Figure(
        sum(f.calls for f in figures),
        statistics.median(f.wall_us for f in figures),
        statistics.median(f.client_cpu_us for f in figures),
        statistics.median(f.server_cpu_us for f in figures),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per scenario and round")
    parser.add_argument("--rounds", type=int, default=5, help="the scenarios run in turn this many times")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_api(Path(tmp), env={"ATHENA_LOG_LEVEL": "WARNING", "ATHENA_SCHEDULE_TICK_SECONDS": "0"})
        pid = server.proc.pid
        try:
            with (
                athena_client.connect(f"grpc://{server.grpc_target}") as sdk_grpc,
                athena_client.connect(server.rest_url) as sdk_rest,
                grpc.insecure_channel(server.grpc_target) as channel,
                httpx.Client(base_url=server.rest_url, timeout=60) as http,
            ):
                run_id = sdk_grpc.run_service.create_run(session_id="bench-sdk", input="hello").result.run_id
                runs = runs_pb2_grpc.RunServiceStub(channel)
                system = system_pb2_grpc.SystemServiceStub(channel)
                get_run = runs_pb2.GetRunRequest(run_id=run_id)
                health = system_pb2.GetHealthRequest()
                # (rpc, transport) -> (bare call, SDK call)
                pairs: dict[tuple[str, str], tuple[Callable[[], object], Callable[[], object]]] = {
                    ("RunService.GetRun", "gRPC"): (
                        lambda: runs.GetRun(get_run, timeout=60),
                        lambda: sdk_grpc.run_service.get_run(run_id=run_id),
                    ),
                    ("RunService.GetRun", "REST"): (
                        lambda: http.get(f"/api/v1/runs/{run_id}").json(),
                        lambda: sdk_rest.run_service.get_run(run_id=run_id),
                    ),
                    ("SystemService.GetHealth", "gRPC"): (
                        lambda: system.GetHealth(health, timeout=60),
                        lambda: sdk_grpc.system_service.get_health(),
                    ),
                    ("SystemService.GetHealth", "REST"): (
                        lambda: http.get("/api/v1/health").json(),
                        lambda: sdk_rest.system_service.get_health(),
                    ),
                }
                scenarios = [
                    (key, kind, pair[i]) for key, pair in pairs.items() for i, kind in enumerate(("bare", "SDK"))
                ]
                results: dict[tuple[tuple[str, str], str], list[Figure]] = {(k, kind): [] for k, kind, _ in scenarios}
                for round_ in range(opts.rounds):
                    for key, kind, call in scenarios if round_ % 2 == 0 else scenarios[::-1]:
                        results[key, kind].append(measure(call, pid, opts.seconds))
        finally:
            server.stop()

    print(f"medians of {opts.rounds} rounds of {opts.seconds:g} s per scenario, one client thread, sequential calls")
    head = (
        f"{'RPC':<24} {'transport':<9} {'':<5} {'calls':>7} {'wall us':>9} {'client CPU us':>14} {'server CPU us':>14}"
    )
    print(head)
    for key in pairs:
        bare, sdk = median(results[key, "bare"]), median(results[key, "SDK"])
        for kind, f in (("bare", bare), ("SDK", sdk)):
            print(
                f"{key[0]:<24} {key[1]:<9} {kind:<5} {f.calls:>7} {f.wall_us:>9.0f} {f.client_cpu_us:>14.0f} "
                f"{f.server_cpu_us:>14.0f}"
            )
        ratios = (sdk.wall_us / bare.wall_us, sdk.client_cpu_us / bare.client_cpu_us)
        server_ratio = sdk.server_cpu_us / bare.server_cpu_us if bare.server_cpu_us else float("nan")
        print(f"{'':<24} {'':<9} {'ratio':<5} {'':>7} {ratios[0]:>8.2f}x {ratios[1]:>13.2f}x {server_ratio:>13.2f}x")


if __name__ == "__main__":
    main()
