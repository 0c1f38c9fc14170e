"""The REST gateway's guards against a real `athena api serve`: foreign browser pages (Host allow-list,
Origin check, JSON-only bodies, CORS only when configured), strict parameters and bodies, and bounded
forwarded headers, each answered with the error envelope, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.pages import every_item
from tests.support.processes import Served, serving
from tests.support.shapes import error_of, new_session, ok_data, unique

PROFILE: dict[str, Any] = {
    "displayName": "Reviewer",
    "version": "v1",
    "config": {"provider": "mock", "model": "default", "tools": ["shell"]},
    "policies": {"timeoutMs": 60000, "retryLimit": 2, "budgetUsd": 1.5},
}
FOREIGN = "Origin {!r} may not change state here: only this server's own origin and ATHENA_CORS_ORIGINS may."


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server with the default settings: loopback hosts, no CORS."""
    with serving(tmp_path_factory.mktemp("guard")) as served:
        yield served


@pytest.fixture
def client(guarded: Served) -> httpx.Client:
    return guarded.rest


@pytest.fixture
def port(guarded: Served) -> int:
    assert guarded.process.rest_port is not None
    return guarded.process.rest_port


def _profiles(client: httpx.Client) -> list[dict[str, Any]]:
    return every_item(client, "/api/v1/harness-profiles")


def _error(resp: httpx.Response, status: int, code: str, message: str) -> None:
    assert error_of(resp, status, code)["message"] == message


# -- a foreign page ---------------------------------------------------------------------------------------


