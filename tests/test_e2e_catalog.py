"""Directives, harness profiles and run templates end to end: REST through the gateway and gRPC straight to
the server, against a real `athena api serve`. Exact shapes, every validation message (the original's), the
events each create appends, and keyset pages on a server of their own so counts are exact."""

from __future__ import annotations

import base64
import copy
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest

from athena.v1 import (
    directives_pb2,
    directives_pb2_grpc,
    harness_profiles_pb2,
    harness_profiles_pb2_grpc,
    run_templates_pb2,
    run_templates_pb2_grpc,
)
from athena_client.contract import message_to_json
from tests.support.grpc_errors import error_info
from tests.support.pages import every_item
from tests.support.processes import serving
from tests.support.shapes import assert_iso, error_of, new_session, ok_data

Json = dict[str, Any]

PROFILE: Json = {
    "displayName": "Reviewer",
    "version": "v1",
    "config": {"provider": "mock", "model": "default", "tools": ["shell"]},
    "policies": {"timeoutMs": 60000, "retryLimit": 2, "budgetUsd": 1.5},
}


DROP = object()


def profile_body(**changes: Any) -> Json:
    """PROFILE with changes keyed by path, `__` between levels (`config__tools=[...]`); DROP removes the key."""
    body = copy.deepcopy(PROFILE)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = body
        for key in parents:
            target = target[key]
        if value is DROP:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return body


def create_profile(client: httpx.Client, **changes: Any) -> Json:
    data: Json = ok_data(client.post("/api/v1/harness-profiles", json=profile_body(**changes)))
    return data


def create_directive(client: httpx.Client, text: str = "do the thing", **extra: Any) -> Json:
    data: Json = ok_data(client.post("/api/v1/directives", json={"input": text, **extra}))
    return data


def create_template(client: httpx.Client, profile_id: str, template: str = "Fix {{ bug }}", **params: str) -> Json:
    body = {"harnessProfileId": profile_id, "directiveTemplate": template, "defaultParams": params or {"bug": "b1"}}
    data: Json = ok_data(client.post("/api/v1/run-templates", json=body))
    return data


def events_of_trace(client: httpx.Client, event_type: str, trace: str) -> list[Json]:
    """The `event_type` events of one request (its trace id), every page."""
    return every_item(client, "/api/v1/events", {"types": event_type, "traceId": trace}, key="events")


def grpc_every_item(list_rpc: Callable[[Any], Any], request_type: Callable[..., Any]) -> list[Any]:
    """Every item of a list RPC over gRPC, following `next_cursor` page by page."""
    items: list[Any] = []
    cursor = ""
    while True:
        page = list_rpc(request_type(limit=500, cursor=cursor))
        items += page.items
        if not page.HasField("next_cursor"):
            return items
        cursor = page.next_cursor


def assert_event(client: httpx.Client, resp: httpx.Response, event_type: str, payload: Json) -> None:
    """`resp` appended exactly one `event_type` event, under its trace id, with this payload."""
    trace = resp.headers["x-trace-id"]
    [event] = events_of_trace(client, event_type, trace)
    assert set(event) == {"id", "traceId", "type", "createdAt", "payload"}, event
    assert (event["type"], event["traceId"], event["payload"]) == (event_type, trace, payload)
    assert_iso(event["createdAt"])


def config_error(resp: httpx.Response, message: str | None = None) -> None:
    err = error_of(resp, 400, "CONFIG_ERROR")
    assert err["retryable"] is False
    if message is not None:
        assert err["message"] == message


# -- directives ----------------------------------------------------------------------------------------


def test_directive_create_shape_trims_and_stores(rest: httpx.Client) -> None:
    resp = rest.post(
        "/api/v1/directives",
        json={"input": "  Ship it  ", "contextRefs": [" doc:1 ", "doc:2"], "metadata": {"team": " core "}},
    )
    data = ok_data(resp)
    assert set(data) == {"id", "input", "contextRefs", "metadata", "createdAt"}
    uuid.UUID(data["id"], version=4)
    assert_iso(data["createdAt"])
    assert {k: data[k] for k in ("input", "contextRefs", "metadata")} == {
        "input": "Ship it",
        "contextRefs": ["doc:1", "doc:2"],
        "metadata": {"team": "core"},
    }
    assert_event(
        rest, resp, "directive.created", {"directiveId": data["id"], "hasContextRefs": True, "hasMetadata": True}
    )


