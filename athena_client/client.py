"""The SDK's clients: `Client` (blocking) and `AsyncClient`, one call path each for every RPC.

A service attribute (`client.run_service`, generated from the contract into `athena.v1.services_client`)
turns typed arguments into a request message and calls `call`, `stream` or `items` here. Those add what
every transport gets alike: credentials on every call, an `Idempotency-Key` per logical call of an RPC that
reads one (reused across its retries), retries with back-off that honour the server's `retry_after`, and
streams that reconnect after the last message they delivered.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar, cast
from urllib.parse import urlsplit

from google.protobuf.message import Message

from athena.v1.services_client import AsyncServiceClients, ServiceClients
from athena_client.contract import IDEMPOTENCY_HEADER
from athena_client.errors import TRANSPORT_DEADLINE_EXCEEDED, AthenaError, AthenaTransportError
from athena_client.grpc_transport import AsyncGrpcTransport, GrpcTransport
from athena_client.options import Credentials, RetryPolicy
from athena_client.rest_transport import AsyncRestTransport, RestTransport
from athena_client.rpcs import CURSOR_FIELD, NEXT_CURSOR_FIELD, Rpc, rpc
from athena_client.transport import AsyncTransport, Headers, Transport

M = TypeVar("M", bound=Message)

DEFAULT_TIMEOUT = 60.0
# Errors after which a stream is reopened from its last delivered message: no answer (server restarting),
# or the gateway saying its upstream is unavailable. Not DEADLINE_EXCEEDED: that is the stream's own timeout.
_RECONNECT_CODES = frozenset({"UNAVAILABLE"})


def _rpc(which: Rpc | str) -> Rpc:
    return which if isinstance(which, Rpc) else rpc(which)


def _field_path(message: Message, path: str) -> str:
    value: Any = message
    for name in path.split("."):
        value = getattr(value, name)
    return str(value)


class _Calls:
    """What the sync and async clients share: headers and the retry decision."""

    def __init__(self, credentials: Credentials | None, timeout: float | None, retry: RetryPolicy | None) -> None:
        self.credentials = credentials if credentials is not None else Credentials.resolve()
        self.timeout = timeout
        self.retry_policy = retry or RetryPolicy()

    def _headers(self, rpc: Rpc, key: str | None, metadata: Mapping[str, str] | None) -> Headers:
        headers = self.credentials.headers()
        if rpc.idempotency_key:
            headers.append((IDEMPOTENCY_HEADER, key or uuid.uuid4().hex))
        if metadata:
            headers.extend((k.lower(), v) for k, v in metadata.items())
        return headers

    def _delay(
        self, rpc: Rpc, attempt: int, error: AthenaError, retry: bool | None, deadline: float | None
    ) -> float | None:
        if retry is False:
            return None
        pause = self.retry_policy.delay(attempt, error, retry_safe=bool(retry) or rpc.retry_safe)
        if pause is not None and deadline is not None and time.monotonic() + pause >= deadline:
            return None  # the call's timeout would pass while waiting: the caller gets the error now
        return pause

    def _timeout(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout

    def _resumed(self, rpc: Rpc, request: Message, last_id: str | None) -> Message:
        sse = rpc.sse
        if last_id is None or sse is None or not sse.resume_field:
            return request
        again = type(request)()
        again.CopyFrom(request)
        setattr(again, sse.resume_field, last_id)
        return again

    def _reconnects(self, error: AthenaError) -> bool:
        return error.code in _RECONNECT_CODES and (isinstance(error, AthenaTransportError) or error.retryable)

    @staticmethod
    def _deadline(timeout: float | None) -> float | None:
        return None if timeout is None else time.monotonic() + timeout

    @staticmethod
    def _time_left(deadline: float | None) -> float | None:
        """The timeout of a call's or stream's next attempt: what is left of the whole call's."""
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise AthenaTransportError(TRANSPORT_DEADLINE_EXCEEDED, "the call's timeout passed")
        return left

    @staticmethod
    def _message_id(rpc: Rpc, message: Message) -> str | None:
        sse = rpc.sse
        if sse is None or not sse.id_field or not sse.resume_field:
            return None
        return _field_path(message, sse.id_field) or None

    @staticmethod
    def _next_page(rpc: Rpc, request: Message, response: Message) -> Message | None:
        if not response.HasField(NEXT_CURSOR_FIELD):
            return None
        cursor = getattr(response, NEXT_CURSOR_FIELD)
        if not cursor:
            return None
        following = type(request)()
        following.CopyFrom(request)
        setattr(following, CURSOR_FIELD, cursor)
        return following


