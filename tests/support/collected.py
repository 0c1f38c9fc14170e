"""A server stream read on a thread of its own, for tests that watch a stream while they act elsewhere."""

from __future__ import annotations

import threading
from typing import Any

import grpc

from athena.v1 import events_pb2, events_pb2_grpc


class Collected:
    """A server stream read on a thread of its own, its items kept as they arrive."""

    def __init__(self, call: Any, item: Any) -> None:
        self.call = call
        self.items: list[Any] = []
        call.initial_metadata()  # the server validated the request and fixed the starting point
        self.thread = threading.Thread(target=self._read, args=(item,), daemon=True)
        self.thread.start()

    def _read(self, item: Any) -> None:
        try:
            for response in self.call:
                self.items.append(item(response))
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                raise

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(30)


def session_events(channel: grpc.Channel, session_id: str) -> Collected:
    """A session's events as `StreamEvents` delivers them over `channel`, collected from now on."""
    call = events_pb2_grpc.EventServiceStub(channel).StreamEvents(
        events_pb2.StreamEventsRequest(session_id=session_id), timeout=120
    )
    return Collected(call, lambda r: r.event)