def test_the_issues_csrf_reproduction_is_refused(client: httpx.Client, port: int) -> None:
    profile = {**PROFILE, "displayName": unique("csrf")}  # the page's profile, told apart from any other

    def named() -> list[str]:
        return [p["id"] for p in _profiles(client) if p["displayName"] == profile["displayName"]]

    page = {"content-type": "text/plain", "origin": "http://evil.example", "host": f"evil.example:{port}"}
    resp = client.post("/api/v1/harness-profiles", content=json.dumps(profile), headers=page)
    _error(resp, 400, "HOST_NOT_ALLOWED", f"Host 'evil.example:{port}' is not allowed (ATHENA_ALLOWED_HOSTS).")

    # Each guard also stops the page on its own.
    local = {**page, "host": f"127.0.0.1:{port}"}  # the page reached the real host name
    resp = client.post("/api/v1/harness-profiles", content=json.dumps(profile), headers=local)
    _error(resp, 403, "ORIGIN_NOT_ALLOWED", FOREIGN.format("http://evil.example"))
    no_origin = {"content-type": "text/plain"}
    resp = client.post("/api/v1/harness-profiles", content=json.dumps(profile), headers=no_origin)
    _error(resp, 415, "UNSUPPORTED_MEDIA_TYPE", "request.body must be application/json (Content-Type: 'text/plain').")
    # A bodiless `fetch(url, {method: "POST", mode: "no-cors"})` is not stopped by the media type.
    resp = client.post("/api/v1/schedules/tick", headers={"origin": "http://evil.example"})
    _error(resp, 403, "ORIGIN_NOT_ALLOWED", FOREIGN.format("http://evil.example"))
    resp = client.post("/api/v1/harness-profiles", json=profile, headers={"origin": "null"})
    _error(resp, 403, "ORIGIN_NOT_ALLOWED", FOREIGN.format("null"))

    assert named() == []  # nothing was created

    # The server's own page (same scheme, host and port) may.
    own = {"origin": f"http://127.0.0.1:{port}"}
    created = ok_data(client.post("/api/v1/harness-profiles", json=profile, headers=own))
    assert named() == [created["id"]]


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/capabilities", "/openapi.json", "/docs"])
def test_hosts_are_the_loopback_names_by_default(client: httpx.Client, port: int, path: str) -> None:
    for host in [f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST"]:
        assert client.get(path, headers={"host": host}).status_code == 200, host
    for host in [f"evil.example:{port}", f"localhost.evil.example:{port}", f"127.0.0.1.nip.io:{port}"]:
        message = f"Host {host!r} is not allowed (ATHENA_ALLOWED_HOSTS)."
        _error(client.get(path, headers={"host": host}), 400, "HOST_NOT_ALLOWED", message)


def test_cors_is_off_by_default(client: httpx.Client) -> None:
    preflight = {"origin": "https://app.example", "access-control-request-method": "POST"}
    _error(client.options("/api/v1/runs", headers=preflight), 404, "NOT_FOUND", "Not found: OPTIONS /api/v1/runs")
    resp = client.get("/api/v1/capabilities", headers={"origin": "https://app.example"})
    assert resp.status_code == 200 and "access-control-allow-origin" not in resp.headers


# -- content type ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "shown"),
    [("application/x-www-form-urlencoded", "'application/x-www-form-urlencoded'"), (None, "none")],
)
def test_bodies_must_be_json(client: httpx.Client, content_type: str | None, shown: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    body = json.dumps({"sessionId": new_session(), "input": "hi"}).encode()
    resp = client.post("/api/v1/runs", content=body, headers=headers)
    _error(resp, 415, "UNSUPPORTED_MEDIA_TYPE", f"request.body must be application/json (Content-Type: {shown}).")


def test_json_media_types_and_empty_bodies_are_accepted(client: httpx.Client) -> None:
    for content_type in ["application/json; charset=utf-8", "application/vnd.athena+json"]:
        body = json.dumps({"sessionId": new_session(), "input": "hi"}).encode()
        assert ok_data(client.post("/api/v1/runs", content=body, headers={"content-type": content_type}))["output"]
    # `curl -X POST` without `-d`: no body, any or no content type.
    ok_data(client.post("/api/v1/schedules/tick"))
    ok_data(client.post("/api/v1/schedules/tick", headers={"content-type": "text/plain"}))


# -- strict parameters and bodies --------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["abc", "null", "1.5", "12abc", ""])
def test_limit_must_be_an_integer(client: httpx.Client, limit: str) -> None:
    resp = client.get("/api/v1/harness-profiles", params={"limit": limit})
    _error(resp, 400, "CONFIG_ERROR", "limit must be an integer.")


def test_limits_out_of_range_are_clamped(client: httpx.Client) -> None:
    for _ in range(2):
        ok_data(client.post("/api/v1/harness-profiles", json=PROFILE))
    total = len(_profiles(client))
    for limit, count in [("-1", 1), ("0", 1), (" 2 ", 2), ("99999999999999999999", min(total, 500))]:
        assert len(ok_data(client.get("/api/v1/harness-profiles", params={"limit": limit}))["items"]) == count
    resp = client.get("/api/v1/harness-profiles", params=[("limit", "1"), ("limit", "2")])
    _error(resp, 400, "CONFIG_ERROR", "limit must be given once.")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"sessionId": "s1", "input": "a", "input": "b"}', "request.body has a duplicate key 'input'."),
        (b'{"sessionId": "s1", "metadata": {"k": "1", "k": "2"}}', "request.body has a duplicate key 'k'."),
        (b'{"sessionId": "s1", "input": "a", "x": NaN}', "request.body must not contain NaN (not a JSON number)."),
        (b'{"sessionId": "s1", "x": 1e400}', "request.body has a number out of range: '1e400'."),
    ],
)
def test_json_bodies_are_strict(client: httpx.Client, body: bytes, message: str) -> None:
    resp = client.post("/api/v1/runs", content=body, headers={"content-type": "application/json"})
    _error(resp, 400, "CONFIG_ERROR", message)


def test_null_means_absent(client: httpx.Client) -> None:
    data = ok_data(client.post("/api/v1/runs", json={"sessionId": new_session(), "input": "hi", "provider": None}))
    assert data["provider"] == "mock"  # the default, as if `provider` were not sent


# -- forwarded headers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "limit"),
    [("authorization", 4096), ("idempotency-key", 255), ("x-athena-api-token", 256), ("traceparent", 512)],
)
@pytest.mark.parametrize("size", [4 * 1024 + 1, 8 * 1024, 20 * 1024])
def test_long_forwarded_headers_are_a_clear_400(client: httpx.Client, name: str, limit: int, size: int) -> None:
    body = {"sessionId": new_session(), "input": "hi"}
    resp = client.post("/api/v1/runs", json=body, headers={name: "a" * size})
    _error(resp, 400, "CONFIG_ERROR", f"header '{name}' must be at most {limit} characters.")


