"""Every Prometheus metric the server and the gateway expose, defined in one place, and `/metrics`' text.

One registry per `Metrics` (one per ControlPlane, or per gateway process), not prometheus-client's global
default: tests run several planes in one process, and each plane's `/metrics` must show its own figures.

Two kinds of figure:
- Events on the hot path (requests, run endings, refusals, provider attempts, slots fired, workflow steps,
  stream subscribers, store transactions) are counters, histograms and gauges updated where they happen.
  Labels are bounded sets (RPC names, routes, statuses, error codes, provider names, refusal reasons):
  never a session, run or trace id. `labels()` costs microseconds, so each family keeps its children by
  label values (`_Family`). What happens inside a store transaction is recorded *after* its commit:
  the unit hands a recording to `after_commit`, the store applies it once the commit stood (a unit that
  rolled back records nothing).
- Facts in the store (runs pending and running, the policy's limit, work-queue depth, schedule lag, cost
  today against the budget) are not kept up to date on the hot path: `scrape` reads them in one small
  read transaction (storage/gauges.py) per scrape and `_StoreFacts` exposes that snapshot.

Processes: replicas are separate servers, each scraped on its own. The workers of `--workers N`
(athena_server/workers.py) run with PROMETHEUS_MULTIPROC_DIR set before start-up: prometheus-client keeps
the event figures in files shared by the workers and `scrape` merges them (MultiProcessCollector); the
store facts are the same from every process, so they come from the process answering the scrape.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection

if TYPE_CHECKING:
    from athena_server.storage.gauges import Snapshot
    from athena_server.storage.store import Store

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "after_commit"]

# No `<name>_created` sample beside every counter and histogram child: in the text format each is one more
# series for Prometheus to store, and a restart already shows as a counter reset. (Process-wide: the
# switch is prometheus-client's own.)
disable_created_metrics()

M = TypeVar("M", Counter, Gauge, Histogram)

GRPC = "grpc"
REST = "rest"  # a REST request served in-process (`athena api serve`): SSE for a streaming RPC
OK = "OK"
# A handler that aborted the call itself (the interceptor maps every other error to its contract code).
ABORTED = "ABORTED"
# A stream its client left before the end.
CANCELLED = "CANCELLED"

WRITE = "write"
READ = "read"

_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_RUN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# Where a store unit leaves what to record once its transaction committed (Connection.info).
PENDING = "athena_metrics_pending"
Recording = Callable[["Metrics"], None]


def after_commit(conn: Connection, recording: Recording) -> None:
    """Record `recording` if, and once, the transaction `conn` runs in commits (Store applies it)."""
    pending: list[Recording] | None = conn.info.get(PENDING)
    if pending is None:
        conn.info[PENDING] = [recording]
    else:
        pending.append(recording)


class _Family(Generic[M]):
    """A labelled metric with its children kept by label values: `labels()` validates and locks on every
    call (~4 µs here); a dict hit does not."""

    __slots__ = ("children", "metric")

    def __init__(self, metric: M) -> None:
        self.metric: M = metric
        self.children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.metric.labels(*values)
        return child


class _StoreFacts(Collector):
    """The gauges read from the store, as of the last `Metrics.scrape` (nothing before the first)."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.writer_queue: Callable[[], int] = lambda: 0

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterator[Metric]:
        queue = GaugeMetricFamily(
            "athena_store_sqlite_writer_queue_length",
            "Write transactions waiting for the SQLite writer thread (0 on PostgreSQL).",
        )
        queue.add_metric([], self.writer_queue())
        yield queue
        snap = self.snapshot
        if snap is None:
            return
        active = GaugeMetricFamily(
            "athena_runs_active", "Runs not yet ended, in every process of the store, by status.", labels=["status"]
        )
        for status, count in snap.active.items():
            active.add_metric([status], count)
        yield active
        limit = GaugeMetricFamily(
            "athena_policy_max_concurrent_runs", "The policy's maxConcurrentRuns (absent: no limit)."
        )
        if snap.max_concurrent_runs is not None:
            limit.add_metric([], snap.max_concurrent_runs)
        yield limit
        depth = GaugeMetricFamily("athena_work_queue_depth", "Work items queued, over every session.")
        depth.add_metric([], snap.work_items)
        yield depth
        lag = GaugeMetricFamily(
            "athena_schedule_lag_seconds", "Now minus the due time of the most overdue enabled schedule (0: none due)."
        )
        lag.add_metric([], snap.schedule_lag_ms / 1000)
        yield lag
        cost = GaugeMetricFamily("athena_cost_today_usd", "Recorded cost of the runs finished today (UTC).")
        cost.add_metric([], snap.cost_today_usd)
        yield cost
        budget = GaugeMetricFamily(
            "athena_cost_budget_daily_usd", "The policy's costBudgetDailyUsd (absent: no budget)."
        )
        if snap.cost_budget_daily_usd is not None:
            budget.add_metric([], snap.cost_budget_daily_usd)
        yield budget


