"""`Idempotency-Key` on every RPC that reads one (`(athena.v1.idempotency_key)`: CreateRun, RunRunTemplate,
RunPersona, SendA2aMessage), over REST (the header) and gRPC (metadata): a replay answers the first answer
and starts nothing; the key with another request is IDEMPOTENCY_KEY_REUSED; the key's bounds; a retryable
refusal (429) releases the key so the retry runs; the key's TTL holds at lookup."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from athena.v1 import options_pb2
from tests.support.events import events_of
from tests.support.grpc_errors import error_info
from tests.support.processes import Served, serving
from tests.support.rpc_calls import methods
from tests.support.shapes import error_of, new_session, ok_data
from tests.support.transports import grpc_data, rest_response
from tests.support.waiting import wait_until

REUSED = "Idempotency-Key was already used with a different request body."
BOUNDS = "Idempotency-Key must be 1..255 characters."
TOO_LONG = "header 'idempotency-key' must be at most 255 characters."
UNPRINTABLE = "header 'idempotency-key' must be printable ASCII."
TRANSPORTS = ("rest", "grpc")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True)


def _make_repo(path: Path) -> None:
    """A repository whose `feature` branch changes one file of `main` (what a persona review reads)."""
    path.mkdir(parents=True)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "config", "user.email", "test@example.com")
    _git(path, "config", "user.name", "Test")
    (path / "a.txt").write_text("one\n")
    _git(path, "add", ".")
    _git(path, "commit", "-qm", "init")
    _git(path, "checkout", "-qb", "feature")
    (path / "a.txt").write_text("two\n")
    _git(path, "commit", "-qam", "change")


@dataclass
class Plane:
    served: Served
    template_id: str


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    workdir = tmp_path_factory.mktemp("idempotency")
    _make_repo(workdir / "repo")
    with serving(workdir) as s:
        profile = ok_data(
            s.rest.post(
                "/api/v1/harness-profiles",
                json={
                    "displayName": "P",
                    "version": "v1",
                    "config": {"provider": "mock", "model": "default", "tools": ["shell"]},
                    "policies": {"timeoutMs": 60000, "retryLimit": 1, "budgetUsd": 1},
                },
            )
        )
        template = ok_data(
            s.rest.post(
                "/api/v1/run-templates",
                json={
                    "harnessProfileId": profile["id"],
                    "directiveTemplate": "Fix {{ bug }}",
                    "defaultParams": {"bug": "b0"},
                },
            )
        )
        yield Plane(s, template["id"])


@dataclass(frozen=True)
class Route:
    """One RPC that reads a key: a fresh request, another request, and how many things a request made."""

    name: str
    status: int  # the REST status of a success
    request: Callable[[Plane], dict[str, Any]]
    other: Callable[[dict[str, Any]], dict[str, Any]]
    made: Callable[[Plane, dict[str, Any]], int]


def _runs_in(session_field: str) -> Callable[[Plane, dict[str, Any]], int]:
    def made(p: Plane, fields: dict[str, Any]) -> int:
        return len(events_of(p.served.rest, fields[session_field], "run.created"))

    return made


def _messages_from(p: Plane, fields: dict[str, Any]) -> int:
    page = ok_data(p.served.rest.get("/api/v1/a2a/messages", params={"fromSessionId": fields["fromSessionId"]}))
    return len(page["items"])


ROUTES = [
    Route(
        "RunService.CreateRun",
        200,
        lambda p: {"sessionId": new_session(), "input": "once"},
        lambda f: {**f, "input": "twice"},
        _runs_in("sessionId"),
    ),
    Route(
        "RunTemplateService.RunRunTemplate",
        200,
        lambda p: {"id": p.template_id, "sessionId": new_session(), "params": {"bug": "b1"}},
        lambda f: {**f, "params": {"bug": "b2"}},
        _runs_in("sessionId"),
    ),
    Route(
        "PersonaService.RunPersona",
        200,
        lambda p: {"name": "code-review", "repoPath": "repo", "headRef": "feature", "sessionId": new_session()},
        lambda f: {**f, "baseRef": "feature"},
        _runs_in("sessionId"),
    ),
    Route(
        "A2aService.SendA2aMessage",
        202,
        lambda p: {"fromSessionId": new_session(), "toSessionId": new_session(), "input": "once"},
        lambda f: {**f, "input": "twice"},
        _messages_from,
    ),
]
BY_NAME = {r.name: r for r in ROUTES}


def test_the_routes_here_are_every_rpc_that_reads_a_key() -> None:
    marked = {
        f"{m.containing_service.name}.{m.name}"
        for m in methods()
        if m.GetOptions().Extensions[options_pb2.idempotency_key]
    }
    assert marked == set(BY_NAME)


def _call(p: Plane, route: Route, transport: str, key: str | None, fields: dict[str, Any]) -> Any:
    """The answer's JSON (REST `data`, or the gRPC response as REST would render it)."""
    if transport == "rest":
        headers = {} if key is None else {"Idempotency-Key": key}
        return ok_data(rest_response(p.served.rest, route.name, headers, **fields), route.status)
    return grpc_data(p.served.channel, route.name, {} if key is None else {"idempotency-key": key}, **fields)