def test_headers_up_to_64_kib_get_the_envelope(client: httpx.Client) -> None:
    resp = client.get("/api/v1/capabilities", headers={"authorization": "a" * 64 * 1024})
    _error(resp, 400, "CONFIG_ERROR", "header 'authorization' must be at most 4096 characters.")
    resp = client.get("/api/v1/capabilities", headers={"x-unrelated": "a" * 64 * 1024})
    assert resp.status_code == 200  # not forwarded, so not bounded beyond the server's header limit


def test_unprintable_or_repeated_forwarded_headers_are_refused(client: httpx.Client) -> None:
    resp = client.get("/api/v1/capabilities", headers={"authorization": b"Bearer t\xe9st"})
    _error(resp, 400, "CONFIG_ERROR", "header 'authorization' must be printable ASCII.")
    resp = client.get("/api/v1/capabilities", headers=[("idempotency-key", "a"), ("idempotency-key", "b")])
    _error(resp, 400, "CONFIG_ERROR", "header 'idempotency-key' must be sent once.")


# -- configured hosts and CORS -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    env = {
        # 127.0.0.1 stays listed: the test harness polls readiness through it.
        "ATHENA_ALLOWED_HOSTS": "api.example.com, *.corp.example, 127.0.0.1",
        "ATHENA_CORS_ORIGINS": "https://app.example",
    }
    with serving(tmp_path_factory.mktemp("guard-configured"), env=env) as served:
        yield served.rest


def test_configured_hosts_replace_the_loopback_names(configured: httpx.Client) -> None:
    for host in ["api.example.com", "api.example.com:8787", "build.corp.example"]:
        assert configured.get("/api/v1/health", headers={"host": host}).status_code == 200, host
    for host in ["localhost", "corp.example", "evil.example"]:
        resp = configured.get("/api/v1/health", headers={"host": host})
        _error(resp, 400, "HOST_NOT_ALLOWED", f"Host {host!r} is not allowed (ATHENA_ALLOWED_HOSTS).")


def test_configured_origins_get_cors_and_may_change_state(configured: httpx.Client) -> None:
    preflight = {
        "origin": "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, authorization, idempotency-key",
    }
    resp = configured.options("/api/v1/runs", headers=preflight)
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in resp.headers["access-control-allow-methods"]
    body = {"sessionId": new_session(), "input": "hi"}
    resp = configured.post("/api/v1/runs", json=body, headers={"origin": "https://app.example"})
    assert ok_data(resp)["output"] == "Echo: user: hi"
    assert resp.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-trace-id" in resp.headers["access-control-expose-headers"]
    resp = configured.post("/api/v1/runs", json=body, headers={"origin": "https://other.example"})
    _error(resp, 403, "ORIGIN_NOT_ALLOWED", FOREIGN.format("https://other.example"))


def test_the_configured_identity_header_is_forwarded_under_its_name(tmp_path: Path) -> None:
    env = {
        "ATHENA_AUTH_ENABLED": "true",
        "ATHENA_AUTH_IDENTITY_HEADER": "X-User",
        "ATHENA_AUTH_IDENTITY_ROLE_MAP": "alice:Viewer",
    }
    with serving(tmp_path, env=env) as served:
        c = served.rest
        assert ok_data(c.get("/api/v1/capabilities", headers={"x-user": "alice"}))["providers"]
        error_of(c.get("/api/v1/capabilities", headers={"x-athena-identity": "alice"}), 401, "AUTH_IDENTITY_MISSING")
        resp = c.get("/api/v1/capabilities", headers={"x-user": "a" * 257})
        _error(resp, 400, "CONFIG_ERROR", "header 'x-user' must be at most 256 characters.")
        schemes = c.get("/openapi.json").json()["components"]["securitySchemes"]
        assert schemes["identityHeader"]["name"] == "x-user"
