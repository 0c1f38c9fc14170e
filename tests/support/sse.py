"""Reading a server-sent-event stream the way a browser does: frames of `id:` / `event:` / `data:` lines
separated by a blank line; comment lines (heartbeats) are skipped."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Frame:
    id: str | None
    event: str | None
    data: Any  # the parsed JSON envelope


def read_frames(
    url: str,
    until: Callable[[list[Frame]], bool],
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    on_first: Callable[[], None] | None = None,
    timeout: float = 60.0,
) -> list[Frame]:
    """Data frames of the stream at `url`, read until `until(frames)` holds; `on_first` runs once the first
    frame arrived (the stream is open). Fails after `timeout` seconds (that bounds a hang only: a stream with
    a heartbeat checks the deadline on every comment line)."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", url, params=params, headers=headers, timeout=httpx.Timeout(10, read=timeout)) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        current: dict[str, str] = {}
        for line in resp.iter_lines():
            if time.monotonic() > deadline:
                raise AssertionError(f"stream {url} still open after {timeout:g}s with {len(frames)} frames")
            if line.startswith(":"):
                continue
            if line == "":
                if "data" in current:
                    frames.append(Frame(current.get("id"), current.get("event"), json.loads(current["data"])))
                    if len(frames) == 1 and on_first is not None:
                        on_first()
                    if until(frames):
                        return frames
                current = {}
                continue
            key, _, value = line.partition(":")
            current[key] = value[1:] if value.startswith(" ") else value
    raise AssertionError(f"stream {url} ended after {len(frames)} frames")
