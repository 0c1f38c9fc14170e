"""The Python SDK (`athena_client.connect` / `connect_async`) end to end, over gRPC and REST alike, against
real servers: every service through its typed methods, the same answers and the same errors over both
transports, credentials and auth refusals, rate limits and the retries that wait them out, paging
iterators, event streams that survive server restarts, one idempotency key across the retries of a call,
transport failures and per-call timeouts, and clients that close.

Nothing is mocked: where a test needs a failure no server would produce on demand (an answer lost on the way
back), it wraps the real transport and drops what the real server sent.
"""

from __future__ import annotations

import contextlib
import importlib.util
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message

import athena_client
from athena.v1 import (
    directives_pb2,
    events_pb2,
    harness_profiles_pb2,
    runs_pb2,
    schedules_pb2,
    sessions_pb2,
    system_pb2,
    work_pb2,
    workflows_pb2,
)
from athena_client import AthenaError, AthenaTransportError, Client, RetryPolicy
from athena_client.contract import IDEMPOTENCY_HEADER
from athena_client.grpc_transport import GrpcTransport
from athena_client.rest_transport import RestTransport
from athena_client.rpcs import Rpc, rpc
from athena_client.transport import ClientClosedError, Headers, Transport
from athena_server.access.config import token_digest
from tests.support.processes import ROOT, AthenaProcess, free_port, launch_api, start, start_api, wait_api_ready
from tests.support.shapes import assert_iso, new_session
from tests.support.waiting import wait_until

TRANSPORTS = ("grpc", "rest")
QUIET = {"ATHENA_SCHEDULE_TICK_SECONDS": "0", "ATHENA_LOG_LEVEL": "WARNING"}
CAROL_TOKEN = "sdk-test-token-5b1e0c"
AUTH_ENV = {
    **QUIET,
    "ATHENA_AUTH_ENABLED": "true",
    "ATHENA_AUTH_IDENTITY_ROLE_MAP": "alice:Viewer,bob:Admin",
    # carol is known only by her API token; with a token configured the identity header counts only because
    # this says so, so both kinds of caller reach one server.
    "ATHENA_AUTH_API_TOKENS": f"ci:carol:Operator:{token_digest(CAROL_TOKEN).hex()}",
    "ATHENA_AUTH_TRUST_IDENTITY_HEADER": "true",
}
LIMITED_ENV = {**QUIET, "ATHENA_RATE_LIMIT_READ": "2/second", "ATHENA_RATE_LIMIT_WRITE": "2/second"}
SLOW = {"mock.delayMs": "30000"}
PROFILE: dict[str, Any] = {
    "display_name": "SDK step",
    "version": "v1",
    "config": {"provider": "mock", "model": "default", "tools": ["shell"]},
    "policies": harness_profiles_pb2.HarnessPolicies(timeout_ms=60000, retry_limit=1),
}
RunStatus = runs_pb2.RunStatus


# -------------------------------------------------------------------------------------------- servers


@dataclass
class Servers:
    plain: AthenaProcess
    auth: AthenaProcess
    limited: AthenaProcess