def test_directive_without_refs_or_metadata(rest: httpx.Client) -> None:
    resp = rest.post("/api/v1/directives", json={"input": "bare", "contextRefs": [], "metadata": {}})
    data = ok_data(resp)
    assert data == {
        "id": data["id"],
        "input": "bare",
        "contextRefs": [],
        "metadata": {},
        "createdAt": data["createdAt"],
    }
    assert_event(
        rest, resp, "directive.created", {"directiveId": data["id"], "hasContextRefs": False, "hasMetadata": False}
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "directives.create.input must be a non-empty string."),
        ({"input": "   "}, "directives.create.input must be a non-empty string."),
        ({"input": None}, "directives.create.input must be a non-empty string."),
        ({"input": "x", "contextRefs": ["ok", " "]}, "directives.create.contextRefs[1] must be a non-empty string."),
        ({"input": "x", "metadata": {"k": "  "}}, "directives.create.metadata.k must be a non-empty string."),
        # The original parses contextRefs and metadata before input.
        ({"contextRefs": [""]}, "directives.create.contextRefs[0] must be a non-empty string."),
        ({"metadata": {"a": ""}}, "directives.create.metadata.a must be a non-empty string."),
        # Wrong JSON types are refused by the contract (the message names the field).
        ({"input": "x", "contextRefs": "doc"}, None),
        ({"input": "x", "contextRefs": [1]}, None),
        ({"input": "x", "metadata": ["a"]}, None),
        ({"input": "x", "metadata": {"k": 1}}, None),
    ],
)
def test_directive_validation(rest: httpx.Client, body: Json, message: str | None) -> None:
    resp = rest.post("/api/v1/directives", json=body)
    config_error(resp, message)
    assert events_of_trace(rest, "directive.created", resp.headers["x-trace-id"]) == []


def test_directive_listed_newest_first(rest: httpx.Client) -> None:
    first = create_directive(rest, "older")
    second = create_directive(rest, "newer")
    items = every_item(rest, "/api/v1/directives")
    ids = [d["id"] for d in items]
    assert ids.index(second["id"]) < ids.index(first["id"])
    assert items[ids.index(first["id"])] == first


def test_directive_over_grpc(channel: grpc.Channel, rest: httpx.Client) -> None:
    stub = directives_pb2_grpc.DirectiveServiceStub(channel)
    made = stub.CreateDirective(
        directives_pb2.CreateDirectiveRequest(input=" via grpc ", context_refs=["r"], metadata={"k": "v"})
    ).directive
    assert (made.input, list(made.context_refs), dict(made.metadata)) == ("via grpc", ["r"], {"k": "v"})
    listed = grpc_every_item(stub.ListDirectives, directives_pb2.ListDirectivesRequest)
    assert made in listed
    # The same resource over REST.
    rest_items = every_item(rest, "/api/v1/directives")
    assert message_to_json(made) in rest_items


# -- harness profiles ----------------------------------------------------------------------------------


def test_profile_create_exact_shape(rest: httpx.Client) -> None:
    body = profile_body(
        displayName="  Reviewer  ",
        config__tools=[" shell ", "git", "shell"],
        allowedEgress=[
            {"host": " API.Example.com ", "port": 443},
            {"host": "api.example.com", "port": 8443},
            {"host": "api.example.com"},
            {"host": "*.Example.org"},
            {"host": "10.0.0.1", "port": 5432},
            {"host": "localhost"},
        ],
        verificationPolicies=[
            {"id": " report ", "kind": "require-evidence", "label": " summary ", "evidenceType": "json"},
            {"id": "log", "kind": "require-evidence", "label": "log", "evidenceType": "  "},
        ],
    )
    resp = rest.post("/api/v1/harness-profiles", json=body)
    data = ok_data(resp)
    uuid.UUID(data["id"], version=4)
    assert_iso(data["createdAt"])
    assert data == {
        "id": data["id"],
        "displayName": "Reviewer",
        "version": "v1",
        "config": {"provider": "mock", "model": "default", "tools": ["shell", "git"], "command": []},
        "policies": {"timeoutMs": 60000, "retryLimit": 2, "budgetUsd": 1.5},
        "allowedEgress": [
            {"host": "api.example.com", "port": 443},
            {"host": "api.example.com", "port": 8443},
            {"host": "api.example.com"},
            {"host": "*.example.org"},
            {"host": "10.0.0.1", "port": 5432},
            {"host": "localhost"},
        ],
        "verificationPolicies": [
            {"id": "report", "kind": "require-evidence", "label": "summary", "evidenceType": "json"},
            {"id": "log", "kind": "require-evidence", "label": "log"},
        ],
        "createdAt": data["createdAt"],
    }
    assert_event(
        rest,
        resp,
        "harness-profile.created",
        {"harnessProfileId": data["id"], "version": "v1", "provider": "mock", "model": "default"},
    )
    listed = every_item(rest, "/api/v1/harness-profiles")
    assert data in listed


