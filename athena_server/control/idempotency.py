"""`Idempotency-Key` on POSTs that start work: a retry with the same key and body replays the first answer
instead of starting a second run; the same key with another body is IDEMPOTENCY_KEY_REUSED.

The first request claims the key with an insert (the primary key decides a race between two first
requests). A retry that arrives while the first still runs waits for its answer. Answers that a retry
could change (retryable errors such as a concurrency refusal, unexpected failures, a caller that went
away) release the key instead of being stored. Keys expire after `idempotency_ttl_hours`.

The record keeps the answer's REST status (`http_status`). Servicers hand `outcome` a domain `Outcome`;
it is stored as 202 when the work was accepted, 200 when done, and replayed the same way: the one place
the domain outcome meets that number.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy import Connection

from athena_server.control.outcomes import Outcome
from athena_server.errors import AthenaError, ErrorCode, config_error
from athena_server.storage import idempotency
from athena_server.storage.idempotency import KeyRow
from athena_server.storage.store import Store
from athena_server.timefmt import now_ms

M = TypeVar("M", bound=Message)
MAX_KEY_LENGTH = 255
_WAIT_SECONDS = 0.05
# The stored `http_status` of a domain outcome: accepted work, done work.
ACCEPTED_STATUS, DONE_STATUS = 202, 200


def fingerprint(scope: str, request: Message) -> str:
    return hashlib.sha256(scope.encode() + b"\0" + request.SerializeToString(deterministic=True)).hexdigest()


class Idempotency:
    def __init__(self, store: Store, owner_id: str, ttl_hours: float) -> None:
        self.store = store
        self.owner_id = owner_id
        self.ttl_ms = int(ttl_hours * 3_600_000)

    async def run(
        self,
        scope: str,
        key: str | None,
        request: Message,
        response_type: type[M],
        call: Callable[[], Awaitable[tuple[M, int]]],
    ) -> tuple[M, int]:
        """`call()` once per key; replays its answer (response and REST status, or error) to retries."""
        if key is None:
            return await call()
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH:
            raise config_error(f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} characters.")
        digest = fingerprint(scope, request)
        row = await self.store.write(lambda conn: self._claim(conn, scope, key, digest))
        while row is not None:
            if row.request_hash != digest:
                raise AthenaError(
                    ErrorCode.ERROR_CODE_IDEMPOTENCY_KEY_REUSED,
                    "Idempotency-Key was already used with a different request body.",
                )
            if row.state == "done":
                return self._replay(row, response_type)
            # The first request is still running: wait for its answer with reads, and claim the key only
            # if it disappears (that request failed in a way a retry may change, or its process died).
            await asyncio.sleep(_WAIT_SECONDS)
            row = await self.store.read(lambda conn: idempotency.get(conn, scope, key))
            if row is None:
                row = await self.store.write(lambda conn: self._claim(conn, scope, key, digest))
        try:
            response, status = await call()
        except AthenaError as err:
            if err.retryable:
                await self._release(scope, key)
            else:
                stored = {"code": err.code, "message": err.message, "metadata": err.metadata}
                await self.store.write(
                    lambda conn: idempotency.finish(conn, scope, key, response=None, http_status=None, error=stored)
                )
            raise
        except BaseException:
            await asyncio.shield(self._release(scope, key))
            raise
        data = response.SerializeToString()
        await self.store.write(
            lambda conn: idempotency.finish(conn, scope, key, response=data, http_status=status, error=None)
        )
        return response, status

    async def outcome(
        self,
        scope: str,
        key: str | None,
        request: Message,
        response_type: type[M],
        call: Callable[[], Awaitable[Outcome[M]]],
    ) -> Outcome[M]:
        """`run` for a domain call: its outcome is stored as its REST status, and a replay is accepted
        exactly when the first answer was."""

        async def stored() -> tuple[M, int]:
            answer = await call()
            return answer.value, ACCEPTED_STATUS if answer.accepted else DONE_STATUS

        response, status = await self.run(scope, key, request, response_type, stored)
        return Outcome(response, accepted=status == ACCEPTED_STATUS)

    def _claim(self, conn: Connection, scope: str, key: str, digest: str) -> KeyRow | None:
        """None when this request now holds the key; otherwise the record of the request that does."""
        at = now_ms()
        row = idempotency.get(conn, scope, key)
        if row is not None and at - row.created_at_ms > self.ttl_ms:
            idempotency.release(conn, scope, key)
            row = None
        if row is None and idempotency.claim(conn, scope, key, digest, self.owner_id, at):
            return None
        return row if row is not None else idempotency.get(conn, scope, key)

    async def _release(self, scope: str, key: str) -> None:
        await self.store.write(lambda conn: idempotency.release(conn, scope, key))

    @staticmethod
    def _replay(row: KeyRow, response_type: type[M]) -> tuple[M, int]:
        if row.error is not None:
            raise AthenaError(row.error["code"], row.error["message"], metadata=dict(row.error.get("metadata") or {}))
        response = response_type()
        response.ParseFromString(row.response or b"")
        return response, row.http_status or 200

    async def expire(self) -> int:
        cutoff = now_ms() - self.ttl_ms
        return await self.store.write(lambda conn: idempotency.expire(conn, cutoff))
