"""The REST transport: a request message becomes the HTTP request its `google.api.http` rule describes
(the same table the gateway is built from), and the envelope's `data` becomes the response message again.

Server-streaming RPCs are read as server-sent events: each `data:` frame is an envelope holding the
message's `response_body` field, and an `event: error` frame is the stream's failure.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from google.protobuf.message import Message

from athena_client.contract import ERROR_CODES, message_to_json
from athena_client.errors import (
    TRANSPORT_DEADLINE_EXCEEDED,
    TRANSPORT_UNAVAILABLE,
    AthenaError,
    AthenaTransportError,
    from_envelope,
)
from athena_client.http_rules import HttpRoute
from athena_client.rest_data import dumps, message_from_data
from athena_client.rpcs import Rpc
from athena_client.transport import ClientClosedError, Headers

JSON = "application/json"
EVENT_STREAM = "text/event-stream"
# Without a timeout a stream is bounded only while connecting (it may rightly stay quiet for hours); with
# one, the whole stream is, as a gRPC deadline bounds it.
DEFAULT_CONNECT_SECONDS = 10.0


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    params: list[tuple[str, str | int | float | bool | None]]
    body: bytes | None


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode(route: HttpRoute, request: Message) -> HttpRequest:
    """The HTTP request for `request` under `route`: path fields into the path, the rule's body share as
    JSON, every other set field as a query parameter (repeated fields once per item)."""
    data = message_to_json(request, defaults=False)
    fields = route.method.input_type.fields_by_name
    path = route.path
    for name in route.path_params:
        value = data.pop(fields[name].json_name, "")
        path = path.replace("{" + name + "}", quote(_query_value(value), safe=""))
    body: bytes | None = None
    if route.body == "*":
        body = dumps(data).encode()
        data = {}
    elif route.body:
        body = dumps(data.pop(fields[route.body].json_name, {})).encode()
    params: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (dict, list)):
                raise AthenaError("CONFIG_ERROR", f"{route.method.input_type.name}.{key} cannot be sent in a query")
            params.append((key, _query_value(item)))
    return HttpRequest(route.http_method, path, params, body)


def _headers(headers: Headers, request: HttpRequest, accept: str) -> list[tuple[str, str]]:
    out = [*headers, ("accept", accept)]
    if request.body is not None:
        out.append(("content-type", JSON))
    return out


def _send_args(http: HttpRequest, headers: Headers, timeout: float | None, *, streaming: bool) -> dict[str, Any]:
    """The keyword arguments of `httpx` `request` / `stream` for one call, alike for both clients."""
    return {
        "method": http.method,
        "url": http.path,
        "params": http.params,
        "content": http.body,
        "headers": _headers(headers, http, EVENT_STREAM if streaming else JSON),
        "timeout": _timeout(timeout, streaming),
    }


def decode(rpc: Rpc, status: int, body: bytes, headers: Mapping[str, str]) -> Message:
    """The response message of an envelope, or the AthenaError it carries."""
    try:
        document = json.loads(body)
    except ValueError:
        raise from_envelope(status, body, headers) from None
    if not (isinstance(document, dict) and document.get("ok") is True and 200 <= status < 300):
        raise from_envelope(status, body, headers)
    try:
        return message_from_data(document.get("data"), rpc.route.response_body, rpc.response_class())
    except (ValueError, TypeError) as exc:
        raise AthenaError("UNKNOWN_ERROR", f"unreadable {rpc.response_class.__name__} in the answer: {exc}") from None


def _transport_error(exc: httpx.HTTPError) -> AthenaTransportError:
    if isinstance(exc, httpx.TimeoutException):
        return AthenaTransportError(TRANSPORT_DEADLINE_EXCEEDED, f"no answer in time ({type(exc).__name__})")
    return AthenaTransportError(TRANSPORT_UNAVAILABLE, f"{type(exc).__name__}: {exc}".rstrip(": "))


@dataclass
class _Frame:
    event: str = ""
    data: list[str] | None = None


class SseParser:
    """Server-sent events, line by line (the WHATWG rules Athena's frames need: `event`, `data`, comments)."""

    def __init__(self) -> None:
        self._frame = _Frame()

    def feed(self, line: str) -> tuple[str, str] | None:
        """The (event, data) a blank line completes; None otherwise."""
        if not line:
            frame, self._frame = self._frame, _Frame()
            return (frame.event, "\n".join(frame.data)) if frame.data is not None else None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._frame.event = value
        elif name == "data":
            self._frame.data = [*(self._frame.data or []), value]
        return None


def stream_message(rpc: Rpc, event: str, data: str) -> Message:
    """The message of one SSE frame; the AthenaError of an `event: error` frame."""
    if event == "error":
        error = json.loads(data).get("error", {})
        info = ERROR_CODES.get(str(error.get("code")))
        raise from_envelope(info.http_status if info else 500, data.encode(), {})
    return decode(rpc, 200, data.encode(), {})


def _timeout(timeout: float | None, streaming: bool) -> httpx.Timeout:
    if streaming:
        # A quiet stream (no event, no heartbeat) past the timeout ends in a read timeout; a busy one at the
        # first line after its deadline (`_check_deadline`).
        return httpx.Timeout(connect=timeout or DEFAULT_CONNECT_SECONDS, read=timeout, write=timeout, pool=timeout)
    # Without a timeout the answer may take as long as the work does, but connecting never waits forever.
    return httpx.Timeout(timeout, connect=timeout or DEFAULT_CONNECT_SECONDS)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _check_deadline(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise AthenaTransportError(TRANSPORT_DEADLINE_EXCEEDED, "the stream's timeout passed")


class RestTransport:
    """Calls over HTTP/1.1 to the gateway at `base_url` (`http://127.0.0.1:8787`)."""

    def __init__(self, base_url: str, http: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http or httpx.Client(base_url=self.base_url)
        self._owned = http is None
        self._closed = False

    def unary(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> Message:
        if self._closed:
            raise ClientClosedError()
        http = encode(rpc.route, request)
        try:
            answer = self._http.request(**_send_args(http, headers, timeout, streaming=False))
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None
        return decode(rpc, answer.status_code, answer.content, answer.headers)

    def stream(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> Iterator[Message]:
        if self._closed:
            raise ClientClosedError()
        deadline = _deadline(timeout)
        http = encode(rpc.route, request)
        try:
            with self._http.stream(**_send_args(http, headers, timeout, streaming=True)) as answer:
                if answer.status_code != 200 or not answer.headers.get("content-type", "").startswith(EVENT_STREAM):
                    raise from_envelope(answer.status_code, answer.read(), answer.headers)
                parser = SseParser()
                for line in answer.iter_lines():
                    _check_deadline(deadline)
                    frame = parser.feed(line)
                    if frame is not None:
                        yield stream_message(rpc, *frame)
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None

    def close(self) -> None:
        self._closed = True
        if self._owned:
            self._http.close()


class AsyncRestTransport:
    """`RestTransport` over `httpx.AsyncClient`."""

    def __init__(self, base_url: str, http: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http or httpx.AsyncClient(base_url=self.base_url)
        self._owned = http is None
        self._closed = False

    async def unary(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> Message:
        if self._closed:
            raise ClientClosedError()
        http = encode(rpc.route, request)
        try:
            answer = await self._http.request(**_send_args(http, headers, timeout, streaming=False))
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None
        return decode(rpc, answer.status_code, answer.content, answer.headers)

    async def stream(
        self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None
    ) -> AsyncIterator[Message]:
        if self._closed:
            raise ClientClosedError()
        deadline = _deadline(timeout)
        http = encode(rpc.route, request)
        try:
            async with self._http.stream(**_send_args(http, headers, timeout, streaming=True)) as answer:
                if answer.status_code != 200 or not answer.headers.get("content-type", "").startswith(EVENT_STREAM):
                    raise from_envelope(answer.status_code, await answer.aread(), answer.headers)
                parser = SseParser()
                async for line in answer.aiter_lines():
                    _check_deadline(deadline)
                    frame = parser.feed(line)
                    if frame is not None:
                        yield stream_message(rpc, *frame)
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None

    async def close(self) -> None:
        self._closed = True
        if self._owned:
            await self._http.aclose()
