"""Auth end to end, generated from the contract: every RPC, over REST and gRPC, with no identity, an
identity without a role, each role, a bad token and a good one, against real servers with auth on.

Refused calls must answer the exact code, record one `authz.denied` event that says who was refused
what, and change nothing else in the store (each refused call is a valid request, so a gate that let it
through would leave a trace). Allowed calls must never answer an auth code.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from athena.v1 import options_pb2
from athena_client.contract import method_access, role_name
from athena_server.access.config import token_digest
from tests.support.events import events_of
from tests.support.pages import every_item
from tests.support.processes import AthenaProcess, running_api, serving
from tests.support.rpc_calls import Outcome, call_grpc, call_rest, method_named, methods, request_of
from tests.support.shapes import new_session, ok_data

Role = options_pb2.Role
AUTH_CODES = {"AUTH_IDENTITY_MISSING", "AUTH_TOKEN_MISSING", "AUTH_TOKEN_INVALID", "AUTHZ_DENIED"}
OPERATOR_TOKEN = "tok-operator-7f3a9c"
ROLE_MAP = "admin:Admin,operator:Operator,viewer:Viewer"
AUTH_ENV = {
    "ATHENA_AUTH_ENABLED": "true",
    "ATHENA_AUTH_IDENTITY_ROLE_MAP": ROLE_MAP,
    "ATHENA_AUTH_API_TOKENS": f"ci:ci-bot:Operator:{token_digest(OPERATOR_TOKEN).hex()}",
    # Tokens are configured, so the header is trusted only because this says so: both kinds of caller.
    "ATHENA_AUTH_TRUST_IDENTITY_HEADER": "true",
    "ATHENA_SCHEDULE_TICK_SECONDS": "0",
}
PROFILE = {
    "displayName": "Access test",
    "version": "v1",
    "config": {"provider": "mock", "model": "default", "tools": ["shell"]},
    "policies": {"timeoutMs": 60000, "retryLimit": 1, "budgetUsd": 0},
}


@dataclass(frozen=True)
class Credential:
    """One way of calling: the headers sent, the role they grant (None: none), and the 401 they get."""

    label: str
    headers: dict[str, str]
    role: int | None
    subject: str | None = None
    unauthenticated: str | None = None  # the code every non-public RPC answers


CREDENTIALS = [
    Credential("no identity", {}, None, unauthenticated="AUTH_IDENTITY_MISSING"),
    Credential("bad token", {"authorization": "Bearer not-a-token"}, None, unauthenticated="AUTH_TOKEN_INVALID"),
    Credential("identity without role", {"x-athena-identity": "mallory"}, None, "mallory"),
    Credential("viewer", {"x-athena-identity": "viewer"}, Role.ROLE_VIEWER, "viewer"),
    Credential("operator", {"x-athena-identity": "operator"}, Role.ROLE_OPERATOR, "operator"),
    Credential("admin", {"x-athena-identity": "admin"}, Role.ROLE_ADMIN, "admin"),
    Credential("operator token", {"authorization": f"Bearer {OPERATOR_TOKEN}"}, Role.ROLE_OPERATOR, "ci-bot"),
]
ADMIN = {"x-athena-identity": "admin"}


def expected(method: MethodDescriptor, cred: Credential) -> str | None:
    """The refusal code for this caller, None when the gate lets the call through."""
    required = method_access(method).role
    if required == Role.ROLE_PUBLIC:
        return None
    if cred.unauthenticated:
        return cred.unauthenticated
    return "AUTHZ_DENIED" if cred.role is None or cred.role < required else None


@dataclass(frozen=True)
class Refs:
    """Records the sample requests point at, so a write let through would change something."""

    session: str
    queued_session: str
    run: str
    profile: str
    directive: str
    template: str
    workflow: str
    schedule_on: str
    schedule_off: str


def make_refs(client: httpx.Client, headers: dict[str, str]) -> Refs:
    def post(path: str, body: dict[str, Any]) -> Any:
        return ok_data(client.post(path, json=body, headers=headers))

    run = post("/api/v1/runs", {"sessionId": "acc-s1", "input": "hello"})["runId"]
    post("/api/v1/work/enqueue", {"sessionId": "acc-q1", "payload": "queued", "mode": "followup"})
    profile = post("/api/v1/harness-profiles", PROFILE)["id"]
    directive = post("/api/v1/directives", {"input": "do it"})["id"]
    template = post(
        "/api/v1/run-templates",
        {"harnessProfileId": profile, "directiveTemplate": "Fix {{ bug }}", "defaultParams": {"bug": "b1"}},
    )["id"]
    step = {"id": "a", "directiveId": directive, "harnessProfileId": profile}
    workflow = post("/api/v1/workflows", {"definition": {"steps": [step]}})["id"]
    for sid, enabled in (("acc-on", True), ("acc-off", False)):
        post(
            "/api/v1/schedules",
            {"id": sid, "sessionId": "acc-s1", "input": "tick", "everyMinutes": 60, "enabled": enabled},
        )
    return Refs("acc-s1", "acc-q1", run, profile, directive, template, workflow, "acc-on", "acc-off")


def sample(name: str, refs: Refs) -> dict[str, Any]:
    """A valid request for each RPC that takes arguments (reads of a record name it)."""
    s = refs.session
    step = {"id": "b", "directiveId": refs.directive, "harnessProfileId": refs.profile}
    samples: dict[str, dict[str, Any]] = {
        "RunService.CreateRun": {"sessionId": s, "input": "hello again"},
        "RunService.GetRun": {"runId": refs.run},
        "RunService.CancelRunByRunId": {"runId": refs.run, "reason": "stop"},
        "RunService.CancelRunBySessionId": {"sessionId": s, "reason": "stop"},
        "SessionService.ListTranscriptEntries": {"sessionId": s},
        "SessionService.StreamTranscript": {"sessionId": s},
        "WorkService.GetWorkQueue": {"sessionId": s},
        "WorkService.EnqueueWork": {"sessionId": s, "payload": "later", "mode": "followup"},
        "WorkService.DrainWork": {"sessionId": refs.queued_session},
        "PolicyService.PutPolicy": {"schemaVersion": 1, "maxConcurrentRuns": 7},
        "DirectiveService.CreateDirective": {"input": "another"},
        "HarnessProfileService.CreateHarnessProfile": PROFILE,
        "RunTemplateService.CreateRunTemplate": {
            "harnessProfileId": refs.profile,
            "directiveTemplate": "Do {{ x }}",
            "defaultParams": {"x": "y"},
        },
        "RunTemplateService.RunRunTemplate": {"id": refs.template},
        "WorkflowService.CreateWorkflow": {"definition": {"steps": [step]}},
        "WorkflowService.GetWorkflowRun": {"id": refs.workflow},
        "WorkflowService.ResumeWorkflowRun": {"id": refs.workflow},
        "ScheduleService.CreateSchedule": {"id": "acc-new", "sessionId": s, "input": "x", "everyMinutes": 60},
        "ScheduleService.UpdateSchedule": {"id": refs.schedule_on, "sessionId": s, "input": "y", "everyMinutes": 30},
        "ScheduleService.DeleteSchedule": {"id": refs.schedule_on},
        "ScheduleService.GetSchedule": {"id": refs.schedule_on},
        "ScheduleService.RunSchedule": {"id": refs.schedule_on},
        "ScheduleService.EnableSchedule": {"id": refs.schedule_off},
        "ScheduleService.DisableSchedule": {"id": refs.schedule_on},
        "ScheduleService.ListScheduleLogs": {"id": refs.schedule_on},
        "ScheduleService.TickSchedules": {"at": "2100-01-01T00:00:00.000Z"},
        "A2aDlqService.RequeueA2aDlqItem": {"id": "dlq-1"},
        "A2aDlqService.DiscardA2aDlqItem": {"id": "dlq-1"},
        "A2aService.GetA2aMessage": {"id": "a2a-1"},
        "MemoryService.SearchMemory": {"query": "notes"},
        "MemoryService.GetMemory": {"path": "MEMORY.md"},
    }
    return samples.get(name, {})


def rpc_name(method: MethodDescriptor) -> str:
    return f"{method.containing_service.name}.{method.name}"


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table but the process registry (heartbeats), and every event but the refusals' own."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        state = {}
        for table in tables:
            if table in ("instances", "sqlite_sequence", "alembic_version"):
                continue
            where = " WHERE type != 'authz.denied'" if table == "events" else ""
            state[table] = conn.execute(f"SELECT * FROM {table}{where} ORDER BY rowid").fetchall()
        return state


def denials(client: httpx.Client) -> list[dict[str, Any]]:
    """Every refusal the server recorded (the refusing server's log; it receives nothing else)."""
    return every_item(client, "/api/v1/events", {"types": "authz.denied"}, headers=ADMIN, key="events")


@dataclass
class Server:
    process: AthenaProcess
    client: httpx.Client
    channel: grpc.Channel
    refs: Refs

    @property
    def db(self) -> Path:
        return self.process.workdir / ".athena" / "athena.db"

    def call(self, transport: str, method: MethodDescriptor, cred: Credential) -> Outcome:
        request = request_of(method, **sample(rpc_name(method), self.refs))
        if transport == "rest":
            return call_rest(self.client, method, request, cred.headers)
        return call_grpc(self.channel, method, request, cred.headers)


def _server(tmp: Path, env: dict[str, str], setup: dict[str, str] = ADMIN) -> Iterator[Server]:
    with serving(tmp, env=env) as served:
        yield Server(served.process, served.rest, served.channel, make_refs(served.rest, setup))


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Receives only refused calls (after its set-up), so its state must never change."""
    yield from _server(tmp_path_factory.mktemp("refusing"), AUTH_ENV)


@pytest.fixture(scope="module")
def allowing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(tmp_path_factory.mktemp("allowing"), AUTH_ENV)


METHODS = methods()
TRANSPORTS = ("rest", "grpc")


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("method", METHODS, ids=rpc_name)
def test_refused_calls_answer_the_code_record_the_denial_and_change_nothing(
    refusing: Server, method: MethodDescriptor, transport: str
) -> None:
    required = role_name(method_access(method).role)
    refused = [c for c in CREDENTIALS if expected(method, c) is not None]
    if not refused:
        pytest.skip(f"{rpc_name(method)} is public: nothing refuses it")
    before = snapshot(refusing.db)
    seen = len(denials(refusing.client))
    for cred in refused:
        outcome = refusing.call(transport, method, cred)
        code = expected(method, cred)
        assert outcome.code == code, (cred.label, outcome)
        if transport == "rest":
            assert outcome.status == (401 if code != "AUTHZ_DENIED" else 403), (cred.label, outcome)
        if code == "AUTHZ_DENIED":
            wanted = ["Viewer", "Operator", "Admin"][["Viewer", "Operator", "Admin"].index(required) :]
            roles = wanted[0] if len(wanted) == 1 else f"{', '.join(wanted[:-1])} or {wanted[-1]}"
            message = f"Forbidden: {rpc_name(method)} requires role {roles}."
            if cred.role is None:
                message += f" No role is granted to identity '{cred.subject}'."
            assert outcome.message == message
        assert snapshot(refusing.db) == before, f"{cred.label}: a refused call changed the store"
        events = denials(refusing.client)
        assert len(events) == seen + 1, cred.label
        seen += 1
        event = events[-1]
        reason = {
            "AUTH_IDENTITY_MISSING": "IDENTITY_MISSING",
            "AUTH_TOKEN_INVALID": "TOKEN_INVALID",
            "AUTHZ_DENIED": "ROLE_MISSING" if cred.role is None else "ROLE_INSUFFICIENT",
        }[code or ""]
        assert event["payload"] == {
            "subject": cred.subject,
            "role": role_name(cred.role) if cred.role is not None else None,
            "operation": rpc_name(method),
            "requiredRole": required,
            "reason": reason,
            "code": code,
            "address": "127.0.0.1",
        }
        assert event.get("actor") == cred.subject


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("method", METHODS, ids=rpc_name)
def test_allowed_calls_pass_the_gate(allowing: Server, method: MethodDescriptor, transport: str) -> None:
    for cred in CREDENTIALS:
        if expected(method, cred) is None:
            outcome = allowing.call(transport, method, cred)
            assert outcome.code not in AUTH_CODES, (cred.label, outcome)


def test_accepted_writes_record_their_actor(allowing: Server) -> None:
    """The event log is the audit trail: each event of a write names who made it, over both transports."""
    client, channel = allowing.client, allowing.channel
    resp = client.post("/api/v1/directives", json={"input": "audited"}, headers={"x-athena-identity": "operator"})
    trace = resp.headers["x-trace-id"]
    ok_data(resp)
    method = method_named("RunService.CreateRun")
    token = {"authorization": f"Bearer {OPERATOR_TOKEN}"}
    session = new_session()
    assert call_grpc(channel, method, request_of(method, sessionId=session, input="hi"), token).code is None
    events = ok_data(client.get("/api/v1/events", params={"traceId": trace}, headers=ADMIN))["events"]
    assert [(e["type"], e.get("actor")) for e in events] == [("directive.created", "operator")]
    with httpx.Client(base_url=allowing.process.rest_url, headers=ADMIN, timeout=60) as admin:
        runs = events_of(admin, session)
    assert [(e["type"], e.get("actor")) for e in runs] == [
        ("run.created", "ci-bot"),
        ("run.started", "ci-bot"),
        ("run.completed", "ci-bot"),
    ]


def test_tokens_only_server_wants_a_token_from_every_caller(tmp_path: Path) -> None:
    """With tokens configured and the header not trusted, the identity header alone gets nowhere."""
    env = {k: v for k, v in AUTH_ENV.items() if k != "ATHENA_AUTH_TRUST_IDENTITY_HEADER"}
    for server in _server(tmp_path, env, setup={"authorization": f"Bearer {OPERATOR_TOKEN}"}):
        cred = Credential("header only", {"x-athena-identity": "admin"}, None, unauthenticated="AUTH_TOKEN_MISSING")
        before = snapshot(server.db)
        for method in METHODS:
            want = expected(method, cred)
            for transport in TRANSPORTS:
                outcome = server.call(transport, method, cred)
                assert outcome.code == want, (rpc_name(method), transport, outcome)
                if want is not None:
                    assert outcome.message == (
                        "Missing API token: send 'Authorization: Bearer <token>' or 'x-athena-api-token'."
                    )
        assert snapshot(server.db) == before


def test_probes_and_the_grpc_health_service_need_no_identity(allowing: Server) -> None:
    for path in ("/api/v1/health", "/api/v1/readiness", "/api/v1/admin/health"):
        ok_data(allowing.client.get(path))
    health = health_pb2_grpc.HealthStub(allowing.channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING


def reflected_services(channel: grpc.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    response = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=10)))
    return [s.name for s in response.list_services_response.service]


def test_reflection_can_be_switched_off(allowing: Server, tmp_path: Path) -> None:
    assert "athena.v1.RunService" in reflected_services(allowing.channel)
    with (
        running_api(tmp_path, env={"ATHENA_GRPC_REFLECTION": "false"}) as p,
        grpc.insecure_channel(p.grpc_target) as ch,
    ):
        with pytest.raises(grpc.RpcError) as err:
            reflected_services(ch)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