def _refusal(p: Plane, route: Route, transport: str, key: str, fields: dict[str, Any]) -> tuple[str, str, Any]:
    """(code, message, REST status or gRPC status name) of a refused call."""
    if transport == "rest":
        resp = rest_response(p.served.rest, route.name, {"Idempotency-Key": key}, **fields)
        err = resp.json()["error"]
        error_of(resp, resp.status_code, err["code"])
        return err["code"], err["message"], resp.status_code
    with pytest.raises(grpc.RpcError) as caught:
        grpc_data(p.served.channel, route.name, {"idempotency-key": key}, **fields)
    err = caught.value
    return error_info(err).reason, err.details(), err.code().name


def _key() -> str:
    return f"k-{new_session()}"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("name", list(BY_NAME))
def test_a_replay_answers_the_first_answer_and_starts_nothing(plane: Plane, name: str, transport: str) -> None:
    route, key = BY_NAME[name], _key()
    fields = route.request(plane)
    first = _call(plane, route, transport, key, fields)
    assert route.made(plane, fields) == 1
    again = _call(plane, route, transport, key, fields)
    assert again == first
    assert route.made(plane, fields) == 1
    # Another request under the key is refused, and makes nothing either.
    status = 422 if transport == "rest" else "FAILED_PRECONDITION"
    assert _refusal(plane, route, transport, key, route.other(fields)) == ("IDEMPOTENCY_KEY_REUSED", REUSED, status)
    assert route.made(plane, fields) == 1
    # The first request still replays after the refusal.
    assert _call(plane, route, transport, key, fields) == first


@pytest.mark.parametrize("name", list(BY_NAME))
def test_a_key_used_over_rest_replays_over_grpc_and_back(plane: Plane, name: str) -> None:
    route = BY_NAME[name]
    key, fields = _key(), route.request(plane)
    first = _call(plane, route, "rest", key, fields)
    assert _call(plane, route, "grpc", key, fields) == first
    key2, fields2 = _key(), route.request(plane)
    second = _call(plane, route, "grpc", key2, fields2)
    assert _call(plane, route, "rest", key2, fields2) == second
    assert route.made(plane, fields) == 1 and route.made(plane, fields2) == 1


@pytest.mark.parametrize("name", list(BY_NAME))
def test_without_a_key_every_request_starts_work(plane: Plane, name: str) -> None:
    """The counterpart of the replay test: the same request twice without a key makes two."""
    route = BY_NAME[name]
    fields = route.request(plane)
    _call(plane, route, "rest", None, fields)
    _call(plane, route, "grpc", None, fields)
    assert route.made(plane, fields) == 2


def test_one_key_on_two_routes_names_two_requests(plane: Plane) -> None:
    """A key is scoped to its RPC: the same key on CreateRun and SendA2aMessage starts both."""
    key = _key()
    run = BY_NAME["RunService.CreateRun"]
    send = BY_NAME["A2aService.SendA2aMessage"]
    run_fields, send_fields = run.request(plane), send.request(plane)
    _call(plane, run, "rest", key, run_fields)
    _call(plane, send, "rest", key, send_fields)
    assert run.made(plane, run_fields) == 1 and send.made(plane, send_fields) == 1


def test_the_key_is_trimmed(plane: Plane) -> None:
    """Surrounding blanks are not part of the key (gRPC metadata may carry them; HTTP strips them)."""
    route, key = BY_NAME["RunService.CreateRun"], _key()
    fields = route.request(plane)
    first = _call(plane, route, "grpc", f"  {key} ", fields)
    assert _call(plane, route, "rest", key, fields) == first
    assert route.made(plane, fields) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("name", list(BY_NAME))
def test_key_bounds(plane: Plane, name: str, transport: str) -> None:
    route = BY_NAME[name]
    status = 400 if transport == "rest" else "INVALID_ARGUMENT"
    cases = [("", BOUNDS), ("k" * 256, TOO_LONG)]
    if transport == "grpc":
        cases.append(("   ", BOUNDS))  # HTTP clients refuse a blank header; gRPC metadata carries it
    for key, message in cases:
        fields = route.request(plane)
        assert _refusal(plane, route, transport, key, fields) == ("CONFIG_ERROR", message, status), repr(key)
        assert route.made(plane, fields) == 0, repr(key)
    # The longest key is a key.
    longest = ("k" * 243 + new_session())[-255:]
    fields = route.request(plane)
    first = _call(plane, route, transport, longest, fields)
    assert _call(plane, route, transport, longest, fields) == first
    assert route.made(plane, fields) == 1


