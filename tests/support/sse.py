"""Reading a server-sent-events stream the way a browser does: frames of `id:` / `event:` / `data:` lines
ended by a blank line; comment lines (`: heartbeat`) carry no frame. `read_frames` reads frames until a
condition holds; `read_sse` also returns the raw lines, for tests that assert on them."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

#: Bounds a stream that never delivers what the test waits for (a hang), never a duration the test asserts.
READ_TIMEOUT_S = 60.0


@dataclass
class Frame:
    id: str | None
    event: str | None
    data: Any  # the parsed JSON envelope


@contextlib.contextmanager
def _lines(url: str, params: dict[str, Any] | None, headers: dict[str, str] | None, timeout: float) -> Iterator[Any]:
    """The stream's lines, once the response proved to be an SSE stream."""
    with httpx.stream("GET", url, params=params, headers=headers, timeout=httpx.Timeout(10, read=timeout)) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["cache-control"] == "no-cache"
        yield resp.iter_lines()


class _Parser:
    """Turns lines into frames: `feed(line)` returns the frame a blank line completes, else None."""

    def __init__(self) -> None:
        self.current: dict[str, str] = {}

    def feed(self, line: str) -> Frame | None:
        if line.startswith(":"):
            return None
        if line == "":
            fields, self.current = self.current, {}
            return (
                Frame(fields.get("id"), fields.get("event"), json.loads(fields["data"])) if "data" in fields else None
            )
        key, _, value = line.partition(":")
        self.current[key] = value[1:] if value.startswith(" ") else value
        return None


def read_frames(
    url: str,
    until: Callable[[list[Frame]], bool],
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    on_first: Callable[[], None] | None = None,
    timeout: float = READ_TIMEOUT_S,
) -> list[Frame]:
    """Data frames of the stream at `url`, read until `until(frames)` holds; `on_first` runs once the first
    frame arrived (the stream is open). Fails after `timeout` seconds (that bounds a hang only: a stream with
    a heartbeat checks the deadline on every comment line)."""
    frames: list[Frame] = []
    parser = _Parser()
    deadline = time.monotonic() + timeout
    with _lines(url, params, headers, timeout) as lines:
        for line in lines:
            if time.monotonic() > deadline:
                raise AssertionError(f"stream {url} still open after {timeout:g}s with {len(frames)} frames")
            frame = parser.feed(line)
            if frame is None:
                continue
            frames.append(frame)
            if len(frames) == 1 and on_first is not None:
                on_first()
            if until(frames):
                return frames
    raise AssertionError(f"stream {url} ended after {len(frames)} frames")


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
    returns the frames (`{"id", "event", "data"}`, keys present as sent) and the raw lines. `on_open` runs once
    the stream is open: the response headers arrived (the gateway sends them once the server fixed the
    stream's starting point) and the first line was read, so whatever it causes is delivered live."""
    out: list[dict[str, Any]] = []
    seen: list[str] = []
    parser = _Parser()
    with _lines(url, params, headers, READ_TIMEOUT_S) as lines:
        for line in lines:
            seen.append(line)
            if on_open is not None:
                on_open()
                on_open = None
            if until_heartbeat and line == ": heartbeat":
                break
            frame = parser.feed(line)
            if frame is not None:
                fields = {"id": frame.id, "event": frame.event, "data": frame.data}
                out.append({k: v for k, v in fields.items() if v is not None or k == "data"})
                if len(out) >= frames:
                    break
    return out, seen