def test_profile_minimal_v2_and_zero_budget(rest: httpx.Client) -> None:
    data = create_profile(rest, version="v2", policies__budgetUsd=0)
    assert data["version"] == "v2"
    assert data["policies"] == {"timeoutMs": 60000, "retryLimit": 2, "budgetUsd": 0}
    assert (data["allowedEgress"], data["verificationPolicies"]) == ([], [])


def test_command_profile_keeps_argv_verbatim(rest: httpx.Client) -> None:
    # The session's server allows this interpreter (tests/conftest.py).
    argv = [sys.executable, " -c", "print('a b')"]
    data = create_profile(rest, config__provider="command", config__command=argv)
    assert data["config"] == {"provider": "command", "model": "default", "tools": ["shell"], "command": argv}


P = "harnessProfiles.create"
EGRESS_HOST = "must be a valid domain, wildcard domain, or IPv4 address."


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"displayName": DROP}, f"{P}.displayName must be a non-empty string."),
        ({"displayName": "  "}, f"{P}.displayName must be a non-empty string."),
        ({"version": DROP}, f"{P}.version must be 'v1' or 'v2'."),
        ({"version": "v3"}, f"{P}.version must be 'v1' or 'v2'."),
        ({"version": " v1"}, f"{P}.version must be 'v1' or 'v2'."),
        ({"config": DROP}, f"{P}.config must be an object."),
        ({"config__tools": DROP}, f"{P}.config.tools must include at least one tool."),
        ({"config__tools": []}, f"{P}.config.tools must include at least one tool."),
        ({"config__tools": ["a", " "]}, f"{P}.config.tools[1] must be a non-empty string."),
        ({"config__provider": DROP}, f"{P}.config.provider must be a non-empty string."),
        ({"config__provider": " "}, f"{P}.config.provider must be a non-empty string."),
        ({"config__model": DROP}, f"{P}.config.model must be a non-empty string."),
        ({"config__provider": "nope"}, f"{P}.config.provider must reference a configured provider. Received: nope."),
        ({"config__model": "gpt-9"}, f"{P}.config.model must match a configured model. Allowed: default."),
        (
            {"config__provider": "command"},
            f"{P}.config.command must be a non-empty array of strings for provider 'command'.",
        ),
        ({"config__command": ["echo"]}, f"{P}.config.command is only supported for provider 'command'."),
        (
            {"config__provider": "command", "config__command": ["echo", ""]},
            f"{P}.config.command[1] must be a non-empty string.",
        ),
        (
            {"config__provider": "command", "config__command": ["sh", "-c", "id"]},
            f"{P}.config.command[0] must be a program on the server's allow-list (ATHENA_COMMAND_ALLOW). Received: sh.",
        ),
        (
            {"config__provider": "command", "config__command": ["./python3"]},
            f"{P}.config.command[0] must be a program on the server's allow-list (ATHENA_COMMAND_ALLOW). "
            "Received: ./python3.",
        ),
        ({"policies": DROP}, f"{P}.policies must be an object."),
        ({"policies__timeoutMs": DROP}, f"{P}.policies.timeoutMs must be a positive integer."),
        ({"policies__timeoutMs": 0}, f"{P}.policies.timeoutMs must be a positive integer."),
        ({"policies__timeoutMs": -5}, f"{P}.policies.timeoutMs must be a positive integer."),
        ({"policies__retryLimit": 0}, f"{P}.policies.retryLimit must be a positive integer."),
        ({"policies__budgetUsd": -0.01}, f"{P}.policies.budgetUsd must be >= 0."),
        ({"policies__budgetUsd": "Infinity"}, f"{P}.policies.budgetUsd must be a finite number when provided."),
        ({"policies__timeoutMs": 1.5}, None),
        ({"allowedEgress": [{"host": " "}]}, f"{P}.allowedEgress[0].host must be a non-empty string."),
        ({"allowedEgress": [{"host": "a.com"}, {"host": "bad_host"}]}, f"{P}.allowedEgress[1].host {EGRESS_HOST}"),
        ({"allowedEgress": [{"host": "https://a.com"}]}, f"{P}.allowedEgress[0].host {EGRESS_HOST}"),
        ({"allowedEgress": [{"host": "*"}]}, f"{P}.allowedEgress[0].host {EGRESS_HOST}"),
        (
            {"allowedEgress": [{"host": "a.com", "port": 0}]},
            f"{P}.allowedEgress[0].port must be an integer between 1 and 65535.",
        ),
        (
            {"allowedEgress": [{"host": "a.com", "port": 65536}]},
            f"{P}.allowedEgress[0].port must be an integer between 1 and 65535.",
        ),
        (
            {"allowedEgress": [{"host": "A.com", "port": 443}, {"host": "a.com", "port": 443}]},
            f"{P}.allowedEgress contains duplicate destination 'a.com:443'.",
        ),
        (
            {"allowedEgress": [{"host": "a.com"}, {"host": "a.com "}]},
            f"{P}.allowedEgress contains duplicate destination 'a.com:*'.",
        ),
        (
            {"verificationPolicies": [{"kind": "require-evidence", "label": "x"}]},
            f"{P}.verificationPolicies[0].id must be a non-empty string.",
        ),
        (
            {
                "verificationPolicies": [
                    {"id": "v", "kind": "require-evidence", "label": "x"},
                    {"id": " v ", "kind": "require-evidence", "label": "y"},
                ]
            },
            f"{P}.verificationPolicies contains duplicate id 'v'.",
        ),
        (
            {"verificationPolicies": [{"id": "v", "label": "x"}]},
            f"{P}.verificationPolicies[0].kind must be a non-empty string.",
        ),
        (
            {"verificationPolicies": [{"id": "v", "kind": "require-tests", "label": "x"}]},
            f"{P}.verificationPolicies[0].kind is unsupported: require-tests.",
        ),
        (
            {"verificationPolicies": [{"id": "v", "kind": "require-evidence"}]},
            f"{P}.verificationPolicies[0].label must be a non-empty string.",
        ),
        (
            {"verificationPolicies": [{"id": "v", "kind": "require-evidence", "label": "x", "evidenceType": "xml"}]},
            f"{P}.verificationPolicies[0].evidenceType must be 'text', 'json', or 'binary'.",
        ),
        # The original checks egress rules and verification policies before everything else.
        ({"displayName": DROP, "allowedEgress": [{"host": "-x"}]}, f"{P}.allowedEgress[0].host {EGRESS_HOST}"),
        (
            {"version": "v9", "verificationPolicies": [{"id": "", "kind": "require-evidence", "label": "x"}]},
            f"{P}.verificationPolicies[0].id must be a non-empty string.",
        ),
        # Shape errors before the configuration checks.
        ({"config__provider": "nope", "policies": DROP}, f"{P}.policies must be an object."),
        (
            {"config__provider": "nope", "config__model": "zz"},
            f"{P}.config.provider must reference a configured provider. Received: nope.",
        ),
    ],
)
def test_profile_validation(rest: httpx.Client, changes: Json, message: str | None) -> None:
    resp = rest.post("/api/v1/harness-profiles", json=profile_body(**changes))
    config_error(resp, message)
    assert events_of_trace(rest, "harness-profile.created", resp.headers["x-trace-id"]) == []


