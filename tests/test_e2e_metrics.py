"""`GET /metrics` end to end: a real `athena api serve` (and `athena grpc serve --metrics-port`) scraped in
the Prometheus text format, the exact change of each labelled series after runs that succeed, fail, are
cancelled or refused, bad requests, gRPC and REST calls, an SSE subscriber and a schedule slot; and no
label holding a session or run id."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

from athena.v1 import runs_pb2, runs_pb2_grpc
from tests.support.processes import free_port, serving, start, wait_grpc_ready
from tests.support.shapes import error_of, new_session, ok_data
from tests.support.waiting import wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

REST_RUNS = ("/api/v1/runs", "POST")
CREATE_RUN = "athena.v1.RunService/CreateRun"
GET_RUN = "athena.v1.RunService/GetRun"
STREAM_EVENTS = "athena.v1.EventService/StreamEvents"


def scrape(url: str) -> tuple[Samples, httpx.Response]:
    resp = httpx.get(f"{url}/metrics", timeout=30)
    assert resp.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, resp


def value(samples: Samples, name: str, **labels: str) -> float:
    """A series' value; 0 when absent (a labelled series appears with its first event)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


class Delta:
    """The change of every series between the scrape at construction and `now()`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.before, _ = scrape(url)

    def now(self) -> Samples:
        after, _ = scrape(self.url)
        return {k: v - self.before.get(k, 0.0) for k, v in after.items()}


# Every session id the tests use, so the label check can look for them.
SESSIONS: set[str] = set()


def session() -> str:
    sid = new_session()
    SESSIONS.add(sid)
    return sid


def run(client: httpx.Client, **fields: object) -> httpx.Response:
    return client.post("/api/v1/runs", json={"sessionId": session(), "input": "hi", **fields})


def test_rest_and_grpc_traffic_moves_exactly_the_series_it_should(workdir: Path) -> None:
    env = {"ATHENA_SCHEDULE_TICK_SECONDS": "0"}
    with serving(workdir, env=env) as served:
        client, url = served.rest, served.process.rest_url
        _, resp = scrape(url)
        assert resp.headers["content-type"].startswith("text/plain; version=")
        assert "# TYPE athena_runs_ended_total counter" in resp.text
        delta = Delta(url)
        ids: set[str] = set()

        # Two runs that succeed, one whose provider fails every attempt, one bad body, one missing run.
        for _ in range(2):
            ids.add(ok_data(run(client))["runId"])
        failed_code = "PROVIDER_ERROR"
        error_of(run(client, metadata={"mock.failAttempts": "100"}), 502, failed_code)
        bad = client.post("/api/v1/runs", content=b"{not json", headers={"content-type": "application/json"})
        error_of(bad, 400, "CONFIG_ERROR")
        error_of(client.get("/api/v1/runs/run_missing"), 404, "NOT_FOUND")
        d = delta.now()
        assert value(d, "athena_runs_ended_total", status="succeeded", provider="mock") == 2
        assert value(d, "athena_runs_ended_total", status="failed", provider="mock") == 1
        assert value(d, "athena_run_duration_seconds_count", provider="mock") == 3
        assert value(d, "athena_run_queue_wait_seconds_count", provider="mock") == 3
        assert value(d, "athena_rpc_requests_total", rpc=CREATE_RUN, transport="rest", code="OK") == 2
        assert value(d, "athena_rpc_requests_total", rpc=CREATE_RUN, transport="rest", code=failed_code) == 1
        assert value(d, "athena_rpc_requests_total", rpc=GET_RUN, transport="rest", code="NOT_FOUND") == 1
        assert value(d, "athena_rpc_request_duration_seconds_count", rpc=CREATE_RUN, transport="rest") == 3
        route, method = REST_RUNS
        assert value(d, "athena_http_requests_total", route=route, method=method, code="OK") == 2
        assert value(d, "athena_http_requests_total", route=route, method=method, code=failed_code) == 1
        # The bad body never reached the server: only the gateway counted it.
        assert value(d, "athena_http_requests_total", route=route, method=method, code="CONFIG_ERROR") == 1
        assert (
            value(d, "athena_http_requests_total", route="/api/v1/runs/{run_id}", method="GET", code="NOT_FOUND") == 1
        )
        attempts = value(d, "athena_provider_attempts_total", provider="mock")
        errors = value(d, "athena_provider_errors_total", provider="mock", code=failed_code)
        assert errors >= 1 and attempts == 2 + errors  # two clean attempts, every other one failed

        # gRPC: counted apart from REST.
        delta = Delta(url)
        stub = runs_pb2_grpc.RunServiceStub(served.channel)
        ids.add(stub.CreateRun(runs_pb2.CreateRunRequest(session_id=session(), input="x")).result.run_id)
        try:
            stub.GetRun(runs_pb2.GetRunRequest(run_id="run_missing"))
            raise AssertionError("GetRun of a missing run answered")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
        d = delta.now()
        assert value(d, "athena_rpc_requests_total", rpc=CREATE_RUN, transport="grpc", code="OK") == 1
        assert value(d, "athena_rpc_requests_total", rpc=GET_RUN, transport="grpc", code="NOT_FOUND") == 1
        assert value(d, "athena_rpc_requests_total", rpc=CREATE_RUN, transport="rest", code="OK") == 0
        assert value(d, "athena_http_requests_total", route=route, method=method, code="OK") == 0
        assert value(d, "athena_runs_ended_total", status="succeeded", provider="mock") == 1

        # A slow run holds the only slot: the next is refused, the store's gauges show both, then a cancel.
        delta = Delta(url)
        slow = ok_data(run(client, wait=False, metadata={"mock.delayMs": "60000"}), 202)
        ids.add(slow["runId"])
        ok_data(client.put("/api/v1/policy", json={"schemaVersion": 1, "maxConcurrentRuns": 1}))
        wait_until(lambda: value(scrape(url)[0], "athena_runs_active", status="running") == 1, "the slow run running")
        error_of(run(client), 429, "POLICY_CONCURRENCY_LIMIT_EXCEEDED")
        samples, _ = scrape(url)
        assert value(samples, "athena_policy_max_concurrent_runs") == 1
        assert value(samples, "athena_runs_active", status="pending") == 0
        ok_data(client.post(f"/api/v1/run-control/by-run/{slow['runId']}/cancel", json={"reason": "test"}))
        wait_until(
            lambda: value(delta.now(), "athena_runs_ended_total", status="cancelled", provider="mock") == 1,
            "the cancelled run counted",
        )
        d = delta.now()
        assert value(d, "athena_admission_refusals_total", reason="max-concurrent-runs-exceeded") == 1
        assert value(d, "athena_runs_ended_total", status="failed", provider="mock") == 0
        assert value(scrape(url)[0], "athena_runs_active", status="running") == 0

        # An SSE subscriber is a REST stream of StreamEvents while it is connected, and only then.
        opened = threading.Event()
        stop = threading.Event()

        def subscribe() -> None:
            with httpx.stream("GET", f"{url}/api/v1/events/stream", timeout=60) as resp:
                opened.set()
                for _ in resp.iter_lines():
                    if stop.is_set():
                        return

        reader = threading.Thread(target=subscribe, daemon=True)
        reader.start()
        opened.wait(30)
        subscribers = {"rpc": STREAM_EVENTS, "transport": "rest"}
        wait_until(lambda: value(scrape(url)[0], "athena_stream_subscribers", **subscribers) == 1, "one subscriber")
        stop.set()
        ok_data(run(client))  # an event for the reader to wake on and leave
        reader.join(30)
        wait_until(lambda: value(scrape(url)[0], "athena_stream_subscribers", **subscribers) == 0, "no subscriber")

        # A schedule due now fires one slot on the next tick.
        delta = Delta(url)
        body = {"id": "m1", "sessionId": session(), "input": "tick", "everyMinutes": 60, "startNow": True}
        ok_data(client.post("/api/v1/schedules", json=body))
        assert value(scrape(url)[0], "athena_schedule_lag_seconds") >= 0
        ok_data(client.post("/api/v1/schedules/tick", json={}))
        wait_until(
            lambda: value(delta.now(), "athena_runs_ended_total", status="succeeded", provider="mock") == 1,
            "the schedule's run counted",
        )
        assert value(delta.now(), "athena_schedule_slots_total", outcome="fired") == 1

        # Bounded labels: no session, run or trace id anywhere in a label value.
        samples, resp = scrape(url)
        labels = {v for _, pairs in samples for _, v in pairs}
        assert not {v for v in labels if any(i in v for i in ids | SESSIONS) or len(v) > 80}
        assert "run_missing" not in resp.text and "session" not in {k for _, pairs in samples for k, _ in pairs}


def other_port(*taken: int) -> int:
    return wait_until(lambda: next(p for p in iter(free_port, 0) if p not in taken), "a free port")


def test_grpc_serve_answers_metrics_on_its_own_port_and_a_gateway_its_own(workdir: Path) -> None:
    grpc_port = free_port()
    metrics_port = other_port(grpc_port)
    rest_port = other_port(grpc_port, metrics_port)
    p = start(["grpc", "serve", "--port", str(grpc_port)], workdir, {"ATHENA_METRICS_PORT": str(metrics_port)}, "grpc")
    p.grpc_port = grpc_port
    gw = start(["gateway", "serve", "--upstream", p.grpc_target, "--port", str(rest_port)], workdir, None, "gateway")
    gw.rest_port = rest_port
    try:
        wait_grpc_ready(p)
        url = f"http://127.0.0.1:{metrics_port}"
        delta = Delta(url)
        with grpc.insecure_channel(p.grpc_target) as channel:
            stub = runs_pb2_grpc.RunServiceStub(channel)
            stub.CreateRun(runs_pb2.CreateRunRequest(session_id=session(), input="x"))
        d = delta.now()
        assert value(d, "athena_rpc_requests_total", rpc=CREATE_RUN, transport="grpc", code="OK") == 1
        assert value(d, "athena_runs_ended_total", status="succeeded", provider="mock") == 1
        samples, resp = scrape(url)
        assert resp.headers["content-type"].startswith("text/plain; version=")
        assert value(samples, "athena_runs_active", status="running") == 0
        assert httpx.get(f"{url}/api/v1/runs", timeout=10).status_code == 404  # that port serves /metrics only

        # A separate gateway process: its /metrics holds its own REST figures; the run is the server's.
        wait_until(lambda: _answers(gw.rest_url), "the gateway answering")
        gateway = Delta(gw.rest_url)
        server = Delta(url)
        with httpx.Client(base_url=gw.rest_url, timeout=60) as client:
            ok_data(run(client))
        route, method = REST_RUNS
        d = gateway.now()
        assert value(d, "athena_http_requests_total", route=route, method=method, code="OK") == 1
        assert value(d, "athena_runs_ended_total", status="succeeded", provider="mock") == 0
        d = server.now()
        assert value(d, "athena_rpc_requests_total", rpc=CREATE_RUN, transport="grpc", code="OK") == 1
        assert value(d, "athena_runs_ended_total", status="succeeded", provider="mock") == 1
    finally:
        assert gw.stop() == 0, gw.log()
        assert p.stop() == 0, p.log()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/metrics", timeout=5).status_code == 200
    except httpx.TransportError:
        return False