@pytest.mark.parametrize("name", list(BY_NAME))
@pytest.mark.parametrize("key", [b"a\tb", "ключ".encode(), b"a\x7fb", b"caf\xe9"])
def test_an_unprintable_key_is_refused_over_rest(plane: Plane, name: str, key: bytes) -> None:
    """gRPC metadata cannot carry these at all (the client library refuses to send them)."""
    route = BY_NAME[name]
    fields = route.request(plane)
    resp = rest_response(plane.served.rest, route.name, {"Idempotency-Key": key}, **fields)  # type: ignore[dict-item]
    assert error_of(resp, 400, "CONFIG_ERROR")["message"] == UNPRINTABLE
    assert route.made(plane, fields) == 0


# -- a retryable refusal releases the key -------------------------------------------------------------------


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Served]:
    """A server whose policy admits one run at a time (the policy is global, hence a server of its own)."""
    with serving(tmp_path) as s:
        ok_data(s.rest.put("/api/v1/policy", json={"schemaVersion": 1, "maxConcurrentRuns": 1}))
        yield s


def _hold_the_only_slot(s: Served) -> str:
    session = new_session()
    body = {"sessionId": session, "input": "hold", "wait": False, "metadata": {"mock.delayMs": "60000"}}
    run_id = str(ok_data(s.rest.post("/api/v1/runs", json=body), 202)["runId"])
    wait_until(lambda: events_of(s.rest, session, "run.started"), "the holding run to start")
    return run_id


def _free_the_slot(s: Served, run_id: str) -> None:
    ok_data(s.rest.post(f"/api/v1/run-control/by-run/{run_id}/cancel", json={"reason": "free the slot"}))
    wait_until(lambda: ok_data(s.rest.get(f"/api/v1/runs/{run_id}"))["status"] == "cancelled", "the holding run to end")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_429_refusal_releases_the_key_so_the_retry_runs(limited: Served, transport: str) -> None:
    route = BY_NAME["RunService.CreateRun"]
    plane = Plane(limited, "")
    holder = _hold_the_only_slot(limited)
    key, fields = _key(), route.request(plane)
    status = 429 if transport == "rest" else "RESOURCE_EXHAUSTED"
    code, message, got_status = _refusal(plane, route, transport, key, fields)
    assert (code, got_status) == ("POLICY_CONCURRENCY_LIMIT_EXCEEDED", status)
    assert message == "policy.maxConcurrentRuns exceeded: 1 active run(s) >= configured limit 1."
    # Refused again while the slot is held: the refusal is not replayed from a stored answer but re-decided.
    assert _refusal(plane, route, transport, key, fields)[0] == "POLICY_CONCURRENCY_LIMIT_EXCEEDED"
    assert route.made(plane, fields) == 0
    _free_the_slot(limited, holder)
    first = _call(plane, route, transport, key, fields)
    assert first["status"] == "succeeded" and first["sessionId"] == fields["sessionId"]
    assert route.made(plane, fields) == 1
    # From now on the key replays that run, on either transport.
    assert _call(plane, route, "rest", key, fields) == first
    assert _call(plane, route, "grpc", key, fields) == first
    assert route.made(plane, fields) == 1


def test_a_non_retryable_refusal_is_replayed(plane: Plane) -> None:
    """The counterpart: a refusal a retry cannot change (a template id that is not one) is answered the same."""
    route = BY_NAME["RunTemplateService.RunRunTemplate"]
    key = _key()
    fields = {**route.request(plane), "id": f"rt-missing-{new_session()}"}
    first = _refusal(plane, route, "rest", key, fields)
    assert first[0] == "CONFIG_ERROR" and first[2] == 400
    assert _refusal(plane, route, "grpc", key, fields) == (first[0], first[1], "INVALID_ARGUMENT")
    assert route.made(plane, fields) == 0


# -- the key's TTL ------------------------------------------------------------------------------------------

#: Three seconds: long enough that a replay right after the first request is still inside it on a loaded
#: machine, short enough that the test waits little. The heartbeat (which also deletes expired keys) is
#: slowed down so only the lookup can honour the TTL.
TTL_ENV = {
    "ATHENA_IDEMPOTENCY_TTL_HOURS": str(3 / 3600),
    "ATHENA_HEARTBEAT_SECONDS": "600",
    "ATHENA_INSTANCE_STALE_SECONDS": "3600",
}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_expired_key_starts_a_new_run(tmp_path: Path, transport: str) -> None:
    with serving(tmp_path, env=TTL_ENV) as s:
        plane = Plane(s, "")
        route = BY_NAME["RunService.CreateRun"]
        key, fields = _key(), route.request(plane)
        first = _call(plane, route, transport, key, fields)
        assert route.made(plane, fields) == 1
        # Once the TTL ran out, the same key and request start a new run (replays before that return the first).
        later = wait_until(
            lambda: (a := _call(plane, route, transport, key, fields))["runId"] != first["runId"] and a,
            "the key to expire",
            timeout=30,
            interval=0.5,
        )
        assert route.made(plane, fields) == 2
        assert later["status"] == "succeeded"
        # The new run's answer is now the key's answer.
        assert _call(plane, route, transport, key, fields) == later
        assert route.made(plane, fields) == 2
