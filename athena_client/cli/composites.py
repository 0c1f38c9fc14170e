"""The hand-written commands: friendlier than the generated call, still flagged from the contract.

- `athena run INPUT --session-id S ...` (CreateRun) and `athena template run --id T ...`: a spinner while
  it waits, then the run's output on stdout and a summary line on stderr. `INPUT` `-` reads stdin. Over the
  local transport a run started with `--no-wait` would die with the process, so the command says so, waits
  for it and prints how it ended.
- `athena sessions transcript SESSION_ID [--follow]` (ListTranscriptEntries, then StreamTranscript): the
  entries, and with `--follow` the new ones as they are written (one per line; JSON lines with `-o json`).
"""

from __future__ import annotations

import sys
from typing import Any

import click
from google.protobuf.message import Message

from athena.v1 import runs_pb2, sessions_pb2
from athena_client.cli.connection import Connection
from athena_client.cli.contract_commands import COUNT, Composite, Invocation, call, stream
from athena_client.cli.output import data_of
from athena_client.contract import message_to_json
from athena_client.rpcs import rpc

GET_RUN = "athena.v1.RunService.GetRun"
STREAM_TRANSCRIPT = "athena.v1.SessionService.StreamTranscript"
# Statuses of a run answered before it finished (`wait: false`).
UNFINISHED = frozenset({"pending", "running"})


def summary(result: dict[str, Any]) -> str:
    """`run <id> succeeded · mock/default · 1 attempt · $0.0012`: the run, for people, on stderr."""
    parts = [f"run {result.get('runId', '?')} {result.get('status', '')}".strip()]
    parts.append(f"{result.get('provider', '')}/{result.get('model', '')}")
    attempts = result.get("attempts")
    if attempts:
        parts.append(f"{attempts} attempt{'s' if attempts != 1 else ''}")
    cost = result.get("costUsd")
    if cost is not None:
        parts.append(f"${cost:g}")
    return " · ".join(parts)


def _read_input(request: Message) -> None:
    if isinstance(request, runs_pb2.CreateRunRequest) and request.input == "-":
        request.input = sys.stdin.read()


def run_action(inv: Invocation, conn: Connection) -> None:
    """`athena run` and `athena template run`: both answer a `RunResult` in `result`."""
    _read_input(inv.request)
    response = call(inv, conn)
    run: runs_pb2.RunResult = getattr(response, "result")  # noqa: B009 (CreateRun and RunRunTemplate alike)
    result = data_of(inv.rpc, response) or {}
    printer = inv.printer
    if printer.json:
        printer.response(inv.rpc, response)
    elif run.HasField("output"):
        printer.text(run.output)
        printer.note(summary(result))
    else:
        printer.response(inv.rpc, response)
    if result.get("status") in UNFINISHED and conn.local is not None:
        _finish_locally(inv, conn, run.run_id)


def _finish_locally(inv: Invocation, conn: Connection, run_id: str) -> None:
    """The local transport's plane ends with this process: wait for the admitted run, then say how it
    ended (stderr; stdout keeps the accepted run as printed)."""
    printer = inv.printer
    printer.note(
        f"athena: --no-wait over the local transport: waiting for run {run_id} to finish, because the "
        "in-process control plane stops when athena exits (use a server to leave runs running)."
    )
    conn.settle()
    get = rpc(GET_RUN)
    final = conn.client.call(get, runs_pb2.GetRunRequest(run_id=run_id))
    run = data_of(get, final) or {}
    error = run.get("error") or {}
    ending = f"run {run_id} {run.get('status', '')}"
    if error:
        ending += f": {error.get('code', '')}: {error.get('message', '')}"
    printer.note(ending)


def _follow_params() -> list[click.Parameter]:
    return [
        click.Option(["--follow", "-f"], is_flag=True, default=False, help="Then print new entries as they come."),
        click.Option(
            [f"--{COUNT}", COUNT],
            type=click.IntRange(min=1),
            metavar="N",
            help="With --follow: stop after this many new entries.",
        ),
    ]


def transcript_action(inv: Invocation, conn: Connection) -> None:
    if not inv.extras.get("follow"):
        inv.printer.response(inv.rpc, call(inv, conn))
        return
    request = inv.request
    assert isinstance(request, sessions_pb2.ListTranscriptEntriesRequest)
    response = call(inv, conn)
    assert isinstance(response, sessions_pb2.ListTranscriptEntriesResponse)
    printer = inv.printer
    last = ""
    for entry in response.items:
        printer.item(message_to_json(entry))
        last = entry.id
    following = sessions_pb2.StreamTranscriptRequest(session_id=request.session_id, after=last)
    stream(inv, conn, rpc(STREAM_TRANSCRIPT), following, inv.extras.get(COUNT))


COMPOSITES: dict[str, Composite] = {
    "run": Composite(params=list, action=run_action),
    "transcript": Composite(params=_follow_params, action=transcript_action),
}
