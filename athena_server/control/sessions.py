"""Session history and transcripts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import struct_pb2
from sqlalchemy import Connection

from athena.v1 import sessions_pb2
from athena_client.contract import enum_by_json
from athena_server import cursors, validation
from athena_server.config import Settings
from athena_server.control import pages
from athena_server.control.follow import Followed, follow
from athena_server.errors import config_error
from athena_server.storage import sessions, transcripts
from athena_server.storage.sessions import SessionRow
from athena_server.storage.store import Store
from athena_server.storage.transcripts import EntryRow
from athena_server.timefmt import iso

# The role column holds the contract's JSON spelling of TranscriptRole ("user", "assistant", ...).
_ROLES = enum_by_json(sessions_pb2.TranscriptRole.DESCRIPTOR)


# Every session's transcript entries as streams follow them: one tail per process reads them for every stream.
TRANSCRIPTS: Followed[EntryRow] = Followed(
    "transcripts", transcripts.between, transcripts.last_seq, lambda r: r.seq, key_of=lambda r: r.session_id
)


def session_message(row: SessionRow) -> sessions_pb2.Session:
    return sessions_pb2.Session(
        id=row.id,
        transcript_path=f"/api/v1/sessions/{row.id}/transcript",
        provider=row.provider,
        model=row.model,
        created_at=iso(row.created_at_ms),
        updated_at=iso(row.updated_at_ms),
    )


def entry_message(row: EntryRow) -> sessions_pb2.TranscriptEntry:
    entry = sessions_pb2.TranscriptEntry(
        id=row.id,
        role=sessions_pb2.TranscriptRole.ValueType(_ROLES[row.role]),
        content=row.content,
        created_at=iso(row.created_at_ms),
    )
    if row.is_error:
        entry.is_error = True
    if row.metadata:
        entry.metadata.CopyFrom(_struct(row.metadata))
    if row.run_id is not None:
        entry.run_id = row.run_id
    return entry


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def _session_cursor(row: SessionRow) -> str:
    return cursors.encode({"kind": "sessions", "updatedAt": iso(row.updated_at_ms), "id": row.id})


class SessionService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def list(self, req: sessions_pb2.ListSessionsRequest) -> sessions_pb2.ListSessionsResponse:
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        key: tuple[int, str] | None = None
        offset = 0
        if req.cursor:
            fields: dict[str, cursors.KeyField] = {"updatedAt": "instant", "id": "text"}
            position = cursors.decode_keyset(req.cursor, "sessions", "sessions.list", fields)
            if isinstance(position, int):
                offset = position
            else:
                key = (int(position["updatedAt"]), str(position["id"]))
        rows = await self.store.read(lambda conn: sessions.page(conn, limit + 1, key, offset))
        page = pages.fill(rows, limit, session_message)
        resp = sessions_pb2.ListSessionsResponse(items=page.items)
        if page.last is not None:
            resp.next_cursor = _session_cursor(page.last)
        return resp

    async def transcript(
        self, req: sessions_pb2.ListTranscriptEntriesRequest
    ) -> sessions_pb2.ListTranscriptEntriesResponse:
        session_id = validation.session_id(req.session_id, "sessions.transcript")
        limit = validation.page_limit(req.limit if req.HasField("limit") else None, validation.DEFAULT_TAIL_LIMIT)

        def read(conn: Connection) -> tuple[list[EntryRow], bool]:
            after_seq = transcripts.seq_of(conn, session_id, req.after) if req.after else None
            if after_seq is None:
                return transcripts.tail(conn, session_id, limit), True
            return transcripts.after(conn, session_id, after_seq, limit), False

        rows, tail = await self.store.read(read)
        if tail:
            # The newest entries that fit, still oldest first.
            newest = pages.fill(rows[::-1], limit, entry_message).items
            return sessions_pb2.ListTranscriptEntriesResponse(items=newest[::-1])
        return sessions_pb2.ListTranscriptEntriesResponse(items=pages.fill(rows, limit, entry_message).items)

    async def open_transcript_stream(
        self, req: sessions_pb2.StreamTranscriptRequest
    ) -> AsyncIterator[sessions_pb2.TranscriptEntry]:
        """Validate and fix the starting point now (so errors surface before the stream opens), and
        return the stream."""
        session_id = validation.session_id(req.session_id, "sessions.transcript.stream")
        if req.after:
            start = await self.store.read(lambda conn: transcripts.seq_of(conn, session_id, req.after))
            if start is None:
                raise config_error(
                    f"sessions.transcript.stream.after must be an entry id of session '{session_id}'; list GET "
                    f"/api/v1/sessions/{session_id}/transcript to resume from an entry that exists."
                )
        else:
            start = await self.store.read(transcripts.last_seq)

        def fetch(conn: Connection, after: int, up_to: int, limit: int) -> list[EntryRow]:
            return transcripts.after(conn, session_id, after, limit, up_to_seq=up_to)

        def matches(row: EntryRow) -> bool:
            return row.session_id == session_id

        async def stream() -> AsyncIterator[sessions_pb2.TranscriptEntry]:
            async for row in follow(
                self.store, TRANSCRIPTS, start, fetch, matches, self.settings.event_poll_seconds, key=session_id
            ):
                yield entry_message(row)

        return stream()