def test_profile_over_grpc(channel: grpc.Channel) -> None:
    stub = harness_profiles_pb2_grpc.HarnessProfileServiceStub(channel)
    req = harness_profiles_pb2.CreateHarnessProfileRequest(
        display_name="grpc",
        version="v2",
        config=harness_profiles_pb2.HarnessConfig(provider="mock", model="default", tools=["t", "t"]),
        policies=harness_profiles_pb2.HarnessPolicies(timeout_ms=1000, retry_limit=1, budget_usd=0.5),
        allowed_egress=[harness_profiles_pb2.EgressRule(host="Example.COM", port=80)],
    )
    made = stub.CreateHarnessProfile(req).harness_profile
    assert (made.display_name, list(made.config.tools), made.allowed_egress[0].host) == ("grpc", ["t"], "example.com")
    assert made in grpc_every_item(stub.ListHarnessProfiles, harness_profiles_pb2.ListHarnessProfilesRequest)

    req.version = "v0"
    with pytest.raises(grpc.RpcError) as exc:
        stub.CreateHarnessProfile(req)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details() == "harnessProfiles.create.version must be 'v1' or 'v2'."
    info = error_info(exc.value)
    assert (info.reason, info.metadata["retryable"]) == ("CONFIG_ERROR", "false")


# -- run templates -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def profile_id(rest: httpx.Client) -> str:
    return str(create_profile(rest)["id"])