class Metrics:
    """The metrics of one process (or one control plane in it) and their exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # Requests: every RPC through the server's interceptor (gRPC, or REST served in-process) ...
        self.rpc_requests = _Family(
            Counter(
                "athena_rpc_requests_total",
                "RPCs answered, by RPC, transport (grpc | rest: in-process REST) and contract error code (OK).",
                ["rpc", "transport", "code"],
                registry=r,
            )
        )
        self.rpc_seconds = _Family(
            Histogram(
                "athena_rpc_request_duration_seconds",
                "Time to answer an RPC (a stream: its whole life), by RPC and transport.",
                ["rpc", "transport"],
                buckets=_REQUEST_BUCKETS,
                registry=r,
            )
        )
        # ... and every REST request the gateway answered, including those it refused itself.
        self.http_requests = _Family(
            Counter(
                "athena_http_requests_total",
                "REST requests answered by the gateway, by route template, method and contract error code (OK).",
                ["route", "method", "code"],
                registry=r,
            )
        )
        self.http_seconds = _Family(
            Histogram(
                "athena_http_request_duration_seconds",
                "Time for the gateway to answer a REST request (an SSE stream: to open it), by route and method.",
                ["route", "method"],
                buckets=_REQUEST_BUCKETS,
                registry=r,
            )
        )
        self.stream_subscribers = _Family(
            Gauge(
                "athena_stream_subscribers",
                "Server-streaming RPCs open now, by RPC and transport (rest: SSE subscribers served in-process).",
                ["rpc", "transport"],
                registry=r,
                multiprocess_mode="livesum",
            )
        )
        # Runs.
        self.runs_ended = _Family(
            Counter(
                "athena_runs_ended_total",
                "Runs that ended, by final status and provider.",
                ["status", "provider"],
                registry=r,
            )
        )
        self.run_seconds = _Family(
            Histogram(
                "athena_run_duration_seconds",
                "From a run's start (its session's turn) to its end, by provider (runs that never started: none).",
                ["provider"],
                buckets=_RUN_BUCKETS,
                registry=r,
            )
        )
        self.queue_wait_seconds = _Family(
            Histogram(
                "athena_run_queue_wait_seconds",
                "From a run's admission to its start (its session's turn), by provider; observed when it ends.",
                ["provider"],
                buckets=_WAIT_BUCKETS,
                registry=r,
            )
        )
        self.admission_refusals = _Family(
            Counter(
                "athena_admission_refusals_total",
                "Runs the policy refused at admission, by reason.",
                ["reason"],
                registry=r,
            )
        )
        self.provider_attempts = _Family(
            Counter("athena_provider_attempts_total", "Provider calls made, by provider.", ["provider"], registry=r)
        )
        self.provider_errors = _Family(
            Counter(
                "athena_provider_errors_total",
                "Provider calls that failed, by provider and contract error code.",
                ["provider", "code"],
                registry=r,
            )
        )
        # Later work.
        self.schedule_slots = _Family(
            Counter(
                "athena_schedule_slots_total",
                "Due schedule slots claimed by this process: fired (its run started) or already-running (skipped).",
                ["outcome"],
                registry=r,
            )
        )
        self.workflow_steps = _Family(
            Counter(
                "athena_workflow_steps_total",
                "Workflow step transitions, by the status entered.",
                ["status"],
                registry=r,
            )
        )
        # The store.
        self.store_seconds = _Family(
            Histogram(
                "athena_store_transaction_seconds",
                "Store transactions that committed, by kind (write: a SQLite group commit or a PostgreSQL unit; read).",
                ["kind"],
                buckets=_STORE_BUCKETS,
                registry=r,
            )
        )
        self._facts: _StoreFacts | None = None
        self._store: Store | None = None

    def watch(self, store: Store, writer_queue: Callable[[], int]) -> None:
        """Expose the store's facts (read at each scrape) and its writer queue's length."""
        self._store = store
        self._facts = _StoreFacts()
        self._facts.writer_queue = writer_queue
        self.registry.register(self._facts)

    # ---- recordings ----------------------------------------------------------------------------------

    def run_ended(self, status: str, provider: str, created_ms: int, started_ms: int | None, ended_ms: int) -> None:
        self.runs_ended(status, provider).inc()
        if started_ms is not None:
            self.queue_wait_seconds(provider).observe(max(0, started_ms - created_ms) / 1000)
            self.run_seconds(provider).observe(max(0, ended_ms - started_ms) / 1000)

    def apply(self, pending: list[Recording]) -> None:
        """Record what committed units left (`after_commit`); a bad recording never fails the store."""
        for recording in pending:
            try:
                recording(self)
            except Exception:  # pragma: no cover - a bug in a recording, not in the transaction
                import logging

                logging.getLogger(__name__).exception("metrics recording failed")

    # ---- exposition ----------------------------------------------------------------------------------

    async def scrape(self) -> bytes:
        """The text exposition: the store's facts read now (one read transaction), then every metric."""
        if self._store is not None and self._facts is not None:
            from athena_server.storage import gauges

            self._facts.snapshot = await self._store.read(lambda conn: gauges.read(conn, int(time.time() * 1000)))
        return generate_latest(self._exposed())

    def _exposed(self) -> Any:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return self.registry
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        if self._facts is not None:
            merged.register(self._facts)
        return merged


def exposition_app(metrics: Metrics) -> Any:
    """A Starlette app answering `GET /metrics` only: the port of its own (`--metrics-port`) of a process
    without a REST port. No Host allow-list: a scraper names the server by address, and the page holds
    no browser-reachable state."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def metrics_text(_: Request) -> Response:
        return Response(await metrics.scrape(), headers={"content-type": CONTENT_TYPE_LATEST})

    return Starlette(routes=[Route("/metrics", metrics_text, methods=["GET"])])
