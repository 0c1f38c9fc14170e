"""The `athena` command's pure logic, in-process: the command table covers the contract, every command
builds and documents itself with an example that parses, flags become the request the contract expects,
options resolve in the documented order, errors map to their exit class, output is REST's `data`."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from athena.v1 import policy_pb2, runs_pb2, sessions_pb2, system_pb2, workflows_pb2
from athena_client.cli import exits, fields, output
from athena_client.cli.commands import COMMANDS, GROUPS, CommandSpec, by_path
from athena_client.cli.connection import DEFAULT_BASE_URL, resolve, starts_work
from athena_client.cli.contract_commands import REQUEST_FILE, build_command, build_request, example, rpc_of
from athena_client.cli.root import root, version
from athena_client.contract import ERROR_CODES, message_to_json
from athena_client.errors import AthenaError, AthenaTransportError
from athena_client.rest_data import dumps, field_json
from athena_client.rpcs import rpc, rpcs


def _command(path: tuple[str, ...]) -> click.Command:
    group = root()
    ctx = click.Context(group)
    command: click.Command | None = group
    for name in path:
        assert isinstance(command, click.Group), path
        command = command.get_command(ctx, name)
        assert command is not None, f"athena {' '.join(path)} is not reachable"
    assert command is not None
    return command


# ---- the table covers the contract -------------------------------------------------------------------


def test_every_rpc_of_the_contract_has_a_command() -> None:
    covered = {name for spec in COMMANDS for name in spec.rpcs}
    assert covered == set(rpcs()), f"RPCs without a command: {sorted(set(rpcs()) - covered)}"


def test_every_command_path_is_unique_and_reachable_from_the_root() -> None:
    paths = [spec.path for spec in COMMANDS]
    assert len(paths) == len(set(paths))
    for spec in COMMANDS:
        command = _command(spec.path)
        assert command.name == spec.path[-1]
    for name in GROUPS:
        assert isinstance(_command((name,)), click.Group)


def test_issue_command_names() -> None:
    """The paths the issue names are the ones the table has."""
    expected = [
        ("run",),
        ("runs", "get"),
        ("runs", "active"),
        ("runs", "cancel"),
        ("runs", "cancel-requests"),
        ("sessions", "list"),
        ("sessions", "transcript"),
        ("events", "list"),
        ("events", "tail"),
        ("schedule", "add"),
        ("schedule", "list"),
        ("schedule", "logs"),
        ("schedule", "run"),
        ("schedule", "enable"),
        ("schedule", "disable"),
        ("schedule", "remove"),
        ("schedule", "tick"),
        ("work", "enqueue"),
        ("work", "drain"),
        ("work", "show"),
        ("workflow", "create"),
        ("workflow", "list"),
        ("workflow", "status"),
        ("workflow", "resume"),
        ("policy", "get"),
        ("policy", "set"),
        ("memory", "search"),
        ("memory", "get"),
        ("persona", "run"),
        ("dlq", "list"),
        ("dlq", "requeue"),
        ("dlq", "discard"),
        ("a2a", "send"),
        ("a2a", "get"),
        ("a2a", "list"),
        ("fleet",),
        ("template", "run"),
    ]
    table = by_path()
    assert [path for path in expected if path not in table] == []


@pytest.mark.parametrize("spec", COMMANDS, ids=lambda s: s.name)
def test_every_command_has_help_with_an_example_that_parses(spec: CommandSpec) -> None:
    result = CliRunner().invoke(root(), [*spec.path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    assert f"athena {spec.name}" in result.output
    # The example's arguments are valid for the command (required options present, flags known).
    words = shlex.split(example(spec))[1 + len(spec.path) :]
    command = build_command(spec)
    ctx = command.make_context(spec.name, list(words))
    assert ctx.params is not None


def test_issue_flags() -> None:
    """Flags the issue shows by name."""

    def opts(path: tuple[str, ...]) -> set[str]:
        return {o for p in _command(path).params if isinstance(p, click.Option) for o in [*p.opts, *p.secondary_opts]}

    run = opts(("run",))
    assert {"--session-id", "--provider", "--model", "--directive-id", "--harness-profile-id", "--metadata"} <= run
    assert {"--no-wait", "--transport", "--api-base-url", "--api-timeout-ms", "--identity", "--api-token"} <= run
    assert {"--output", "-o", "--db"} <= run
    assert {"--id", "--session-id", "--input", "--every-minutes", "--cron"} <= opts(("schedule", "add"))
    assert "--id" in opts(("schedule", "logs"))
    assert {"--type", "--session-id", "--count"} <= opts(("events", "tail"))
    assert {"--cursor", "--limit", "--all"} <= opts(("events", "list"))
    assert "--follow" in opts(("sessions", "transcript"))
    assert "--file" in opts(("workflow", "create"))
    assert "--file" in opts(("policy", "set"))
    assert {"--name", "--repo-path", "--base-ref", "--head-ref"} <= opts(("persona", "run"))


def test_root_help_and_version() -> None:
    result = CliRunner().invoke(root(), ["--help"])
    assert result.exit_code == 0
    for name in ("run", "runs", "events", "schedule", "fleet", "api", "auth"):
        assert f"  {name} " in result.output
    assert "Exit codes:" in result.output
    result = CliRunner().invoke(root(), ["--version"])
    assert result.output == f"athena {version()}\n"
    assert version() != "unknown"


def test_shell_completion_script() -> None:
    result = CliRunner().invoke(root(), ["--show-completion", "bash"])
    assert result.exit_code == 0
    assert "_ATHENA_COMPLETE" in result.output


# ---- flags into requests ------------------------------------------------------------------------------


def test_flag_names() -> None:
    assert fields.singular("types") == "type"
    assert fields.singular("verification_policies") == "verification_policy"
    assert fields.singular("allowed_egress") == "allowed_egress"
    assert fields.singular("metadata") == "metadata"
    by_name = runs_pb2.CreateRunRequest.DESCRIPTOR.fields_by_name
    assert fields.flag_name(by_name["session_id"]) == "--session-id"
    assert fields.flag_name(by_name["metadata"]) == "--metadata"


def _request(path: tuple[str, ...], args: list[str]) -> object:
    spec = by_path()[path]
    command = build_command(spec)
    ctx = command.make_context(spec.name, args)
    values = dict(ctx.params)
    return build_request(spec, rpc_of(spec), values)


def test_run_flags_become_the_request() -> None:
    flags = ["--session-id", "s1", "--metadata", "a=1", "--metadata", "b=x=y", "--no-wait"]
    request = _request(("run",), ["hello", *flags, "--running-run-behavior", "enqueue"])
    assert request == runs_pb2.CreateRunRequest(
        session_id="s1",
        input="hello",
        metadata={"a": "1", "b": "x=y"},
        wait=False,
        running_run_behavior=runs_pb2.RUNNING_RUN_BEHAVIOR_ENQUEUE,
    )
    # Flags not given stay unset, so the server's defaults apply.
    plain = _request(("run",), ["hello", "--session-id", "s1"])
    assert isinstance(plain, runs_pb2.CreateRunRequest)
    assert not plain.HasField("wait")


def test_repeated_and_optional_fields() -> None:
    from athena.v1 import events_pb2, schedules_pb2

    request = _request(("events", "list"), ["--type", "run.created", "--type", "run.completed", "--limit", "5"])
    assert request == events_pb2.ListEventsRequest(types=["run.created", "run.completed"], limit=5)
    add = _request(("schedule", "add"), ["--id", "j", "--session-id", "s", "--input", "i", "--cron", "0 * * * *"])
    assert add == schedules_pb2.CreateScheduleRequest(id="j", session_id="s", input="i", cron="0 * * * *")
    disabled = _request(
        ("schedule", "add"), ["--id", "j", "--session-id", "s", "--input", "i", "--every-minutes", "5", "--disabled"]
    )
    assert isinstance(disabled, schedules_pb2.CreateScheduleRequest)
    assert disabled.HasField("enabled") and not disabled.enabled


def test_exactly_one_cadence() -> None:
    base = ["--id", "j", "--session-id", "s", "--input", "i"]
    with pytest.raises(click.UsageError, match="exactly one of --every-minutes or --cron"):
        _request(("schedule", "add"), base)
    with pytest.raises(click.UsageError):
        _request(("schedule", "add"), [*base, "--every-minutes", "5", "--cron", "* * * * *"])


def test_bad_values_are_usage_errors() -> None:
    with pytest.raises(click.BadParameter, match="--metadata: expected KEY=VALUE"):
        _request(("run",), ["x", "--session-id", "s", "--metadata", "novalue"])
    with pytest.raises(click.BadParameter, match="--config: not JSON"):
        _request(("harness-profile", "create"), ["--config", "{nope"])
    with pytest.raises(click.BadParameter, match="cannot read"):
        _request(("harness-profile", "create"), ["--config", "@/nonexistent/file.json"])


def test_message_fields_take_json_or_a_file(tmp_path: Path) -> None:
    from athena.v1 import harness_profiles_pb2

    config = tmp_path / "config.json"
    config.write_text('{"provider": "mock", "model": "default", "tools": ["t"]}')
    request = _request(("harness-profile", "create"), ["--config", f"@{config}", "--policies", '{"timeoutMs": 5}'])
    assert request == harness_profiles_pb2.CreateHarnessProfileRequest(
        config=harness_profiles_pb2.HarnessConfig(provider="mock", model="default", tools=["t"]),
        policies=harness_profiles_pb2.HarnessPolicies(timeout_ms=5),
    )


def test_file_holds_the_request_or_a_field(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text('{"schemaVersion": 1, "maxConcurrentRuns": 2, "unknownField": true}')
    request = _request(("policy", "set"), ["--file", str(policy), "--retry-budget-per-run", "3"])
    assert request == policy_pb2.PutPolicyRequest(schema_version=1, max_concurrent_runs=2, retry_budget_per_run=3)
    definition = {"steps": [{"id": "a", "directiveId": "d", "harnessProfileId": "h"}], "dependencies": []}
    bare, wrapped = tmp_path / "bare.json", tmp_path / "wrapped.json"
    bare.write_text(json.dumps(definition))
    wrapped.write_text(json.dumps({"definition": definition}))
    expected = workflows_pb2.CreateWorkflowRequest(
        definition=workflows_pb2.WorkflowDefinition(
            steps=[workflows_pb2.WorkflowStep(id="a", directive_id="d", harness_profile_id="h")]
        )
    )
    assert _request(("workflow", "create"), ["--file", str(bare)]) == expected
    assert _request(("workflow", "create"), ["--file", str(wrapped)]) == expected
    assert REQUEST_FILE not in {p.name for p in _command(("runs", "get")).params}


def test_path_parameters_are_required() -> None:
    spec = by_path()[("schedule", "logs")]
    with pytest.raises(click.MissingParameter):
        build_command(spec).make_context(spec.name, [])
    spec = by_path()[("runs", "get")]
    with pytest.raises(click.MissingParameter):
        build_command(spec).make_context(spec.name, [])


# ---- options, transports, exit codes ----------------------------------------------------------------


def test_options_resolve_after_before_env_default() -> None:
    env = {"ATHENA_CLI_TRANSPORT": "local", "ATHENA_API_BASE_URL": "http://env:1/", "ATHENA_CLI_API_TIMEOUT_MS": "250"}
    assert resolve({}, {}, {}) == resolve({}, {}, {"ATHENA_CLI_TRANSPORT": ""})
    default = resolve({}, {}, {})
    assert (default.transport, default.api_base_url, default.api_timeout, default.output) == (
        "auto",
        DEFAULT_BASE_URL,
        5.0,
        "table",
    )
    from_env = resolve({}, {}, env)
    assert (from_env.transport, from_env.api_base_url, from_env.api_timeout) == ("local", "http://env:1", 0.25)
    before = resolve({"transport": "api", "output": "json"}, {}, env)
    assert (before.transport, before.output) == ("api", "json")
    after = resolve({"transport": "api"}, {"transport": "auto", "api_timeout_ms": 100}, env)
    assert (after.transport, after.api_timeout) == ("auto", 0.1)
    with pytest.raises(click.UsageError, match="ATHENA_CLI_TRANSPORT"):
        resolve({}, {}, {"ATHENA_CLI_TRANSPORT": "carrier-pigeon"})
    with pytest.raises(click.UsageError, match="ATHENA_CLI_API_TIMEOUT_MS"):
        resolve({}, {}, {"ATHENA_CLI_API_TIMEOUT_MS": "soon"})


def test_calls_that_start_work_are_not_bounded_by_the_api_timeout() -> None:
    starting = {name for name, r in rpcs().items() if starts_work(r)}
    assert "athena.v1.RunService.CreateRun" in starting
    assert "athena.v1.WorkService.DrainWork" in starting
    assert "athena.v1.RunService.GetRun" not in starting


def test_exit_codes_by_class() -> None:
    expected = {400: 2, 401: 4, 403: 4, 404: 3, 408: 5, 409: 4, 410: 2, 413: 2, 415: 2, 422: 2, 429: 4}
    for code, info in ERROR_CODES.items():
        want = 5 if info.http_status >= 500 else expected[info.http_status]
        assert exits.exit_code(AthenaError(code, "m")) == want, code
    assert exits.exit_code(AthenaTransportError("UNAVAILABLE", "refused")) == 5
    assert exits.exit_code(AthenaTransportError("DEADLINE_EXCEEDED", "slow")) == 5
    assert exits.exit_code(AthenaError("SOMETHING_NEW", "m")) == 1


def test_error_report_lines() -> None:
    error = AthenaError("POLICY_CONCURRENCY_LIMIT_EXCEEDED", "too many", trace_id="t-1", retry_after=1.0)
    assert exits.error_lines(error) == [
        "POLICY_CONCURRENCY_LIMIT_EXCEEDED: too many",
        "trace id: t-1",
        "retry after: 1 s",
    ]
    assert exits.error_lines(AthenaError("NOT_FOUND", "gone"), "hint") == ["NOT_FOUND: gone", "hint"]


# ---- output ---------------------------------------------------------------------------------------------


def test_json_output_is_the_rest_data() -> None:
    health = rpc("athena.v1.SystemService.GetHealth")
    message = system_pb2.GetHealthResponse(status="ok", now="2026-02-16T15:00:00.000Z")
    assert output.json_text(health, message) == '{"status":"ok","now":"2026-02-16T15:00:00.000Z"}'
    get_policy = rpc("athena.v1.PolicyService.GetPolicy")
    assert output.json_text(get_policy, policy_pb2.GetPolicyResponse()) == "null"
    page = sessions_pb2.ListSessionsResponse(
        items=[sessions_pb2.Session(id="a"), sessions_pb2.Session(id="b")], next_cursor="Mg"
    )
    sessions = rpc("athena.v1.SessionService.ListSessions")
    assert output.json_text(sessions, page) == dumps(field_json(page, ""))
    # `--all`: the items as they are inside the page's data, as one array.
    assert output.items_json(page.items) == dumps(json.loads(output.json_text(sessions, page))["items"])


def _printed(fmt: str, print_it: object) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    from rich.console import Console

    printer = output.Printer(fmt, out=out, err=Console(file=err, width=200))
    assert callable(print_it)
    print_it(printer)
    return out.getvalue(), err.getvalue()


def test_printer_tables_and_cursor_note() -> None:
    page = sessions_pb2.ListSessionsResponse(
        items=[sessions_pb2.Session(id="s1", provider="mock"), sessions_pb2.Session(id="s2", provider="mock")],
        next_cursor="Mg",
    )
    sessions = rpc("athena.v1.SessionService.ListSessions")
    out, err = _printed("table", lambda p: p.response(sessions, page))
    assert "s1" in out and "s2" in out and "provider" in out
    assert "Mg" not in out and "--cursor Mg" in err
    out, _ = _printed("json", lambda p: p.response(sessions, page))
    assert out == output.json_text(sessions, page) + "\n"
    run = runs_pb2.GetRunResponse(run=runs_pb2.Run(run_id="r1", status=runs_pb2.RUN_STATUS_SUCCEEDED))
    out, _ = _printed("table", lambda p: p.response(rpc("athena.v1.RunService.GetRun"), run))
    assert "runId" in out and "succeeded" in out


def test_renderables_shapes() -> None:
    assert output.cell(None) == ""
    assert output.cell(True) == "true"
    assert output.cell(2.0) == "2"
    assert output.cell(["a", "b"]) == "a, b"
    assert output.cell({"k": 1}) == '{"k":1}'
    assert dict(output.flatten({"usage": {"inputTokens": 1}, "id": "r"})) == {"usage.inputTokens": 1, "id": "r"}
    assert len(output.renderables(None)) == 1
    assert len(output.renderables({"items": [{"id": "a"}], "nextCursor": "x"})) == 1
    assert len(output.renderables({"at": "t", "run": [{"id": "a"}], "skipped": 0})) == 2
    line = output.line({"id": "evt_1", "type": "run.created", "runId": None, "payload": {"a": 1}})
    assert line.plain == 'id=evt_1  type=run.created  payload={"a":1}'


def test_message_to_json_items_match_a_page() -> None:
    entry = sessions_pb2.TranscriptEntry(id="e1", role=sessions_pb2.TRANSCRIPT_ROLE_USER, content="hi")
    page = sessions_pb2.ListTranscriptEntriesResponse(items=[entry])
    assert json.loads(dumps(field_json(page, "")))["items"][0] == message_to_json(entry)


def test_db_means_the_local_transport() -> None:
    from athena_client.cli.connection import choose

    nowhere = {"ATHENA_API_BASE_URL": "http://127.0.0.1:9"}
    assert choose(resolve({}, {"db": "x.db"}, nowhere)) == "local"  # no probe: --db names a local store
    assert choose(resolve({}, {"transport": "local"}, nowhere)) == "local"
    with pytest.raises(exits.CommandFailure) as failure:
        choose(resolve({}, {"db": "x.db", "transport": "api"}, nowhere))
    assert failure.value.code == exits.USAGE


def test_auto_runs_locally_only_when_nothing_accepts_the_connection() -> None:
    """A port that refuses means no API; one that accepts but does not answer in time is an API that is
    there but slow: `auto` must not switch to another store because of it."""
    import socket

    from athena_client.cli.connection import api_listens
    from tests.support.processes import free_port

    assert not api_listens(f"http://127.0.0.1:{free_port()}", 0.2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        assert api_listens(f"http://127.0.0.1:{silent.getsockname()[1]}", 0.2)
