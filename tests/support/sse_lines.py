"""Reading a server-sent-events stream line by line, for tests that assert on the raw lines (the `retry:`
line, `: heartbeat` comments) or must act once the stream is open, before any frame arrives.
(`tests.support.sse.read_frames` reads frames only; the lead may merge the two.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

#: Bounds a stream that never delivers what the test waits for (a hang), never a duration the test asserts.
READ_TIMEOUT_S = 60.0


def read_sse(
    url: str,
    params: dict[str, Any],
    headers: dict[str, str] | None = None,
    frames: int = 1,
    *,
    until_heartbeat: bool = False,
    on_open: Callable[[], Any] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Read until `frames` data frames arrived (or, with `until_heartbeat`, the first `: heartbeat` comment);
    returns the frames and the raw lines. `on_open` runs once the stream is open: the response headers
    arrived (the gateway sends them once the server fixed the stream's starting point) and the first
    line was read, so whatever it causes is delivered live."""
    out: list[dict[str, Any]] = []
    lines: list[str] = []
    timeout = httpx.Timeout(10, read=READ_TIMEOUT_S)
    with httpx.stream("GET", url, params=params, headers=headers, timeout=timeout) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["cache-control"] == "no-cache"
        current: dict[str, Any] = {}
        for line in resp.iter_lines():
            lines.append(line)
            if on_open is not None:
                on_open()
                on_open = None
            if line == "":
                if "data" in current:
                    out.append(current)
                current = {}
                if len(out) >= frames:
                    break
                continue
            if line.startswith(":"):
                if until_heartbeat and line == ": heartbeat":
                    break
                continue
            key, _, value = line.partition(": ")
            current[key] = json.loads(value) if key == "data" else value
    return out, lines
