"""One process holding many SSE subscribers for bench/streams.py and bench/replicas.py: raw asyncio
sockets (an HTTP/1.1 GET, chunked or plain body), so a thousand streams cost little client CPU and the
figures are the server's.

    python bench/sse_subscribers.py     # driven over stdin/stdout, one JSON document a line:

1. in:  {"host": ..., "port": ..., "paths": ["/api/v1/events/stream?sessionId=...", ...]}
   out: {"ready": N} once every stream answered 200 with its headers (the server fixed its starting point);
2. in:  {"expect": [[event numbers per path], ...], "timeout": seconds}
   out: {"subs": [{"ids": [...], "lat": [...]}, ...], "cpu": s, "wall": s, "errors": [...]} once every
   subscriber received every event it expects, or at the timeout.

Delivery latency of a frame = its arrival (wall clock, read as its chunk arrives) minus the event's
`createdAt` (the server's wall clock, same machine; millisecond precision, so up to 1 ms high).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def raise_fd_limit() -> None:
    """As many descriptors as the hard limit allows: a thousand sockets exceed the usual soft 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Subscriber:
    path: str
    ids: list[int] = field(default_factory=list)
    lat: list[float] = field(default_factory=list)
    expect: set[int] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def check_done(self) -> None:
        if self.expect is not None and self.expect.issubset(self.ids):
            self.done.set()


def _epoch_ms(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def _frames(sub: Subscriber, buffer: bytes, arrived_ms: float) -> bytes:
    """Record the complete frames in `buffer`; return the incomplete rest."""
    buffer = buffer.replace(b"\r\n", b"\n")
    *frames, rest = buffer.split(b"\n\n")
    for frame in frames:
        ident, data = None, None
        for line in frame.split(b"\n"):
            if line.startswith(b"id:"):
                ident = line[3:].strip().decode()
            elif line.startswith(b"data:"):
                data = line[5:].strip()
        if ident is None or data is None:
            continue  # a comment (heartbeat) or the retry line
        event = json.loads(data)["data"]
        sub.ids.append(int(ident.removeprefix("evt_")))
        sub.lat.append(arrived_ms - _epoch_ms(event["createdAt"]))
    sub.check_done()
    return rest


async def _open(host: str, port: int, sub: Subscriber) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
    request = f"GET {sub.path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
    writer.write(request.encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise RuntimeError(f"stream {sub.path} answered {status!r}")
    return reader, writer, b"transfer-encoding: chunked" in head.lower()


async def _read(reader: asyncio.StreamReader, sub: Subscriber, chunked: bool) -> None:
    buffer = b""
    while True:
        if chunked:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                return
            data = (await reader.readexactly(size + 2))[:-2]
        else:
            data = await reader.read(1 << 16)
            if not data:
                return
        buffer = _frames(sub, buffer + data, time.time() * 1000)


async def main() -> None:
    raise_fd_limit()
    loop = asyncio.get_running_loop()

    async def line() -> dict[str, Any]:
        return json.loads(await loop.run_in_executor(None, sys.stdin.readline))

    spec = await line()
    subs = [Subscriber(p) for p in spec["paths"]]
    errors: list[str] = []
    # Open in batches so a thousand connects do not overflow the server's accept backlog.
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]] = []
    for start in range(0, len(subs), 50):
        opened += await asyncio.gather(*(_open(spec["host"], spec["port"], s) for s in subs[start : start + 50]))
    readers = [asyncio.create_task(_read(r, s, chunked)) for (r, _, chunked), s in zip(opened, subs, strict=True)]
    print(json.dumps({"ready": len(subs)}), flush=True)
    cpu0, wall0 = os.times(), time.perf_counter()

    request = await line()
    for sub, expect in zip(subs, request["expect"], strict=True):
        sub.expect = set(expect)
        sub.check_done()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(s.done.wait() for s in subs)), request["timeout"])
    for task in readers:
        if task.done() and task.exception() is not None:
            errors.append(repr(task.exception()))
        task.cancel()
    for _, writer, _ in opened:
        writer.close()
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    subs_out = [{"ids": s.ids, "lat": s.lat} for s in subs]
    print(json.dumps({"subs": subs_out, "cpu": cpu, "wall": time.perf_counter() - wall0, "errors": errors}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
