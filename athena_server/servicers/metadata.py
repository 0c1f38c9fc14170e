"""Request headers the servicers read from gRPC metadata (the gateway forwards them from HTTP)."""

from __future__ import annotations

import grpc


def header(context: grpc.aio.ServicerContext, name: str) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == name and isinstance(value, str):
            return value
    return None


def idempotency_key(context: grpc.aio.ServicerContext) -> str | None:
    return header(context, "idempotency-key")
