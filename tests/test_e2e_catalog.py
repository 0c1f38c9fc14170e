"""Directives, harness profiles and run templates end to end: creation with the original's validation,
cursor pages, events, and runs that reference them (REST and gRPC)."""

from __future__ import annotations

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
from tests.shapes import assert_iso, error_of, new_session, ok_data

PROFILE: dict[str, Any] = {
    "displayName": "Reviewer",
    "version": "v1",
    "config": {"provider": "mock", "model": "default", "tools": ["read", "read", "write"]},
    "policies": {"timeoutMs": 60000, "retryLimit": 2, "budgetUsd": 1.5},
}


def make_profile(rest: httpx.Client, **overrides: Any) -> dict[str, Any]:
    return ok_data(rest.post("/api/v1/harness-profiles", json={**PROFILE, **overrides}))  # type: ignore[no-any-return]


def test_directive_create_list_pages_and_event(rest: httpx.Client) -> None:
    created = [
        ok_data(rest.post("/api/v1/directives", json={"input": f"task {i}", "metadata": {"team": " core "}}))
        for i in range(3)
    ]
    first = created[0]
    assert set(first) == {"id", "input", "contextRefs", "metadata", "createdAt"}
    assert first["metadata"] == {"team": "core"} and first["contextRefs"] == []
    assert_iso(first["createdAt"])
    seen: list[str] = []
    cursor = None
    for _ in range(1000):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = ok_data(rest.get("/api/v1/directives", params=params))
        seen += [d["id"] for d in page["items"]]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert len(seen) == len(set(seen))
    mine = [d["id"] for d in created]
    # Newest first.
    assert [i for i in seen if i in mine] == mine[::-1]
    events = ok_data(rest.get("/api/v1/events", params={"types": "directive.created", "limit": 500}))["events"]
    payload = next(e["payload"] for e in events if e["payload"]["directiveId"] == first["id"])
    assert payload == {"directiveId": first["id"], "hasContextRefs": False, "hasMetadata": True}
    error_of(rest.post("/api/v1/directives", json={"input": "  "}), 400, "CONFIG_ERROR")
    error_of(rest.post("/api/v1/directives", json={"input": "x", "contextRefs": [""]}), 400, "CONFIG_ERROR")
    error_of(rest.get("/api/v1/directives", params={"cursor": "nope!"}), 400, "CONFIG_ERROR")


def test_run_from_a_stored_directive(rest: httpx.Client) -> None:
    directive = ok_data(rest.post("/api/v1/directives", json={"input": "summarise the day"}))
    data = ok_data(rest.post("/api/v1/runs", json={"sessionId": new_session(), "directiveId": directive["id"]}))
    assert data["output"] == "Echo: user: summarise the day"
    assert data["directiveId"] == directive["id"]


def test_harness_profile_shape_and_runs_with_it(rest: httpx.Client) -> None:
    profile = make_profile(
        rest,
        allowedEgress=[{"host": "API.Example.com", "port": 443}, {"host": "*.example.org"}],
        verificationPolicies=[{"id": "v", "kind": "require-evidence", "label": "stderr", "evidenceType": "text"}],
    )
    assert profile["config"]["tools"] == ["read", "write"]
    assert profile["allowedEgress"] == [{"host": "api.example.com", "port": 443}, {"host": "*.example.org"}]
    assert profile["policies"] == {"timeoutMs": 60000, "retryLimit": 2, "budgetUsd": 1.5}
    listed = ok_data(rest.get("/api/v1/harness-profiles", params={"limit": 500}))["items"]
    assert profile in listed
    data = ok_data(
        rest.post("/api/v1/runs", json={"sessionId": new_session(), "input": "hi", "harnessProfileId": profile["id"]})
    )
    assert data["harnessProfileId"] == profile["id"] and data["harnessProfileSnapshot"] == profile
    # The mock leaves no evidence, so the profile's require-evidence policy fails.
    assert data["verificationStatus"] == "verification-failed"
    assert data["verificationFailures"][0]["message"] == "Required evidence was not found for label 'stderr'."


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"displayName": " "}, "harnessProfiles.create.displayName must be a non-empty string."),
        ({"version": "v3"}, "harnessProfiles.create.version must be 'v1' or 'v2'."),
        ({"config": {"provider": "mock", "model": "default", "tools": []}}, "config.tools must be a non-empty"),
        ({"config": {"provider": "nope", "model": "default", "tools": ["t"]}}, "config.provider must be a registered"),
        (
            {"config": {"provider": "mock", "model": "gpt-9", "tools": ["t"]}},
            "harnessProfiles.create.config.model must match a configured model. Allowed: default.",
        ),
        ({"config": {"provider": "command", "model": "default", "tools": ["t"]}}, "config.command must name"),
        ({"policies": {"timeoutMs": 0, "retryLimit": 1, "budgetUsd": 0}}, "policies.timeoutMs must be a positive"),
        ({"policies": {"timeoutMs": 1, "retryLimit": 0, "budgetUsd": 0}}, "policies.retryLimit must be a positive"),
        ({"policies": {"timeoutMs": 1, "retryLimit": 1, "budgetUsd": -1}}, "policies.budgetUsd must be a finite"),
        ({"policies": None}, "harnessProfiles.create.policies is required."),
        ({"allowedEgress": [{"host": "bad host"}]}, "allowedEgress[0].host must be a domain"),
        ({"allowedEgress": [{"host": "a.com", "port": 70000}]}, "allowedEgress[0].port must be an integer"),
        ({"allowedEgress": [{"host": "a.com"}, {"host": "A.com"}]}, "duplicate rule: a.com"),
        (
            {"verificationPolicies": [{"id": "x", "kind": "require-evidence", "label": "l", "evidenceType": "xml"}]},
            "evidenceType must be one of: text, json, binary.",
        ),
        (
            {"verificationPolicies": [{"id": "x", "kind": "require-evidence", "label": "l"}] * 2},
            "ids must be unique. Duplicate: x.",
        ),
    ],
)
def test_harness_profile_validation(rest: httpx.Client, overrides: dict[str, Any], message: str) -> None:
    body = {**PROFILE, **overrides}
    if overrides.get("policies", 0) is None:
        del body["policies"]
    err = error_of(rest.post("/api/v1/harness-profiles", json=body), 400, "CONFIG_ERROR")
    assert message in err["message"]


