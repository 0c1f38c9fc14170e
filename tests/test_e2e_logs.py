"""Structured logs and a quiet start-up (issue 14), from real server processes: `--log-format json` writes
nothing but JSON objects, a request's lines carry its trace id, and starting at INFO prints Athena's own few
lines (no Alembic, no uvicorn banner) in either format."""

from __future__ import annotations

import json
import re
import signal
import uuid
from pathlib import Path
from typing import Any

import grpc
import httpx
from alembic.script import ScriptDirectory

from athena.v1 import runs_pb2
from athena_client.contract import TRACE_HEADER
from athena_server.storage.migrate import MIGRATIONS
from tests.support.processes import AthenaProcess, free_port, start, start_api, wait_grpc_ready, wait_rest_ready
from tests.support.shapes import ISO_MS, error_of, new_session, ok_data

# Settings pinned, so the lines do not depend on the environment the suite runs in.
BASE_ENV = {"ATHENA_LOG_LEVEL": "INFO", "ATHENA_LOG_FORMAT": "text", "ATHENA_COMMAND_ALLOW": ""}
HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()
ACCESS = "athena.access"
# The RPCs the tests' readiness waits make (tests/support/processes.py).
READINESS_RPCS = {"/grpc.health.v1.Health/Check", "/athena.v1.SystemService/GetReadiness"}
COMMAND_OFF = ("athena_server.engine.providers.registry", "command provider: disabled (ATHENA_COMMAND_ALLOW is empty)")
SCHEMA_NEW = ("athena_server.storage.migrate", f"store schema upgraded from empty to {HEAD}")
TEXT_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<message>.*?)"
    r"(?: \[trace=(?P<traceId>[A-Za-z0-9._:-]+)\])?$"
)