class Client(ServiceClients, _Calls):
    """A blocking client over one transport. Use `connect(url)`; close it (or use `with`) when done."""

    def __init__(
        self,
        transport: Transport,
        *,
        credentials: Credentials | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        _Calls.__init__(self, credentials, timeout, retry)
        self.transport = transport
        self._init_services()

    def call(
        self,
        which: Rpc | str,
        request: Message,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        retry: bool | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Message:
        """One logical call of a unary RPC (by `Rpc` or full name, `athena.v1.RunService.GetRun`): retried
        when the policy allows, with one idempotency key across attempts. `timeout` bounds the whole call,
        its retries and the pauses between them included."""
        target = _rpc(which)
        headers = self._headers(target, idempotency_key, metadata)
        deadline = self._deadline(self._timeout(timeout))
        attempt = 0
        while True:
            try:
                return self.transport.unary(target, request, headers, self._time_left(deadline))
            except AthenaError as error:
                pause = self._delay(target, attempt, error, retry, deadline)
                if pause is None:
                    raise
            time.sleep(pause)
            attempt += 1

    def stream(
        self,
        which: Rpc | str,
        request: Message,
        *,
        resume: bool = True,
        timeout: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Generator[Message, None, None]:
        """The messages of a server-streaming RPC. With `resume` (the default) a broken stream is reopened
        after the last message delivered (its `(athena.v1.sse)` id into the request's resume field), so the
        consumer sees each message once across server restarts; `timeout` bounds the whole stream."""
        target = _rpc(which)
        headers = self._headers(target, None, metadata)
        deadline = self._deadline(timeout)
        last_id: str | None = None
        failures = 0
        while True:
            try:
                resumed = self._resumed(target, request, last_id)
                for message in self.transport.stream(target, resumed, headers, self._time_left(deadline)):
                    failures = 0
                    last_id = self._message_id(target, message) or last_id
                    yield message
                return
            except AthenaError as error:
                if not resume or not self._reconnects(error) or failures >= self.retry_policy.max_reconnects:
                    raise
            time.sleep(self.retry_policy.backoff(failures))
            failures += 1

    def pages(self, which: Rpc | str, request: Message, **options: Any) -> Iterator[Message]:
        """Every page of a paged RPC, following `nextCursor` until the last page."""
        target = _rpc(which)
        page: Message | None = request
        while page is not None:
            response = self.call(target, page, **options)
            yield response
            page = self._next_page(target, page, response)

    def items(self, which: Rpc | str, request: Message, **options: Any) -> Iterator[Message]:
        """Every item of a paged RPC, page after page, each once."""
        target = _rpc(which)
        if target.items_field is None:
            raise TypeError(f"{target.full_name} does not page")
        for response in self.pages(target, request, **options):
            yield from getattr(response, target.items_field)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncClient(AsyncServiceClients, _Calls):
    """`Client` for asyncio: the same services and methods, awaited. Use `connect_async(url)`."""

    def __init__(
        self,
        transport: AsyncTransport,
        *,
        credentials: Credentials | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        _Calls.__init__(self, credentials, timeout, retry)
        self.transport = transport
        self._init_services()

    async def call(
        self,
        which: Rpc | str,
        request: Message,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        retry: bool | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Message:
        """See `Client.call`."""
        target = _rpc(which)
        headers = self._headers(target, idempotency_key, metadata)
        deadline = self._deadline(self._timeout(timeout))
        attempt = 0
        while True:
            try:
                return await self.transport.unary(target, request, headers, self._time_left(deadline))
            except AthenaError as error:
                pause = self._delay(target, attempt, error, retry, deadline)
                if pause is None:
                    raise
            await asyncio.sleep(pause)
            attempt += 1

    def stream(
        self,
        which: Rpc | str,
        request: Message,
        *,
        resume: bool = True,
        timeout: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> AsyncMessageStream[Message]:
        """See `Client.stream`. The stream is an object, not an async generator, so leaving an `async for`
        early cannot leave two generators for the event loop to close at once; `aclose()` ends it now."""
        target = _rpc(which)
        headers = self._headers(target, None, metadata)
        return AsyncMessageStream[Message](self, target, request, headers, resume, timeout)

    async def pages(self, which: Rpc | str, request: Message, **options: Any) -> AsyncIterator[Message]:
        """See `Client.pages`."""
        target = _rpc(which)
        page: Message | None = request
        while page is not None:
            response = await self.call(target, page, **options)
            yield response
            page = self._next_page(target, page, response)

    async def items(self, which: Rpc | str, request: Message, **options: Any) -> AsyncIterator[Message]:
        """See `Client.items`."""
        target = _rpc(which)
        if target.items_field is None:
            raise TypeError(f"{target.full_name} does not page")
        async for response in self.pages(target, request, **options):
            for item in getattr(response, target.items_field):
                yield item

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class AsyncMessageStream(Generic[M]):
    """The messages of one server-streaming call, reopened after the last delivered message when the
    connection breaks (see `Client.stream`). `M` is the RPC's response class (the generated methods say
    which)."""

    def __init__(
        self, client: AsyncClient, rpc: Rpc, request: Message, headers: Headers, resume: bool, timeout: float | None
    ) -> None:
        self._client = client
        self._rpc = rpc
        self._request = request
        self._headers = headers
        self._resume = resume
        self._deadline = client._deadline(timeout)
        self._inner: AsyncIterator[Message] | None = None
        self._last_id: str | None = None
        self._failures = 0
        self._done = False

    def __aiter__(self) -> AsyncMessageStream[M]:
        return self

    async def __anext__(self) -> M:
        while not self._done:
            if self._inner is None:
                request = self._client._resumed(self._rpc, self._request, self._last_id)
                timeout = self._client._time_left(self._deadline)
                self._inner = self._client.transport.stream(self._rpc, request, self._headers, timeout)
            try:
                message = await anext(self._inner)
            except StopAsyncIteration:
                await self.aclose()
                break
            except AthenaError as error:
                await self._close_inner()
                policy = self._client.retry_policy
                if not self._resume or not self._client._reconnects(error) or self._failures >= policy.max_reconnects:
                    self._done = True
                    raise
                await asyncio.sleep(policy.backoff(self._failures))
                self._failures += 1
                continue
            self._failures = 0
            self._last_id = self._client._message_id(self._rpc, message) or self._last_id
            return cast(M, message)
        raise StopAsyncIteration

    async def _close_inner(self) -> None:
        inner, self._inner = self._inner, None
        close = getattr(inner, "aclose", None)
        if close is not None:
            await close()

    async def aclose(self) -> None:
        """End the call now (also what leaving `async with contextlib.aclosing(stream)` does)."""
        self._done = True
        await self._close_inner()


def _target(url: str) -> tuple[str, str]:
    """("grpc", "host:port" or "unix:/path") or ("rest", base URL); ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme == "grpc":
        if not parts.netloc:
            raise ValueError(f"{url!r}: a grpc:// address needs host:port")
        return "grpc", parts.netloc
    if parts.scheme == "unix":
        return "grpc", url
    if parts.scheme in ("http", "https"):
        if not parts.netloc:
            raise ValueError(f"{url!r}: an http(s):// address needs a host")
        return "rest", url
    raise ValueError(f"{url!r}: expected grpc://host:port, unix:/path or http(s)://host:port")


def connect(
    url: str,
    *,
    identity: str | None = None,
    api_token: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
) -> Client:
    """A blocking client: `grpc://127.0.0.1:50051` for gRPC, `http://127.0.0.1:8787` for REST. Credentials
    default to `ATHENA_IDENTITY` / `ATHENA_API_TOKEN`; `timeout` (seconds) is each call's default, retries
    included."""
    kind, target = _target(url)
    transport: Transport = GrpcTransport(target) if kind == "grpc" else RestTransport(target)
    return Client(transport, credentials=Credentials.resolve(identity, api_token), timeout=timeout, retry=retry)


def connect_async(
    url: str,
    *,
    identity: str | None = None,
    api_token: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
) -> AsyncClient:
    """`connect` for asyncio."""
    kind, target = _target(url)
    transport: AsyncTransport = AsyncGrpcTransport(target) if kind == "grpc" else AsyncRestTransport(target)
    return AsyncClient(transport, credentials=Credentials.resolve(identity, api_token), timeout=timeout, retry=retry)
