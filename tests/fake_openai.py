"""A real HTTP server speaking the subset of OpenAI chat-completions the `openai` provider uses.

A plain `http.server` in a background thread: no event loop to share with the tests, a free port picked by
the OS. It records every request and can be scripted to answer the next requests with given statuses and
bodies (429, 500, 400 with an OpenAI-style error...) before it answers normally.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a cancelled or timed-out request) is expected here, not a failure."""


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Scripted:
    status: int
    # A dict is sent as JSON; a str as it is.
    body: dict[str, Any] | str = field(default_factory=dict)


class FakeOpenAI:
    """Answers `POST /v1/chat/completions` with `reply: <last user message>` and usage counted in words."""

    def __init__(self, model_suffix: str = "-2024") -> None:
        self.requests: list[Received] = []
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        # The response's `model` is the requested one plus this suffix, as real APIs name a snapshot.
        self.model_suffix = model_suffix
        self.usage: dict[str, int] | None = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        # Fixed reply content instead of the echo; `null_content` sends `"content": null` (as for tool calls).
        self.content: str | None = None
        self.null_content = False
        # Seconds to wait before answering, for timeout and cancellation tests.
        self.delay_seconds = 0.0
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def script(self, *responses: Scripted) -> None:
        """Answer the next requests with these, in order, then normally again."""
        with self._lock:
            self._script.extend(responses)

    def _next_scripted(self) -> Scripted | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _answer(self, received: Received) -> tuple[int, dict[str, Any] | str]:
        self.requests.append(received)
        scripted = self._next_scripted()
        if scripted is not None:
            return scripted.status, scripted.body
        if received.path != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {received.path}", "type": "invalid_request_error"}}
        body = received.body if isinstance(received.body, dict) else {}
        messages = body.get("messages") or []
        last = messages[-1]["content"] if messages else ""
        content = None if self.null_content else self.content if self.content is not None else f"reply: {last}"
        response: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "model": f"{body.get('model', '')}{self.model_suffix}",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        }
        if self.usage is not None:
            response["usage"] = self.usage
        return 200, response

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    parsed: Any = json.loads(raw) if raw else None
                except ValueError:
                    parsed = raw.decode("utf-8", "replace")
                received = Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, parsed)
                status, body = fake._answer(received)
                if fake.delay_seconds:
                    time.sleep(fake.delay_seconds)
                data = (json.dumps(body) if isinstance(body, dict) else body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
