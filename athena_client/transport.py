"""What a transport does for the client: one unary call or one stream, the call's headers given, every
failure raised as an `AthenaError`. Retries, idempotency keys, credentials and stream resumption live
above, in the client, so every transport gets them the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Protocol

from google.protobuf.message import Message

from athena_client.rpcs import Rpc

# Request headers / gRPC metadata of one call: lowercase names.
Headers = Sequence[tuple[str, str]]


class ClientClosedError(RuntimeError):
    """A call on a client that was closed (after `with` / `async with`, or `close()`): a mistake in the
    calling program, not an answer from Athena, so not an `AthenaError` and never retried."""

    def __init__(self) -> None:
        super().__init__("this Athena client is closed; connect() a new one")


class Transport(Protocol):
    def unary(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> Message:
        """The response; AthenaError (AthenaTransportError when no answer came) otherwise."""
        ...

    def stream(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> Iterator[Message]:
        """The streamed messages; closing the iterator ends the call."""
        ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    async def unary(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> Message: ...

    def stream(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> AsyncIterator[Message]: ...

    async def close(self) -> None: ...