def test_template_create_shape(rest: httpx.Client, profile_id: str) -> None:
    resp = rest.post(
        "/api/v1/run-templates",
        json={
            "harnessProfileId": f" {profile_id} ",
            "directiveTemplate": "  Review {{ repo }} on {{branch}}, again {{ repo }}  ",
            "defaultParams": {"repo": " athena ", "branch": "main", "unused": "x"},
        },
    )
    data = ok_data(resp)
    uuid.UUID(data["id"], version=4)
    assert_iso(data["createdAt"])
    assert data == {
        "id": data["id"],
        "harnessProfileId": profile_id,
        "directiveTemplate": "Review {{ repo }} on {{branch}}, again {{ repo }}",
        "defaultParams": {"repo": "athena", "branch": "main", "unused": "x"},
        "createdAt": data["createdAt"],
    }
    assert_event(rest, resp, "run-template.created", {"runTemplateId": data["id"], "harnessProfileId": profile_id})
    assert data in every_item(rest, "/api/v1/run-templates")


def test_template_without_placeholders_may_have_no_defaults(rest: httpx.Client, profile_id: str) -> None:
    body = {"harnessProfileId": profile_id, "directiveTemplate": "Just do it {{ not-a-name }}", "defaultParams": {}}
    data = ok_data(rest.post("/api/v1/run-templates", json=body))
    assert data["defaultParams"] == {}


T = "runTemplates.create"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"directiveTemplate": "x", "defaultParams": {}}, f"{T}.harnessProfileId must be a non-empty string."),
        ({"harnessProfileId": " ", "directiveTemplate": "x"}, f"{T}.harnessProfileId must be a non-empty string."),
        ({"harnessProfileId": "PID", "defaultParams": {}}, f"{T}.directiveTemplate must be a non-empty string."),
        ({"harnessProfileId": "PID", "directiveTemplate": "  "}, f"{T}.directiveTemplate must be a non-empty string."),
        (
            {"harnessProfileId": "PID", "directiveTemplate": "{{ a }}", "defaultParams": {"a": " "}},
            f"{T}.defaultParams.a must be a non-empty string.",
        ),
        (
            {"harnessProfileId": "PID", "directiveTemplate": "x", "defaultParams": {" ": "v"}},
            f"{T}.defaultParams keys must be non-empty strings.",
        ),
        (
            {
                "harnessProfileId": "PID",
                "directiveTemplate": "{{ repo }} {{branch}} {{ x }}",
                "defaultParams": {"x": "1"},
            },
            f"{T}.defaultParams is missing values for placeholders: branch, repo.",
        ),
        (
            {"harnessProfileId": "no-such-profile", "directiveTemplate": "x", "defaultParams": {}},
            f"{T}.harnessProfileId must reference an existing harness profile. Received: no-such-profile.",
        ),
        # An unknown profile is reported before missing placeholders, as the original.
        (
            {"harnessProfileId": "no-such-profile", "directiveTemplate": "{{ a }}", "defaultParams": {}},
            f"{T}.harnessProfileId must reference an existing harness profile. Received: no-such-profile.",
        ),
        ({"harnessProfileId": "PID", "directiveTemplate": "x", "defaultParams": {"a": 1}}, None),
        ({"harnessProfileId": "PID", "directiveTemplate": "x", "defaultParams": "a=1"}, None),
    ],
)
def test_template_validation(rest: httpx.Client, profile_id: str, body: Json, message: str | None) -> None:
    if body.get("harnessProfileId") == "PID":
        body = {**body, "harnessProfileId": profile_id}
    resp = rest.post("/api/v1/run-templates", json=body)
    config_error(resp, message)
    assert events_of_trace(rest, "run-template.created", resp.headers["x-trace-id"]) == []


