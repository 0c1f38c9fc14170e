"""Athena's Python SDK in one short program: start runs, read their state, page through events, follow a
run live, and handle what the server refuses.

    ./scripts/serve &                                   # a server on 127.0.0.1 (gRPC 50051, REST 8787)
    .venv/bin/python examples/sdk_quickstart.py         # over gRPC
    .venv/bin/python examples/sdk_quickstart.py http://127.0.0.1:8787   # the same over REST

Every request and response is a typed Protobuf message (mypy checks this file), and every refusal is an
`AthenaError` with the contract's code, whichever transport carried it.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import athena_client
from athena.v1 import events_pb2, runs_pb2
from athena_client import AthenaError, AthenaTransportError

TERMINAL_EVENTS = {"run.completed", "run.failed", "run.cancelled"}


def ask(url: str, session_id: str) -> runs_pb2.RunResult:
    """One run, waited for; the session's transcript becomes the context of its next run."""
    with athena_client.connect(url) as client:
        result = client.run_service.create_run(session_id=session_id, input="Summarise the open incidents").result
        print(f"run {result.run_id} {runs_pb2.RunStatus.Name(result.status)}: {result.output}")
        run: runs_pb2.Run = client.run_service.get_run(run_id=result.run_id).run
        print(f"  {run.attempts} attempt(s), finished at {run.finished_at}")

        # Paged lists come as iterators over every item; each page is one call.
        for event in client.event_service.iter_list_events(session_id=session_id, limit=2):
            print(f"  {event.id} {event.type}")

        try:
            client.run_service.get_run(run_id="no-such-run")
        except AthenaError as error:  # the same code, status and message over gRPC and REST
            print(f"  refused: {error.code} (HTTP {error.http_status}): {error.message}")
        return result


async def follow(url: str, session_id: str) -> list[events_pb2.Event]:
    """Start a run without waiting, then follow its events live until it ends."""
    async with athena_client.connect_async(url) as client:
        started = await client.run_service.create_run(
            session_id=session_id, input="Draft the weekly report", wait=False, metadata={"mock.delayMs": "300"}
        )
        run_id = started.result.run_id
        # Streams start at the live edge: resume after what the list already shows, so nothing is missed.
        seen = list((await client.event_service.list_events(session_id=session_id, run_id=run_id)).events)
        if seen and seen[-1].type in TERMINAL_EVENTS:
            return seen
        stream = client.event_service.stream_events(session_id=session_id, after=seen[-1].id if seen else None)
        async for message in stream:
            seen.append(message.event)
            print(f"  live: {message.event.id} {message.event.type}")
            if message.event.type in TERMINAL_EVENTS and message.event.run_id == run_id:
                break
        return seen


def main(url: str) -> int:
    session_id = f"quickstart-{uuid.uuid4().hex[:8]}"
    try:
        first = ask(url, session_id)
        events = asyncio.run(follow(url, session_id))
    except AthenaTransportError as error:  # no answer at all: nothing listening, or the deadline passed
        print(f"cannot reach Athena at {url}: {error.code} {error.message}", file=sys.stderr)
        return 1
    except AthenaError as error:
        print(f"Athena refused: {error.code}: {error.message} (trace {error.trace_id})", file=sys.stderr)
        return 1
    print(f"session {session_id}: first run {first.run_id}, then {len(events)} events of the second")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "grpc://127.0.0.1:50051"))