def test_run_templates_render_and_run(rest: httpx.Client) -> None:
    profile = make_profile(rest)
    body = {
        "harnessProfileId": profile["id"],
        "directiveTemplate": "Review {{ repo }} at {{branch}}",
        "defaultParams": {"repo": "athena", "branch": "main"},
    }
    template = ok_data(rest.post("/api/v1/run-templates", json=body))
    assert {k: template[k] for k in body} == body
    assert template in ok_data(rest.get("/api/v1/run-templates", params={"limit": 500}))["items"]
    data = ok_data(rest.post(f"/api/v1/templates/{template['id']}/run", json={"params": {"branch": "dev"}}))
    assert data["output"] == "Echo: user: Review athena at dev"
    assert data["sessionId"].startswith(f"template-{template['id']}-")
    assert data["template"] == {
        "id": template["id"],
        "harnessProfileId": profile["id"],
        "effectiveParams": {"repo": "athena", "branch": "dev"},
    }
    run = ok_data(rest.get(f"/api/v1/runs/{data['runId']}"))
    assert run["metadata"]["templateRun"] == "true" and run["metadata"]["templateId"] == template["id"]
    missing = error_of(rest.post("/api/v1/run-templates", json={**body, "defaultParams": {}}), 400, "CONFIG_ERROR")
    assert missing["message"] == "runTemplates.create.defaultParams is missing values for placeholders: branch, repo."
    unknown = error_of(
        rest.post("/api/v1/run-templates", json={**body, "harnessProfileId": "nope"}), 400, "CONFIG_ERROR"
    )
    assert unknown["message"] == (
        "runTemplates.create.harnessProfileId must reference an existing harness profile. Received: nope."
    )
    error_of(rest.post("/api/v1/templates/nope/run", json={}), 400, "CONFIG_ERROR")
    error_of(rest.post(f"/api/v1/templates/{template['id']}/run", json={"params": {"repo": " "}}), 400, "CONFIG_ERROR")


def test_catalog_over_grpc(channel: grpc.Channel) -> None:
    directive = (
        directives_pb2_grpc.DirectiveServiceStub(channel)
        .CreateDirective(directives_pb2.CreateDirectiveRequest(input="g", context_refs=["doc:1"]))
        .directive
    )
    assert directive.context_refs == ["doc:1"]
    profiles = harness_profiles_pb2_grpc.HarnessProfileServiceStub(channel)
    profile = profiles.CreateHarnessProfile(
        harness_profiles_pb2.CreateHarnessProfileRequest(
            display_name="g",
            version="v2",
            config=harness_profiles_pb2.HarnessConfig(provider="mock", model="default", tools=["t"]),
            policies=harness_profiles_pb2.HarnessPolicies(timeout_ms=1, retry_limit=1, budget_usd=0),
        )
    ).harness_profile
    templates = run_templates_pb2_grpc.RunTemplateServiceStub(channel)
    template = templates.CreateRunTemplate(
        run_templates_pb2.CreateRunTemplateRequest(
            harness_profile_id=profile.id, directive_template="say {{w}}", default_params={"w": "hi"}
        )
    ).run_template
    result = templates.RunRunTemplate(run_templates_pb2.RunRunTemplateRequest(id=template.id)).result
    assert result.output == "Echo: user: say hi"
    with pytest.raises(grpc.RpcError) as info:
        profiles.CreateHarnessProfile(harness_profiles_pb2.CreateHarnessProfileRequest(display_name="x"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