def test_template_over_grpc(channel: grpc.Channel, profile_id: str) -> None:
    stub = run_templates_pb2_grpc.RunTemplateServiceStub(channel)
    made = stub.CreateRunTemplate(
        run_templates_pb2.CreateRunTemplateRequest(
            harness_profile_id=profile_id, directive_template="Hi {{ who }}", default_params={"who": "you"}
        )
    ).run_template
    assert (made.harness_profile_id, made.directive_template, dict(made.default_params)) == (
        profile_id,
        "Hi {{ who }}",
        {"who": "you"},
    )
    assert made in grpc_every_item(stub.ListRunTemplates, run_templates_pb2.ListRunTemplatesRequest)
    with pytest.raises(grpc.RpcError) as exc:
        stub.CreateRunTemplate(
            run_templates_pb2.CreateRunTemplateRequest(harness_profile_id=profile_id, directive_template="{{ a }}")
        )
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details() == "runTemplates.create.defaultParams is missing values for placeholders: a."


# -- pages, on a server of their own -------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with serving(tmp_path_factory.mktemp("catalog")) as served:
        yield served.rest


Maker = Callable[[httpx.Client, int], Json]


def _make_directive(client: httpx.Client, i: int) -> Json:
    return create_directive(client, f"directive {i}")


def _make_profile(client: httpx.Client, i: int) -> Json:
    return create_profile(client, displayName=f"profile {i}")


def _make_template(client: httpx.Client, i: int) -> Json:
    profiles = ok_data(client.get("/api/v1/harness-profiles", params={"limit": 1}))["items"]
    pid = profiles[0]["id"] if profiles else create_profile(client)["id"]
    return create_template(client, pid, f"Template {i}: {{{{ x }}}}", x=str(i))


KINDS: list[tuple[str, str, Maker]] = [
    ("/api/v1/directives", "directives", _make_directive),
    ("/api/v1/harness-profiles", "harnessProfiles", _make_profile),
    ("/api/v1/run-templates", "runTemplates", _make_template),
]


def _page(client: httpx.Client, path: str, **params: Any) -> Json:
    data: Json = ok_data(client.get(path, params=params))
    assert set(data) <= {"items", "nextCursor"}
    return data