def json_lines(p: AthenaProcess) -> list[dict[str, Any]]:
    """Every line the process wrote (stdout and stderr), each of which must be a JSON log object."""
    lines = []
    for line in p.log().splitlines():
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        assert {"time", "level", "logger", "message"} <= set(obj), line
        assert ISO_MS.match(obj["time"]), line
        assert obj["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), line
        lines.append(obj)
    return lines


def text_lines(p: AthenaProcess) -> list[dict[str, Any]]:
    """Every line the process wrote, each of which must be a text log line; parsed into the JSON fields."""
    lines = []
    for line in p.log().splitlines():
        match = TEXT_LINE.match(line)
        assert match is not None, line
        lines.append({k: v for k, v in match.groupdict().items() if v is not None})
    return lines


def own_lines(lines: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(level, logger, message) of every line but the access log's, checking the access lines are only
    the readiness waits' and that no start-up line claims a trace id."""
    own = []
    for line in lines:
        if line["logger"] == ACCESS:
            continue
        assert "traceId" not in line, line
        own.append((line["level"], line["logger"], line["message"]))
    return own


def access_of(lines: list[dict[str, Any]], trace: str) -> list[str]:
    return [line["message"] for line in lines if line["logger"] == ACCESS and line.get("traceId") == trace]


def readiness_only(lines: list[dict[str, Any]]) -> None:
    methods = {line["message"].split(" ", 1)[0] for line in lines if line["logger"] == ACCESS}
    assert methods <= READINESS_RPCS, methods


def create_run(channel: grpc.Channel) -> Any:
    return channel.unary_unary(
        "/athena.v1.RunService/CreateRun",
        request_serializer=runs_pb2.CreateRunRequest.SerializeToString,
        response_deserializer=runs_pb2.CreateRunResponse.FromString,
    )


def api_lines(p: AthenaProcess, schema: bool = True) -> list[tuple[str, str, str]]:
    """What `athena api serve` says of itself from start to stop at INFO."""
    return [
        ("INFO", *COMMAND_OFF),
        *([("INFO", *SCHEMA_NEW)] if schema else []),
        ("INFO", "athena.server", f"gRPC listening on 127.0.0.1:{p.grpc_port}"),
        (
            "INFO",
            "athena",
            f"REST listening on http://127.0.0.1:{p.rest_port} (in-process, gRPC on port {p.grpc_port})",
        ),
        ("INFO", "athena", "stopped"),
    ]


def test_json_logs_carry_each_request_trace_id(workdir: Path) -> None:
    p = start_api(workdir, env=BASE_ENV, extra=["--log-format", "json"])  # the flag wins over the environment
    trace_ok, trace_bad = f"logs-ok-{uuid.uuid4().hex}", f"logs-bad-{uuid.uuid4().hex}"
    try:
        with grpc.insecure_channel(p.grpc_target) as channel:
            request = runs_pb2.CreateRunRequest(session_id=new_session(), input="hello")
            response = create_run(channel)(request, timeout=30, metadata=((TRACE_HEADER, trace_ok),))
            assert response.result.trace_id == trace_ok
            try:
                create_run(channel)(runs_pb2.CreateRunRequest(), timeout=30, metadata=((TRACE_HEADER, trace_bad),))
                raise AssertionError("a run without a session was accepted")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        rest_ok = httpx.post(f"{p.rest_url}/api/v1/runs", json={"sessionId": new_session(), "input": "x"}, timeout=30)
        rest_trace = ok_data(rest_ok)["traceId"]
        assert rest_ok.headers[TRACE_HEADER] == rest_trace
        rest_bad = error_of(httpx.post(f"{p.rest_url}/api/v1/runs", json={}, timeout=30), 400, "CONFIG_ERROR")
    finally:
        assert p.stop(signal.SIGTERM) == 0, p.log()

    lines = json_lines(p)
    [ok] = access_of(lines, trace_ok)
    assert re.fullmatch(rf"/athena\.v1\.RunService/CreateRun OK \d+\.\dms trace={trace_ok}", ok), ok
    [bad] = access_of(lines, trace_bad)
    assert re.fullmatch(
        rf"/athena\.v1\.RunService/CreateRun INVALID_ARGUMENT/CONFIG_ERROR \d+\.\dms trace={trace_bad}", bad
    ), bad
    # Over REST the gateway's trace id (answered in the header and the envelope) is the one logged.
    [rest_line] = access_of(lines, rest_trace)
    assert rest_line.startswith("/athena.v1.RunService/CreateRun OK "), rest_line
    [rest_bad_line] = access_of(lines, rest_bad["traceId"])
    assert rest_bad_line.startswith("/athena.v1.RunService/CreateRun INVALID_ARGUMENT/CONFIG_ERROR "), rest_bad_line
    # The rest: Athena's own lines, no library's.
    assert own_lines(lines) == api_lines(p)


def test_text_start_up_is_quiet_and_a_current_schema_is_not_mentioned(workdir: Path) -> None:
    for schema in (True, False):  # a fresh store, then the same store again
        p = start_api(workdir, env=BASE_ENV)
        with httpx.Client(base_url=p.rest_url, timeout=30) as client:
            trace = ok_data(client.post("/api/v1/runs", json={"sessionId": new_session(), "input": "x"}))["traceId"]
        assert p.stop(signal.SIGTERM) == 0, p.log()
        lines = text_lines(p)
        assert "alembic" not in p.log().lower() and "uvicorn" not in p.log().lower(), p.log()
        [run_line] = access_of(lines, trace)  # the text format names the trace too, after the message
        assert run_line.startswith("/athena.v1.RunService/CreateRun OK "), run_line
        assert own_lines([line for line in lines if line.get("traceId") != trace]) == api_lines(p, schema)


def test_grpc_and_gateway_processes_log_json_from_the_environment(workdir: Path) -> None:
    grpc_port, rest_port = free_port(), free_port()
    env = {**BASE_ENV, "ATHENA_LOG_FORMAT": "json"}
    server = start(["grpc", "serve", "--port", str(grpc_port), "--db", str(workdir / "s.db")], workdir, env, "grpc")
    server.grpc_port = grpc_port
    gateway = start(
        ["gateway", "serve", "--port", str(rest_port), "--upstream", f"127.0.0.1:{grpc_port}"], workdir, env, "gw"
    )
    gateway.rest_port = rest_port
    try:
        wait_grpc_ready(server)
        wait_rest_ready(gateway)
    finally:
        assert gateway.stop(signal.SIGTERM) == 0, gateway.log()
        assert server.stop(signal.SIGTERM) == 0, server.log()
    server_lines, gateway_lines = json_lines(server), json_lines(gateway)
    readiness_only(server_lines)
    assert own_lines(server_lines) == [
        ("INFO", *COMMAND_OFF),
        ("INFO", *SCHEMA_NEW),
        ("INFO", "athena.server", f"gRPC listening on 127.0.0.1:{grpc_port}"),
        ("INFO", "athena", "stopped"),
    ]
    assert own_lines(gateway_lines) == [
        ("INFO", "athena", f"REST listening on http://127.0.0.1:{rest_port} (upstream gRPC 127.0.0.1:{grpc_port})"),
        ("INFO", "athena", "stopped"),
    ]


def test_debug_shows_what_info_holds_back(workdir: Path) -> None:
    p = start_api(workdir, env={**BASE_ENV, "ATHENA_LOG_LEVEL": "DEBUG"}, extra=["--log-format", "json"])
    assert p.stop(signal.SIGTERM) == 0, p.log()
    loggers = {line["logger"] for line in json_lines(p)}
    assert {"alembic.runtime.migration", "alembic.runtime.plugins"} <= loggers, loggers


def exited(args: list[str], workdir: Path, env: dict[str, str], code: int) -> str:
    p = start(args, workdir, env)
    try:
        assert p.proc.wait(60) == code, p.log()
    finally:
        p.stop(signal.SIGKILL)
    return p.log()


def test_unknown_format_or_level_is_refused_naming_the_allowed_ones(workdir: Path) -> None:
    ports = ["--port", str(free_port()), "--grpc-port", str(free_port())]
    out = exited(["api", "serve", *ports, "--log-format", "xml"], workdir, BASE_ENV, 2)
    assert "Error: Invalid value for '--log-format': 'xml' is not one of 'text', 'json'." in out, out
    out = exited(["grpc", "serve", "--metrics-port", "70000"], workdir, BASE_ENV, 2)
    assert "Error: Invalid value for '--metrics-port': 70000 is not in the range 0<=x<=65535." in out, out
    out = exited(["api", "serve", *ports], workdir, {**BASE_ENV, "ATHENA_LOG_FORMAT": "xml"}, 1)
    assert out == "athena: log format must be one of text, json, not 'xml'\n", out
    out = exited(
        ["gateway", "serve", "--upstream", "127.0.0.1:1"], workdir, {**BASE_ENV, "ATHENA_LOG_LEVEL": "LOUD"}, 1
    )
    assert out == "athena: log level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not 'LOUD'\n", out
    assert not (workdir / ".athena").exists()  # refused before the store was opened


def test_serve_commands_document_the_options(workdir: Path) -> None:
    for group, metrics in (("api", True), ("grpc", True), ("gateway", False)):
        out = exited([group, "serve", "--help"], workdir, BASE_ENV, 0)
        assert "--log-format [text|json]" in out, out
        assert ("--metrics-port INTEGER RANGE" in out) is metrics, out


def test_metrics_port_option_reaches_the_settings(workdir: Path) -> None:
    """`--metrics-port` is the flag for ATHENA_METRICS_PORT: the process serves `/metrics` there and says so."""
    grpc_port, metrics_port = free_port(), free_port()
    args = ["grpc", "serve", "--port", str(grpc_port), "--metrics-port", str(metrics_port), "--log-format", "json"]
    server = start(args, workdir, BASE_ENV, "grpc")
    server.grpc_port = grpc_port
    try:
        wait_grpc_ready(server)
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).status_code == 200
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log()
    said = [line["message"] for line in json_lines(server) if f":{metrics_port}/metrics" in line["message"]]
    assert len(said) == 1, server.log()