def relaunch(workdir: Path, env: dict[str, str], rest_port: int, grpc_port: int) -> AthenaProcess:
    """`athena api serve` started again on a stopped server's ports and store, not yet waited for."""
    p = start(["api", "serve", "--port", str(rest_port), "--grpc-port", str(grpc_port)], workdir, env, "api")
    p.rest_port, p.grpc_port = rest_port, grpc_port
    return p


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Three servers of this module's own, started side by side: a plain one (ticker off, so schedules
    fire only when a test ticks), one with auth on, one with rate limits."""
    started: dict[str, AthenaProcess] = {}
    try:
        for name, env in (("plain", QUIET), ("auth", AUTH_ENV), ("limited", LIMITED_ENV)):
            started[name] = launch_api(tmp_path_factory.mktemp(f"sdk-{name}"), env)
        for p in started.values():
            wait_api_ready(p)
        yield Servers(**started)
    finally:
        for p in started.values():
            p.stop()


def url(p: AthenaProcess, kind: str) -> str:
    return f"grpc://{p.grpc_target}" if kind == "grpc" else p.rest_url


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials come from the environment by default: tests say which ones they mean."""
    for name in ("ATHENA_IDENTITY", "ATHENA_API_TOKEN", "ATHENA_AUTH_IDENTITY_HEADER"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=TRANSPORTS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(servers: Servers, kind: str) -> Iterator[Client]:
    with athena_client.connect(url(servers.plain, kind)) as c:
        yield c


@pytest.fixture
def both(servers: Servers) -> Iterator[dict[str, Client]]:
    with athena_client.connect(url(servers.plain, "grpc")) as g, athena_client.connect(servers.plain.rest_url) as r:
        yield {"grpc": g, "rest": r}


# -------------------------------------------------------------------------------------------- helpers


def error_of(call: Callable[[], object]) -> AthenaError:
    with pytest.raises(AthenaError) as caught:
        call()
    return caught.value


def first_items(stream: Iterator[Any], count: int) -> list[Any]:
    """The first `count` messages of a stream, then the stream closed (its call ends)."""
    out: list[Any] = []
    with contextlib.closing(stream):
        for message in stream:
            out.append(message)
            if len(out) == count:
                break
    return out


def event_types(c: Client, session: str) -> list[str]:
    return [e.type for e in c.event_service.iter_list_events(session_id=session)]


def run_in(c: Client, session: str, text: str = "hi") -> runs_pb2.RunResult:
    return c.run_service.create_run(session_id=session, input=text, provider="mock").result


class Counting:
    """The real transport, counting the unary calls that went through it and what each one gave."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.outcomes: list[str] = []

    def unary(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> Message:
        try:
            response = self.inner.unary(rpc, request, headers, timeout)
        except AthenaError as error:
            self.outcomes.append(error.code)
            raise
        self.outcomes.append("ok")
        return response

    def stream(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> Iterator[Message]:
        return self.inner.stream(rpc, request, headers, timeout)

    def close(self) -> None:
        self.inner.close()


def transport_of(p: AthenaProcess, kind: str) -> Transport:
    return GrpcTransport(p.grpc_target) if kind == "grpc" else RestTransport(p.rest_url)


# ------------------------------------------------------------------------- every service, typed methods


def test_runs(client: Client) -> None:
    session = new_session()
    created = client.run_service.create_run(session_id=session, input="hi", provider="mock")
    assert isinstance(created, runs_pb2.CreateRunResponse)
    result = created.result
    assert (result.session_id, result.output, result.provider, result.model) == (
        session,
        "Echo: user: hi",
        "mock",
        "default",
    )
    assert result.status == RunStatus.RUN_STATUS_SUCCEEDED and result.attempts == 1
    assert_iso(result.created_at)
    run = client.run_service.get_run(run_id=result.run_id).run
    assert (run.run_id, run.session_id, run.input, run.output, run.status) == (
        result.run_id,
        session,
        "hi",
        "Echo: user: hi",
        RunStatus.RUN_STATUS_SUCCEEDED,
    )

    # Started without waiting: answered at once, listed as active, cancelled by id.
    slow_session = new_session()
    slow = client.run_service.create_run(session_id=slow_session, input="slow", wait=False, metadata=SLOW).result
    assert slow.status in (RunStatus.RUN_STATUS_PENDING, RunStatus.RUN_STATUS_RUNNING)
    assert not slow.HasField("output")
    active = [a.run_id for a in client.run_service.iter_list_active_runs(session_id=slow_session)]
    assert active == [slow.run_id]
    cancelled = client.run_service.cancel_run_by_run_id(run_id=slow.run_id, reason="sdk test")
    assert (cancelled.run_id, cancelled.status) == (slow.run_id, runs_pb2.CANCEL_STATUS_CANCELLED)

    def slow_ended() -> bool:
        return client.run_service.get_run(run_id=slow.run_id).run.status == RunStatus.RUN_STATUS_CANCELLED

    wait_until(slow_ended, "the cancelled run to end")
    # The request is consumed when the run ends; nothing is left active.
    assert list(client.run_service.iter_list_cancel_requests(run_id=slow.run_id)) == []
    assert list(client.run_service.iter_list_active_runs(session_id=slow_session)) == []
    idle = client.run_service.cancel_run_by_session_id(session_id=new_session())
    assert idle.status == runs_pb2.CANCEL_STATUS_NOT_RUNNING


def test_catalog(client: Client) -> None:
    directive = client.directive_service.create_directive(
        input="review the diff", context_refs=["docs/a.md"], metadata={"team": "sdk"}
    ).directive
    assert (directive.input, list(directive.context_refs), dict(directive.metadata)) == (
        "review the diff",
        ["docs/a.md"],
        {"team": "sdk"},
    )
    assert client.directive_service.list_directives(limit=1).items == [directive]  # newest first

    # Message fields take the message or its JSON form.
    profile = client.harness_profile_service.create_harness_profile(**PROFILE).harness_profile
    assert (profile.config.provider, list(profile.config.tools), profile.policies.timeout_ms) == (
        "mock",
        ["shell"],
        60000,
    )
    assert profile in client.harness_profile_service.iter_list_harness_profiles()

    template = client.run_template_service.create_run_template(
        harness_profile_id=profile.id,
        directive_template="Review {{ repo }} at {{branch}}",
        default_params={"repo": "x", "branch": "main"},
    ).run_template
    assert (
        dict(template.default_params) == {"repo": "x", "branch": "main"} and template.harness_profile_id == profile.id
    )
    assert client.run_template_service.list_run_templates(limit=1).items == [template]
    session = new_session()
    ran = client.run_template_service.run_run_template(id=template.id, params={"branch": "dev"}, session_id=session)
    assert (ran.result.output, ran.result.session_id) == ("Echo: user: Review x at dev", session)


def test_schedules(client: Client) -> None:
    sid, due_id, session = f"sdk-{uuid.uuid4().hex[:8]}", f"sdk-due-{uuid.uuid4().hex[:8]}", new_session()
    schedules = client.schedule_service
    created = schedules.create_schedule(
        id=sid, session_id=session, input="scheduled", every_minutes=60, start_now=False, metadata={"k": "v"}
    ).schedule
    assert (created.id, created.session_id, created.every_minutes, created.enabled, dict(created.metadata)) == (
        sid,
        session,
        60,
        True,
        {"k": "v"},
    )
    assert schedules.get_schedule(id=sid).schedule == created
    updated = schedules.update_schedule(id=sid, session_id=session, input="scheduled", every_minutes=30).schedule
    assert updated.every_minutes == 30
    disabled = schedules.disable_schedule(id=sid)
    assert (disabled.id, disabled.updated, disabled.schedule.enabled) == (sid, True, False)
    assert schedules.get_schedule(id=sid).schedule.enabled is False
    enabled = schedules.enable_schedule(id=sid)
    assert (enabled.updated, enabled.schedule.enabled) == (True, True)

    manual = schedules.run_schedule(id=sid).result
    assert (manual.id, manual.session_id, manual.status) == (sid, session, schedules_pb2.SCHEDULE_RUN_STATUS_OK)
    assert not manual.HasField("slot_at")
    assert client.run_service.get_run(run_id=manual.run_id).run.output == "Echo: user: scheduled"
    [log] = schedules.list_schedule_logs(id=sid).logs
    assert (log.schedule_id, log.run_id) == (sid, manual.run_id)

    # A tick fires what is due now, and only that (the server's own ticker is off).
    schedules.create_schedule(id=due_id, session_id=new_session(), input="due", every_minutes=60, start_now=True)
    tick = schedules.tick_schedules()
    assert [(r.id, r.status) for r in tick.run] == [(due_id, schedules_pb2.SCHEDULE_RUN_STATUS_OK)]
    assert_iso(tick.at)
    assert len(schedules.list_schedule_logs(id=due_id).logs) == 1
    assert {sid, due_id} <= {s.id for s in schedules.iter_list_schedules()}

    for schedule_id in (sid, due_id):
        assert schedules.delete_schedule(id=schedule_id).removed is True
    gone = error_of(lambda: schedules.get_schedule(id=sid))
    assert (gone.code, gone.http_status, gone.message) == ("NOT_FOUND", 404, f"Schedule '{sid}' not found.")
    assert schedules.enable_schedule(id=sid).updated is False


def test_work_queue(client: Client) -> None:
    session = new_session()
    client.work_service.enqueue_work(session_id=session, payload="first", mode="followup")
    queued = client.work_service.enqueue_work(session_id=session, payload="second", mode=work_pb2.WORK_MODE_FOLLOWUP)
    assert [(i.payload, i.mode) for i in queued.queue.items] == [
        ("first", work_pb2.WORK_MODE_FOLLOWUP),
        ("second", work_pb2.WORK_MODE_FOLLOWUP),
    ]
    assert client.work_service.get_work_queue(session_id=session).queue == queued.queue
    drained = client.work_service.drain_work(session_id=session)
    assert (drained.status, drained.drained_items, drained.queue_depth_before, drained.queue_depth_after) == (
        work_pb2.DRAIN_STATUS_OK,
        2,
        2,
        0,
    )
    assert list(client.work_service.get_work_queue(session_id=session).queue.items) == []
    entries = client.session_service.list_transcript_entries(session_id=session).items
    user = [e.content for e in entries if e.role == sessions_pb2.TRANSCRIPT_ROLE_USER]
    assert user == ["first", "second"]


def test_workflows(client: Client) -> None:
    profile = client.harness_profile_service.create_harness_profile(**PROFILE).harness_profile.id
    directive = client.directive_service.create_directive(input="step work").directive.id
    step = {"directiveId": directive, "harnessProfileId": profile}
    definition = {"steps": [{"id": "a", **step}, {"id": "b", **step}], "dependencies": [{"from": "a", "to": "b"}]}
    workflow = client.workflow_service.create_workflow(definition=definition).workflow
    assert [s.id for s in workflow.definition.steps] == ["a", "b"]
    assert [(d.from_step, d.to_step) for d in workflow.definition.dependencies] == [("a", "b")]
    assert client.workflow_service.list_workflows(limit=1).items == [workflow]

    run = client.workflow_service.resume_workflow_run(id=workflow.id).run
    assert (run.workflow_id, run.status) == (workflow.id, workflows_pb2.WORKFLOW_RUN_STATUS_OK)
    assert [(s.step_id, s.status) for s in run.steps] == [
        ("a", workflows_pb2.WORKFLOW_RUN_STATUS_OK),
        ("b", workflows_pb2.WORKFLOW_RUN_STATUS_OK),
    ]
    status = client.workflow_service.get_workflow_run(id=workflow.id)
    assert (status.workflow, status.run) == (workflow, run)
    assert (status.progress.total_steps, status.progress.completed_steps, status.progress.percent_complete) == (
        2,
        2,
        100,
    )


def test_policy(client: Client) -> None:
    wait_until(lambda: not list(client.run_service.iter_list_active_runs()), "no active runs")
    put = client.policy_service.put_policy(schema_version=1, max_concurrent_runs=1, audit_comment="sdk test")
    try:
        assert (put.policy.schema_version, put.policy.max_concurrent_runs) == (1, 1)
        assert_iso(put.policy.updated_at)
        assert client.policy_service.get_policy().policy == put.policy
        slow = client.run_service.create_run(session_id=new_session(), input="slow", wait=False, metadata=SLOW).result
        refused_session = new_session()
        refused = error_of(
            lambda: client.run_service.create_run(session_id=refused_session, input="later", rpc_retry=False)
        )
        assert (refused.code, refused.http_status, refused.retryable, refused.retry_after) == (
            "POLICY_CONCURRENCY_LIMIT_EXCEEDED",
            429,
            True,
            1.0,
        )
        [rejection] = client.policy_service.iter_list_policy_rejections(session_id=refused_session)
        assert (rejection.session_id, rejection.active_runs, rejection.max_concurrent_runs) == (refused_session, 1, 1)
        assert rejection.id.startswith("rej_")
        client.run_service.cancel_run_by_run_id(run_id=slow.run_id)
    finally:
        client.policy_service.put_policy(schema_version=1)


def test_system_and_fleet(client: Client) -> None:
    caps = client.system_service.get_capabilities()
    assert (caps.execution_backend, caps.state_store, caps.supports_sandbox) == ("local", "sqlite", False)
    assert "mock" in caps.providers
    for probe in (client.system_service.get_health(), client.system_service.get_admin_health()):
        assert probe.status == "ok"
        assert_iso(probe.now)
    ready = client.system_service.get_readiness()
    assert ready.status == "ready" and [(c.name, c.status) for c in ready.checks] == [("store", "ok")]
    before = client.fleet_service.get_fleet_summary()
    run_in(client, new_session())  # this test's own run, so the summary has one more success to show
    fleet = client.fleet_service.get_fleet_summary()
    assert fleet.total == fleet.running + fleet.pending + fleet.succeeded + fleet.failed + fleet.cancelled
    assert fleet.succeeded >= before.succeeded + 1
    assert (fleet.capabilities.supports_pod_status, fleet.capabilities.supports_cpu_mem_metrics) == (False, False)


def test_sessions_events_and_their_streams(client: Client) -> None:
    session = new_session()
    result = run_in(client, session, "hello")
    assert session in [s.id for s in client.session_service.iter_list_sessions()]
    entries = list(client.session_service.list_transcript_entries(session_id=session).items)
    assert [(e.role, e.content) for e in entries] == [
        (sessions_pb2.TRANSCRIPT_ROLE_USER, "hello"),
        (sessions_pb2.TRANSCRIPT_ROLE_ASSISTANT, "Echo: user: hello"),
    ]
    events = list(client.event_service.list_events(session_id=session).events)
    assert [(e.type, e.session_id, e.run_id) for e in events] == [
        ("run.created", session, result.run_id),
        ("run.started", session, result.run_id),
        ("run.completed", session, result.run_id),
    ]
    # Streams replay what follows the resume point, as the lists show it.
    streamed = first_items(client.session_service.stream_transcript(session_id=session, after=entries[0].id), 1)
    assert [m.entry for m in streamed] == entries[1:]
    streamed_events = first_items(client.event_service.stream_events(session_id=session, after=events[0].id), 2)
    assert [m.event for m in streamed_events] == events[1:]


def test_memory_over_both_transports(both: dict[str, Client]) -> None:
    """These servers' workspaces hold no memory files: a search finds nothing on either transport."""
    for c in both.values():
        assert list(c.memory_service.search_memory(query="deploy", max_results=3).results) == []


# --------------------------------------------------------------------------- one answer, two transports


def test_the_same_answers_over_both_transports(both: dict[str, Client]) -> None:
    g, r = both["grpc"], both["rest"]
    session = new_session()
    result = run_in(g, session)
    directive = r.directive_service.create_directive(input="shared", metadata={"a": "b"}).directive
    schedule_id = f"sdk-{uuid.uuid4().hex[:8]}"
    g.schedule_service.create_schedule(id=schedule_id, session_id=session, input="x", every_minutes=5)
    r.work_service.enqueue_work(session_id=session, payload="later", mode="collect")
    reads: list[Callable[[Client], Message]] = [
        lambda c: c.run_service.get_run(run_id=result.run_id),
        lambda c: c.event_service.list_events(session_id=session),
        lambda c: c.session_service.list_transcript_entries(session_id=session),
        lambda c: c.session_service.list_sessions(limit=500),
        lambda c: c.directive_service.list_directives(limit=500),
        lambda c: c.harness_profile_service.list_harness_profiles(limit=500),
        lambda c: c.schedule_service.get_schedule(id=schedule_id),
        lambda c: c.work_service.get_work_queue(session_id=session),
        lambda c: c.policy_service.get_policy(),
        lambda c: c.fleet_service.get_fleet_summary(),
        lambda c: c.system_service.get_capabilities(),
    ]
    for read in reads:
        answer = read(g)
        assert answer == read(r), type(answer).__name__
    assert directive in g.directive_service.list_directives(limit=500).items
    g.schedule_service.delete_schedule(id=schedule_id)


SAME_ERRORS: list[tuple[str, Callable[[Client], object], tuple[str, int, str]]] = [
    (
        "not-found",
        lambda c: c.run_service.get_run(run_id="no-such-run"),
        ("NOT_FOUND", 404, "Run 'no-such-run' not found."),
    ),
    (
        "over-long-field",
        lambda c: c.run_service.create_run(session_id="s" * 129, input="x"),
        ("CONFIG_ERROR", 400, "createRun.sessionId must be at most 128 characters."),
    ),
    (
        "unknown-enum-number",
        lambda c: c.work_service.enqueue_work(session_id="w", payload="p", mode=-1),
        ("CONFIG_ERROR", 400, "work.enqueue.mode must be 'followup' or 'collect'."),
    ),
    (
        "stream-resume-beyond-newest",
        lambda c: first_items(c.event_service.stream_events(after="evt_999999999"), 1),
        ("CONFIG_ERROR", 400, "events.stream.after 'evt_999999999' is beyond the newest event"),
    ),
    (
        "persona-unknown",
        lambda c: c.persona_service.run_persona(name="reviewer", repo_path=".", head_ref="main"),
        ("CONFIG_ERROR", 400, "personas.run.name must name a packaged persona (code-review) or a directory"),
    ),
    (
        "memory-file-missing",
        lambda c: c.memory_service.get_memory(path="MEMORY.md"),
        ("NOT_FOUND", 404, "memory file not found: MEMORY.md"),
    ),
]


@pytest.mark.parametrize(("call", "expected"), [(c, e) for _, c, e in SAME_ERRORS], ids=[n for n, _, _ in SAME_ERRORS])
def test_the_same_errors_over_both_transports(
    both: dict[str, Client], call: Callable[[Client], object], expected: tuple[str, int, str]
) -> None:
    grpc_error, rest_error = (error_of(lambda c=c: call(c)) for c in both.values())
    assert grpc_error == rest_error
    code, status, message = expected
    assert (grpc_error.code, grpc_error.http_status, grpc_error.retryable) == (code, status, False)
    assert grpc_error.message.startswith(message)
    # Each answer carries the trace id of its own call, which equality leaves out.
    assert grpc_error.trace_id and rest_error.trace_id and grpc_error.trace_id != rest_error.trace_id


# ------------------------------------------------------------------------------------ the generic path


def test_generic_call_items_pages_and_stream(client: Client) -> None:
    session = new_session()
    result = run_in(client, session)
    caps = client.call("athena.v1.SystemService.GetCapabilities", system_pb2.GetCapabilitiesRequest())
    assert caps == client.system_service.get_capabilities()
    by_rpc = client.call(rpc("athena.v1.RunService.GetRun"), runs_pb2.GetRunRequest(run_id=result.run_id))
    assert by_rpc == client.run_service.get_run(runs_pb2.GetRunRequest(run_id=result.run_id))  # positional message
    listed = list(client.event_service.list_events(session_id=session).events)
    request = events_pb2.ListEventsRequest(session_id=session, limit=1)
    assert list(client.items("athena.v1.EventService.ListEvents", request)) == listed
    pages = list(client.pages("athena.v1.EventService.ListEvents", request))
    assert [len(p.events) for p in pages] == [1, 1, 1] and not pages[-1].HasField("next_cursor")
    streamed = first_items(
        client.stream("athena.v1.EventService.StreamEvents", events_pb2.StreamEventsRequest(after=listed[0].id)), 2
    )
    assert [m.event for m in streamed] == listed[1:]

    with pytest.raises(KeyError, match=r"no RPC 'athena\.v1\.RunService\.Nope'"):
        client.call("athena.v1.RunService.Nope", runs_pb2.GetRunRequest())
    with pytest.raises(TypeError, match="does not page"):
        list(client.items("athena.v1.RunService.GetRun", runs_pb2.GetRunRequest()))
    with pytest.raises(TypeError, match="not both"):
        client.run_service.get_run(runs_pb2.GetRunRequest(run_id="a"), run_id="b")


# ------------------------------------------------------------------------------------------- paging


def test_iterators_return_every_item_once_and_in_order(client: Client) -> None:
    made = [client.directive_service.create_directive(input=f"paged {i}").directive.id for i in range(7)]
    everything = [d.id for d in client.directive_service.list_directives(limit=500).items]
    assert len(everything) < 500  # one page holds them all: the reference
    paged = [d.id for d in client.directive_service.iter_list_directives(limit=2)]
    assert paged == everything
    assert paged[:7] == made[::-1]  # newest first
    request = directives_pb2.ListDirectivesRequest(limit=2)
    pages = list(client.pages("athena.v1.DirectiveService.ListDirectives", request))
    assert len(pages) == (len(everything) + 1) // 2 and all(len(p.items) <= 2 for p in pages)

    session = new_session()
    for text in ("one", "two", "three"):
        run_in(client, session, text)
    events = [e.id for e in client.event_service.list_events(session_id=session, limit=500).events]
    assert len(events) == 9
    assert [e.id for e in client.event_service.iter_list_events(session_id=session, limit=2)] == events


# --------------------------------------------------------------------------------- auth and credentials


def test_auth_refusals_are_the_same_over_both_transports(servers: Servers) -> None:
    refusals: dict[str, list[AthenaError]] = {}
    for kind in TRANSPORTS:
        target = url(servers.auth, kind)
        with (
            athena_client.connect(target) as anonymous,
            athena_client.connect(target, identity="alice") as alice,
            athena_client.connect(target, api_token="not-the-token") as forged,
        ):
            assert anonymous.system_service.get_health().status == "ok"  # probes need nobody
            assert alice.system_service.get_capabilities().state_store == "sqlite"  # Viewer reads
            refusals[kind] = [
                error_of(lambda: anonymous.system_service.get_capabilities()),
                error_of(lambda: alice.policy_service.put_policy(schema_version=1)),
                error_of(lambda: forged.system_service.get_capabilities()),
            ]
    assert refusals["grpc"] == refusals["rest"]
    missing, denied, invalid = refusals["grpc"]
    assert (missing.code, missing.http_status, missing.retryable) == ("AUTH_IDENTITY_MISSING", 401, False)
    assert (denied.code, denied.http_status) == ("AUTHZ_DENIED", 403)
    assert denied.message == "Forbidden: PolicyService.PutPolicy requires role Admin."
    assert (invalid.code, invalid.http_status) == ("AUTH_TOKEN_INVALID", 401)


def test_credentials_from_arguments_and_the_environment(
    servers: Servers, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = url(servers.auth, kind)

    def actor_of_a_run(c: Client) -> str:
        session = new_session()
        run_in(c, session)
        actors = {e.actor for e in c.event_service.iter_list_events(session_id=session)}
        [actor] = actors
        return actor

    with athena_client.connect(target, identity="bob") as bob:
        assert bob.policy_service.put_policy(schema_version=1, audit_comment=f"bob {kind}").policy.schema_version == 1
        assert actor_of_a_run(bob) == "bob"
    with athena_client.connect(target, api_token=CAROL_TOKEN) as carol:
        assert actor_of_a_run(carol) == "carol"  # Operator: runs, but not the policy
        assert error_of(lambda: carol.policy_service.put_policy(schema_version=1)).code == "AUTHZ_DENIED"

    monkeypatch.setenv("ATHENA_IDENTITY", "alice")
    with athena_client.connect(target) as from_env:
        assert from_env.system_service.get_capabilities().state_store == "sqlite"
        assert error_of(lambda: from_env.policy_service.put_policy(schema_version=1)).code == "AUTHZ_DENIED"
    with athena_client.connect(target, identity="bob") as argument_wins:
        assert argument_wins.policy_service.put_policy(schema_version=1).policy.schema_version == 1
    monkeypatch.delenv("ATHENA_IDENTITY")
    monkeypatch.setenv("ATHENA_API_TOKEN", CAROL_TOKEN)
    with athena_client.connect(target) as token_from_env:
        assert actor_of_a_run(token_from_env) == "carol"


# ----------------------------------------------------------------------------------------- rate limits


def refused_read(c: Client) -> AthenaError:
    """Spend the read bucket until the server refuses (2 per second), without retrying."""
    for _ in range(10):
        try:
            c.system_service.get_capabilities(rpc_retry=False)
        except AthenaError as error:
            return error
    raise AssertionError("never rate limited")


def test_rate_limited_without_retry_and_waited_out_by_default(servers: Servers, kind: str) -> None:
    counting = Counting(transport_of(servers.limited, kind))
    with Client(counting) as c:
        refusal = refused_read(c)
        assert type(refusal) is AthenaError
        assert (refusal.code, refusal.http_status, refusal.retryable) == ("RATE_LIMITED", 429, True)
        assert refusal.retry_after is not None and refusal.retry_after > 0
        assert refusal.message.startswith("Rate limit exceeded: 2 read requests per second")
        counting.outcomes.clear()
        assert c.system_service.get_capabilities().state_store == "sqlite"  # default: waits, then succeeds
        assert counting.outcomes[0] == "RATE_LIMITED" and counting.outcomes[-1] == "ok"
        assert set(counting.outcomes[:-1]) == {"RATE_LIMITED"}


def test_a_rate_limited_write_is_retried_and_made_once(servers: Servers, kind: str) -> None:
    """RATE_LIMITED proves the server did nothing, so even a write (not retry-safe) is retried."""
    counting = Counting(transport_of(servers.limited, kind))
    marker = uuid.uuid4().hex
    with Client(counting) as c:
        made = 0
        while "RATE_LIMITED" not in counting.outcomes:
            with contextlib.suppress(AthenaError):
                c.directive_service.create_directive(input=f"{marker} {made}", rpc_retry=False)
                made += 1
        counting.outcomes.clear()
        c.directive_service.create_directive(input=f"{marker} {made}")
        assert counting.outcomes[0] == "RATE_LIMITED" and counting.outcomes[-1] == "ok"
        made += 1
        mine = [d.input for d in c.directive_service.iter_list_directives(limit=500) if d.input.startswith(marker)]
        assert sorted(mine) == [f"{marker} {i}" for i in range(made)]


# ------------------------------------------------------------------------ streams across server restarts


def test_event_streams_survive_restarts_without_loss_or_duplicates(tmp_path: Path) -> None:
    """A consumer per transport follows the event stream from an early event while the server is stopped
    with SIGTERM, started again on the same ports and store, then killed with SIGKILL and started again;
    each consumer ends up with exactly the store's events after its start point, in order, once each."""
    env = {**QUIET, "ATHENA_SHUTDOWN_GRACE_SECONDS": "1"}
    p = start_api(tmp_path, env)
    # Consumers reconnect patiently: the server is away for seconds. The producer keeps the default policy:
    # a call made once the server is back succeeds, though the consumers' failed reconnects left gRPC's
    # (shared) connection in back-off.
    patient = RetryPolicy(initial_backoff=0.05, max_backoff=0.25, max_reconnects=400)
    received: dict[str, list[str]] = {k: [] for k in TRANSPORTS}
    failures: list[BaseException] = []
    progress = threading.Condition()
    producer = athena_client.connect(url(p, "grpc"))
    try:
        run_in(producer, "before")
        start_id = producer.event_service.list_events(limit=1).events[0].id

        def consume(kind: str) -> None:
            try:
                with athena_client.connect(url(p, kind), retry=patient) as c:
                    for message in c.event_service.stream_events(after=start_id):
                        with progress:
                            received[kind].append(message.event.id)
                            progress.notify_all()
                        if message.event.session_id == "done" and message.event.type == "run.completed":
                            return
            except BaseException as exc:
                failures.append(exc)
                with progress:
                    progress.notify_all()

        def store_after_start() -> list[str]:
            return [e.id for e in producer.event_service.iter_list_events(limit=500) if seq(e.id) > seq(start_id)]

        def caught_up() -> None:
            expected = store_after_start()
            with progress:
                done = progress.wait_for(
                    lambda: failures or all(len(r) >= len(expected) for r in received.values()), 60
                )
            assert done and not failures, (failures, received, expected)

        consumers = [threading.Thread(target=consume, args=(k,), daemon=True) for k in TRANSPORTS]
        for t in consumers:
            t.start()
        run_in(producer, "phase-1")
        caught_up()
        for stop in (signal.SIGTERM, signal.SIGKILL):
            returncode = p.stop(stop)
            assert returncode == (0 if stop == signal.SIGTERM else -signal.SIGKILL), p.log()
            p = relaunch(tmp_path, env, p.rest_port or 0, p.grpc_port or 0)

            # The producer keeps calling while the server is away, as a polling client would: its failures
            # put gRPC's connection into reconnect back-off.
            def back(p: AthenaProcess = p) -> bool:
                with contextlib.suppress(AthenaTransportError):
                    producer.system_service.get_health(rpc_retry=False)
                return ready(p)

            wait_until(back, "the server to be back")
            run_in(producer, f"after-{stop.name}")  # possibly before the consumers are back
            caught_up()
        run_in(producer, "done")
        for t in consumers:
            t.join(60)
        assert not failures and not any(t.is_alive() for t in consumers), (failures, received)
        expected = store_after_start()
        assert expected[0] == f"evt_{seq(start_id) + 1}"
        for kind in TRANSPORTS:
            assert received[kind] == expected, kind
    finally:
        producer.close()
        p.stop()


def ready(p: AthenaProcess) -> bool:
    assert p.proc.poll() is None, p.log()
    try:
        return httpx.get(f"{p.rest_url}/api/v1/readiness", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def seq(event_id: str) -> int:
    return int(event_id.removeprefix("evt_"))


# ------------------------------------------------------------------------------------------ idempotency


class LoseFirstCreateRunAnswer:
    """The real transport, except that the first CreateRun's answer is lost on the way back: the server
    acted, the caller cannot know it. Records the idempotency key each attempt carried."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.keys: list[str] = []
        self.lost: Message | None = None

    def unary(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> Message:
        response = self.inner.unary(rpc, request, headers, timeout)
        if rpc.full_name == "athena.v1.RunService.CreateRun":
            self.keys.append(dict(headers)[IDEMPOTENCY_HEADER])
            if self.lost is None:
                self.lost = response
                raise AthenaTransportError("UNAVAILABLE", "connection reset before the answer arrived")
        return response

    def stream(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> Iterator[Message]:
        return self.inner.stream(rpc, request, headers, timeout)

    def close(self) -> None:
        self.inner.close()


def test_a_retry_after_a_lost_answer_reuses_the_key_and_runs_once(servers: Servers, kind: str) -> None:
    lossy = LoseFirstCreateRunAnswer(transport_of(servers.plain, kind))
    session = new_session()
    with Client(lossy) as c:
        answer = c.run_service.create_run(session_id=session, input="exactly once")
        assert len(lossy.keys) == 2 and lossy.keys[0] == lossy.keys[1]
        assert answer == lossy.lost  # the first answer, replayed
        assert answer.result.output == "Echo: user: exactly once"
        assert event_types(c, session) == ["run.created", "run.started", "run.completed"]
        assert [e.role for e in c.session_service.list_transcript_entries(session_id=session).items] == [
            sessions_pb2.TRANSCRIPT_ROLE_USER,
            sessions_pb2.TRANSCRIPT_ROLE_ASSISTANT,
        ]
        # The next logical call is another request: a key of its own.
        run_in(c, session, "again")
        assert len(lossy.keys) == 3 and lossy.keys[2] != lossy.keys[0]


def test_an_explicit_key_replays_the_same_request_and_refuses_another(client: Client) -> None:
    key, session = uuid.uuid4().hex, new_session()
    first = client.run_service.create_run(session_id=session, input="a", idempotency_key=key)
    assert client.run_service.create_run(session_id=session, input="a", idempotency_key=key) == first
    reused = error_of(lambda: client.run_service.create_run(session_id=session, input="b", idempotency_key=key))
    assert (reused.code, reused.http_status, reused.retryable, reused.message) == (
        "IDEMPOTENCY_KEY_REUSED",
        422,
        False,
        "Idempotency-Key was already used with a different request body.",
    )
    assert event_types(client, session) == ["run.created", "run.started", "run.completed"]


# ------------------------------------------------------------------------- transport failures, timeouts


def test_nothing_listening_is_a_transport_error(kind: str) -> None:
    dead = f"grpc://127.0.0.1:{free_port()}" if kind == "grpc" else f"http://127.0.0.1:{free_port()}"
    counting = Counting(athena_client.connect(dead).transport)
    with Client(counting, retry=RetryPolicy(initial_backoff=0.01)) as c:
        error = error_of(lambda: c.system_service.get_health(rpc_retry=False))
        assert type(error) is AthenaTransportError
        assert (error.code, error.retryable, error.http_status, error.trace_id) == ("UNAVAILABLE", True, None, None)
        assert counting.outcomes == ["UNAVAILABLE"]
        # A read is retried up to the policy's attempts; a write that may have been done is not.
        counting.outcomes.clear()
        assert type(error_of(lambda: c.system_service.get_health())) is AthenaTransportError
        assert counting.outcomes == ["UNAVAILABLE"] * RetryPolicy().max_attempts
        counting.outcomes.clear()
        assert type(error_of(lambda: c.directive_service.create_directive(input="x"))) is AthenaTransportError
        assert counting.outcomes == ["UNAVAILABLE"]


def test_a_call_timeout_is_deadline_exceeded(client: Client) -> None:
    session = new_session()
    error = error_of(
        lambda: client.run_service.create_run(
            session_id=session, input="slow", wait=True, metadata={"mock.delayMs": "3000"}, rpc_timeout=0.2
        )
    )
    assert type(error) is AthenaTransportError
    assert (error.code, error.retryable, error.http_status) == ("DEADLINE_EXCEEDED", True, None)
    # The timeout bounds the whole call, retries included: one attempt, so one run, whatever became of it.
    client.run_service.cancel_run_by_session_id(session_id=session)  # over REST the run outlives its caller
    wait_until(lambda: not list(client.run_service.iter_list_active_runs(session_id=session)), "the run to end")
    assert event_types(client, session).count("run.created") == 1


def test_a_stream_timeout_ends_the_stream(client: Client) -> None:
    """`rpc_timeout` bounds the whole stream: it ends with DEADLINE_EXCEEDED, not reconnecting."""
    quiet = client.event_service.stream_events(session_id=new_session(), rpc_timeout=1.5)
    error = error_of(lambda: list(quiet))
    assert type(error) is AthenaTransportError and error.code == "DEADLINE_EXCEEDED"


# ------------------------------------------------------------------------------------------ closing


def test_with_closes_the_client(servers: Servers, kind: str) -> None:
    with athena_client.connect(url(servers.plain, kind)) as c:
        assert c.system_service.get_health().status == "ok"
    # Not an AthenaError (nothing was asked of Athena) and never retried; nothing reopens behind the caller.
    with pytest.raises(ClientClosedError):
        c.system_service.get_health()
    with pytest.raises(ClientClosedError):
        first_items(c.event_service.stream_events(), 1)


# ------------------------------------------------------------------------------------ the example


def test_the_quickstart_example_runs(servers: Servers, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("sdk_quickstart", ROOT / "examples" / "sdk_quickstart.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(url(servers.plain, kind)) == 0
    out = capsys.readouterr().out
    assert "RUN_STATUS_SUCCEEDED: Echo: user: Summarise the open incidents" in out
    assert "refused: NOT_FOUND (HTTP 404): Run 'no-such-run' not found." in out
    # created, started, completed: listed or followed live, each once (the run takes 300 ms)
    assert "then 3 events of the second" in out


# ---------------------------------------------------------------------------------------------- async


async def test_async_client(servers: Servers, kind: str) -> None:
    target = url(servers.plain, kind)
    session = new_session()
    async with athena_client.connect_async(target) as c:
        created = (await c.run_service.create_run(session_id=session, input="async", provider="mock")).result
        assert created.output == "Echo: user: async"
        run = (await c.run_service.get_run(run_id=created.run_id)).run
        assert (run.status, run.output) == (RunStatus.RUN_STATUS_SUCCEEDED, created.output)
        generic = await c.call("athena.v1.SystemService.GetCapabilities", system_pb2.GetCapabilitiesRequest())
        assert generic == await c.system_service.get_capabilities()

        for i in range(3):
            await c.directive_service.create_directive(input=f"async paged {i}")
        everything = [d.id for d in (await c.directive_service.list_directives(limit=500)).items]
        assert [d.id async for d in c.directive_service.iter_list_directives(limit=2)] == everything

        events = list((await c.event_service.list_events(session_id=session)).events)
        stream = c.event_service.stream_events(session_id=session, after=events[0].id)
        streamed: list[events_pb2.Event] = []
        async for message in stream:
            streamed.append(message.event)
            if len(streamed) == 2:
                break
        await stream.aclose()
        assert streamed == events[1:]

        with pytest.raises(AthenaError) as missing:
            await c.run_service.get_run(run_id="no-such-run")
        with athena_client.connect(target) as sync:
            assert missing.value == error_of(lambda: sync.run_service.get_run(run_id="no-such-run"))
        with pytest.raises(AthenaError) as too_long:
            await c.run_service.create_run(session_id="s" * 129, input="x")
        assert (too_long.value.code, too_long.value.http_status) == ("CONFIG_ERROR", 400)
    with pytest.raises(ClientClosedError):
        await c.system_service.get_health()

    dead = f"grpc://127.0.0.1:{free_port()}" if kind == "grpc" else f"http://127.0.0.1:{free_port()}"
    async with athena_client.connect_async(dead) as unreachable:
        with pytest.raises(AthenaTransportError) as caught:
            await unreachable.system_service.get_health(rpc_retry=False)
        assert caught.value.code == "UNAVAILABLE"
