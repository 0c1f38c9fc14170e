"""Two server processes on one PostgreSQL database: events and transcript entries committed through one reach
the streams of the other through LISTEN/NOTIFY. Both servers poll only every 600 s, so within the test
nothing but a notification can wake the other server's streams; and the listener reconnects when its
connection is killed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import psycopg
import pytest

from athena.v1 import sessions_pb2, sessions_pb2_grpc
from tests.support.collected import Collected, session_events
from tests.support.events import events_of
from tests.support.postgres import servers_on_one_database
from tests.support.processes import AthenaProcess
from tests.support.shapes import new_session, ok_data
from tests.support.waiting import wait_until

# The listening connections of the servers on the test's database.
LISTENING = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'athena-listen'"


@pytest.fixture
def replicas(postgres_cluster: str, tmp_path: Path) -> Iterator[tuple[AthenaProcess, AthenaProcess, str]]:
    """Servers A and B (polling every 600 s) and the URL of their database."""
    env = {"ATHENA_EVENT_POLL_SECONDS": "600"}
    with servers_on_one_database(postgres_cluster, tmp_path, env=env) as (a, b):
        yield a, b, _database_url(a)


def _database_url(p: AthenaProcess) -> str:
    """The database a server was started on (`--db <url>` on its command line)."""
    args: list[str] = list(p.proc.args)  # type: ignore[arg-type]
    return args[args.index("--db") + 1]


def _run(client: httpx.Client, session: str, text: str) -> None:
    ok_data(client.post("/api/v1/runs", json={"sessionId": session, "input": text, "provider": "mock"}))


def test_commits_through_one_replica_reach_the_streams_of_the_other(
    replicas: tuple[AthenaProcess, AthenaProcess, str],
) -> None:
    a, b, _ = replicas
    session = new_session()
    with (
        httpx.Client(base_url=a.rest_url, timeout=60) as ca,
        grpc.insecure_channel(b.grpc_target) as channel,
    ):
        events = session_events(channel, session)
        entries = Collected(
            sessions_pb2_grpc.SessionServiceStub(channel).StreamTranscript(
                sessions_pb2.StreamTranscriptRequest(session_id=session), timeout=120
            ),
            lambda r: r.entry,
        )
        try:
            _run(ca, session, "one")
            wait_until(lambda: len(events.items) >= 3 and len(entries.items) >= 2, "run one on B's streams", 30)
            # B's streams are now past their backlog and on B's tail: the second run can only reach them live.
            _run(ca, session, "two")
            wait_until(lambda: len(events.items) >= 6 and len(entries.items) >= 4, "run two on B's streams", 30)
        finally:
            events.close()
            entries.close()
        logged = events_of(ca, session)
        assert [e.id for e in events.items] == [e["id"] for e in logged]
        assert [e.type for e in events.items] == ["run.created", "run.started", "run.completed"] * 2
        transcript = ok_data(ca.get(f"/api/v1/sessions/{session}/transcript"))["items"]
        assert [e.id for e in entries.items] == [e["id"] for e in transcript]
        assert [e.content for e in entries.items][::2] == ["one", "two"]


def test_a_listener_whose_connection_dies_reconnects_and_catches_up(
    replicas: tuple[AthenaProcess, AthenaProcess, str],
) -> None:
    a, b, url = replicas
    session = new_session()
    with (
        httpx.Client(base_url=a.rest_url, timeout=60) as ca,
        grpc.insecure_channel(b.grpc_target) as channel,
        psycopg.connect(url, autocommit=True) as admin,
    ):
        events = session_events(channel, session)
        try:
            # Only B follows anything, so B's is the one listening connection.
            (old,) = wait_until(lambda: admin.execute(LISTENING).fetchall(), "B to listen", 30)
            admin.execute("SELECT pg_terminate_backend(%s)", old)
            new = wait_until(
                lambda: [row for row in admin.execute(LISTENING).fetchall() if row != old], "B to listen again", 30
            )
            assert len(new) == 1
            _run(ca, session, "after the reconnect")
            wait_until(lambda: len(events.items) >= 3, "the run's events on B's stream", 30)
        finally:
            events.close()
        assert [e.id for e in events.items] == [e["id"] for e in events_of(ca, session)]