@pytest.mark.parametrize(("path", "context", "make"), KINDS, ids=[k[1] for k in KINDS])
def test_keyset_pages_have_no_duplicates_or_gaps(fresh: httpx.Client, path: str, context: str, make: Maker) -> None:
    before = every_item(fresh, path)
    made = [make(fresh, i) for i in range(12)]
    newest_first = [m["id"] for m in reversed(made)]

    first = _page(fresh, path, limit=5)
    # Created between pages: newer than the cursor, so it never shifts what the next pages hold.
    late = make(fresh, 99)
    seen = [item["id"] for item in first["items"]]
    cursor: str | None = first["nextCursor"]
    pages = 1
    while cursor is not None:
        data = _page(fresh, path, limit=5, cursor=cursor)
        pages += 1
        seen.extend(item["id"] for item in data["items"])
        cursor = data.get("nextCursor")
        assert len(data["items"]) == 5 or cursor is None
    assert seen == newest_first + [b["id"] for b in before]
    assert pages == -(-(12 + len(before)) // 5)
    everything = _page(fresh, path, limit=500)["items"]
    assert [i["id"] for i in everything] == [late["id"], *seen]
    created = [i["createdAt"] for i in everything]
    assert created == sorted(created, reverse=True)


def _keyset(kind: str, seq: Any) -> str:
    raw = json.dumps({"kind": kind, "seq": seq}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(("path", "context", "make"), KINDS, ids=[k[1] for k in KINDS])
def test_invalid_cursors(fresh: httpx.Client, path: str, context: str, make: Maker) -> None:
    other = "harness-profiles" if context == "directives" else "directives"
    bad = ["!!!", _b64("not json"), _b64('{"kind":"sessions"}'), _b64("[1]"), _keyset(other, 3), _keyset(context, "x")]
    for cursor in bad:
        config_error(fresh.get(path, params={"cursor": cursor}), f"{context}.list.cursor is invalid.")


def test_cursor_is_the_keyset_form(fresh: httpx.Client) -> None:
    for _ in range(2):
        create_directive(fresh, "cursor form")
    data = _page(fresh, "/api/v1/directives", limit=1)
    raw = data["nextCursor"]
    assert "=" not in raw
    decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    assert set(decoded) == {"kind", "seq"} and decoded["kind"] == "directives"


def test_limits_default_and_clamp(fresh: httpx.Client) -> None:
    total = len(every_item(fresh, "/api/v1/directives"))
    for i in range(max(0, 55 - total)):
        create_directive(fresh, f"bulk {i}")
    total = max(total, 55)
    default = _page(fresh, "/api/v1/directives")
    assert len(default["items"]) == 50 and "nextCursor" in default
    assert len(_page(fresh, "/api/v1/directives", limit=0)["items"]) == 1
    assert len(_page(fresh, "/api/v1/directives", limit=-3)["items"]) == 1
    # Not a number is an error, not "no limit" (the original's parseInt reading turned typos into defaults).
    for junk in ("abc", "null", "1.5", "12abc"):
        config_error(fresh.get("/api/v1/directives", params={"limit": junk}), "limit must be an integer.")
    everything = _page(fresh, "/api/v1/directives", limit=1000)
    assert len(everything["items"]) == total and "nextCursor" not in everything
    exact = _page(fresh, "/api/v1/directives", limit=total)
    assert len(exact["items"]) == total and "nextCursor" not in exact


# -- runs that reference the catalog -------------------------------------------------------------------


def test_run_from_a_stored_directive(rest: httpx.Client) -> None:
    directive = create_directive(rest, "summarise the day")
    data = ok_data(rest.post("/api/v1/runs", json={"sessionId": new_session(), "directiveId": directive["id"]}))
    assert data["output"] == "Echo: user: summarise the day"
    assert data["directiveId"] == directive["id"]


def test_run_with_a_profile_snapshots_it(rest: httpx.Client) -> None:
    profile = create_profile(
        rest,
        verificationPolicies=[{"id": "v", "kind": "require-evidence", "label": "stderr", "evidenceType": "text"}],
    )
    body = {"sessionId": new_session(), "input": "hi", "harnessProfileId": profile["id"]}
    data = ok_data(rest.post("/api/v1/runs", json=body))
    assert data["harnessProfileId"] == profile["id"] and data["harnessProfileSnapshot"] == profile
    # The mock leaves no evidence, so the profile's require-evidence policy fails.
    assert data["verificationStatus"] == "verification-failed"
    assert data["verificationFailures"][0]["message"] == "Required evidence was not found for label 'stderr'."


def test_template_renders_and_runs(rest: httpx.Client, profile_id: str) -> None:
    template = create_template(rest, profile_id, "Review {{ repo }} at {{branch}}", repo="athena", branch="main")
    data = ok_data(rest.post(f"/api/v1/templates/{template['id']}/run", json={"params": {"branch": "dev"}}))
    assert data["output"] == "Echo: user: Review athena at dev"
    assert data["sessionId"].startswith(f"template-{template['id']}-")
    assert data["template"] == {
        "id": template["id"],
        "harnessProfileId": profile_id,
        "effectiveParams": {"repo": "athena", "branch": "dev"},
    }
    run = ok_data(rest.get(f"/api/v1/runs/{data['runId']}"))
    assert run["metadata"]["templateRun"] == "true" and run["metadata"]["templateId"] == template["id"]
    config_error(rest.post("/api/v1/templates/nope/run", json={}))
    config_error(rest.post(f"/api/v1/templates/{template['id']}/run", json={"params": {"repo": " "}}))


def test_template_runs_over_grpc(channel: grpc.Channel, profile_id: str) -> None:
    templates = run_templates_pb2_grpc.RunTemplateServiceStub(channel)
    template = templates.CreateRunTemplate(
        run_templates_pb2.CreateRunTemplateRequest(
            harness_profile_id=profile_id, directive_template="say {{w}}", default_params={"w": "hi"}
        )
    ).run_template
    result = templates.RunRunTemplate(run_templates_pb2.RunRunTemplateRequest(id=template.id)).result
    assert result.output == "Echo: user: say hi"
