"""The one rule every server-streaming handler follows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

import grpc

from athena_client.contract import TRACE_HEADER
from athena_server.tracing import trace_id

T = TypeVar("T")


async def after_validation(context: grpc.aio.ServicerContext, items: AsyncIterator[T]) -> AsyncIterator[T]:
    """Send the response headers, then the items.

    Call it only once the request is validated: until headers go out, a failure is a plain error status,
    which the gateway answers with a JSON error envelope; after them it can only end an open stream.
    """
    await context.send_initial_metadata(((TRACE_HEADER, trace_id()),))
    async for item in items:
        yield item
