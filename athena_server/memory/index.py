"""The full-text index of the memory files: SQLite FTS5 in its own database file.

Kept apart from the store (`<data dir>/memory-index.db`), so it works whatever the store is (PostgreSQL
too) and can be deleted at any time: it is rebuilt from the files. A manifest (`files`: path, mtime_ns,
size) says what each indexed file looked like; `refresh` walks the workspace and reads only the files
that are new or whose mtime or size changed, and drops those that are gone. A file modified less than
`RACY_NS` before it was read may change again within the same timestamp tick, so it is read again on the
next refresh (re-indexed only if its content differs), as git treats "racily clean" entries.

The object is used from one thread at a time (the memory service's own thread); several processes may
share the file (SQLite's locking, `BEGIN IMMEDIATE` per refresh).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from athena_server.memory import ranking
from athena_server.memory.chunks import Chunk, chunk_lines, snippet
from athena_server.memory.paths import FileState, Workspace, split_lines

log = logging.getLogger(__name__)

# Bump when the chunking, tokenizer or schema changes: a different version rebuilds the index.
INDEX_VERSION = "1"
RACY_NS = 2_000_000_000
# Rows fetched beyond `max_results`, so hits tied with the last one kept are ordered by path and line too.
TIE_MARGIN = 20
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    racy INTEGER NOT NULL,
    read_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    line_start INTEGER NOT NULL,
    line_end INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks (path);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5 (
    text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
);
"""


@dataclass(frozen=True)
class Hit:
    path: str
    score: float
    shown: Chunk


@dataclass(frozen=True)
class RefreshStats:
    files: int
    read: int
    reindexed: int
    removed: int


class MemoryIndex:
    def __init__(self, db_path: Path, workspace: Workspace, max_file_bytes: int) -> None:
        self.workspace = workspace
        self.max_file_bytes = max_file_bytes
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(db_path, timeout=30, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)
        self._cache: tuple[int, dict[str, tuple[int, int, str, bool]]] | None = None
        self._check_identity()

    def close(self) -> None:
        self.conn.close()

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _check_identity(self) -> None:
        """An index of another workspace or an older format is emptied, not trusted."""
        identity = f"{INDEX_VERSION}:{self.workspace.root}"
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if self._meta("identity") != identity:
                self.conn.execute("DELETE FROM files")
                self.conn.execute("DELETE FROM chunks")
                self.conn.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('delete-all')")
                self._set_meta("identity", identity)
                self._set_meta("read_seq", "0")
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    # ---- following the files ------------------------------------------------------------------------

    def refresh(self) -> RefreshStats:
        """Bring the index in line with the workspace in one transaction; reads only what changed."""
        seen = {state.path: state for state in self.workspace.walk() if state.size <= self.max_file_bytes}
        started_ns = time.time_ns()
        read = reindexed = removed = 0
        if not self._differs(self._cached_manifest(), seen):
            return RefreshStats(len(seen), 0, 0, 0)  # the common case: no write transaction at all
        self._cache = None
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            known = self._manifest()  # again, inside the transaction: another process may have refreshed
            for path in known.keys() - seen.keys():
                self._drop(path)
                self.conn.execute("DELETE FROM files WHERE path = ?", (path,))
                removed += 1
            seq = int(self._meta("read_seq") or "0")
            for path, state in seen.items():
                old = known.get(path)
                if old is not None and (old[0], old[1]) == (state.mtime_ns, state.size) and not old[3]:
                    continue
                data = self._read(state)
                if data is None:
                    continue
                read += 1
                seq += 1
                digest = hashlib.sha256(data).hexdigest()
                racy = state.mtime_ns >= started_ns - RACY_NS
                if old is None or old[2] != digest:
                    self._drop(path)
                    self._insert(path, chunk_lines(split_lines(data)))
                    reindexed += 1
                self.conn.execute(
                    "INSERT OR REPLACE INTO files (path, mtime_ns, size, sha256, racy, read_seq)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (path, state.mtime_ns, state.size, digest, int(racy), seq),
                )
            self._set_meta("read_seq", str(seq))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return RefreshStats(len(seen), read, reindexed, removed)

    def _cached_manifest(self) -> dict[str, tuple[int, int, str, bool]]:
        """The manifest, read again only when a commit changed the database since (`PRAGMA data_version`
        moves on other connections' commits; this connection's own commits drop the cache)."""
        version = int(self.conn.execute("PRAGMA data_version").fetchone()[0])
        if self._cache is None or self._cache[0] != version:
            self._cache = (version, self._manifest())
        return self._cache[1]

    def _manifest(self) -> dict[str, tuple[int, int, str, bool]]:
        """path -> (mtime_ns, size, sha256, racy) of every indexed file."""
        rows = self.conn.execute("SELECT path, mtime_ns, size, sha256, racy FROM files")
        return {row[0]: (row[1], row[2], row[3], bool(row[4])) for row in rows}

    @staticmethod
    def _differs(known: dict[str, tuple[int, int, str, bool]], seen: dict[str, FileState]) -> bool:
        if known.keys() != seen.keys():
            return True
        return any((k[0], k[1]) != (seen[p].mtime_ns, seen[p].size) or k[3] for p, k in known.items())

    def _read(self, state: FileState) -> bytes | None:
        """The file's bytes, None if it vanished or cannot be read (it is then left as it was indexed)."""
        try:
            fd = os.open(state.real, os.O_RDONLY | os.O_NOFOLLOW)
            with open(fd, "rb") as handle:
                return handle.read(self.max_file_bytes + 1)[: self.max_file_bytes]
        except OSError as exc:
            log.warning("memory file %s not indexed: %s", state.path, exc.strerror)
            return None

    def _drop(self, path: str) -> None:
        rows = self.conn.execute("SELECT id, text FROM chunks WHERE path = ?", (path,)).fetchall()
        self.conn.executemany("INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', ?, ?)", rows)
        self.conn.execute("DELETE FROM chunks WHERE path = ?", (path,))

    def _insert(self, path: str, chunks: list[Chunk]) -> None:
        for chunk in chunks:
            cursor = self.conn.execute(
                "INSERT INTO chunks (path, line_start, line_end, text) VALUES (?, ?, ?, ?)",
                (path, chunk.line_start, chunk.line_end, chunk.text),
            )
            self.conn.execute("INSERT INTO chunks_fts (rowid, text) VALUES (?, ?)", (cursor.lastrowid, chunk.text))

    # ---- searching ----------------------------------------------------------------------------------

    def search(self, query: str, max_results: int, min_score: float, snippet_chars: int) -> list[Hit]:
        """The best `max_results` chunks for `query` scoring at least `min_score`, best first, ties by
        path then line."""
        words = ranking.terms(query)
        if not words:
            return []
        # Ranked inside FTS5 first (`rank` is bm25), so only the best rows are joined to their text.
        rows = self.conn.execute(
            "SELECT c.path, c.line_start, c.line_end, c.text, -best.rank AS relevance"
            " FROM (SELECT rowid, rank FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?) AS best"
            " JOIN chunks AS c ON c.id = best.rowid ORDER BY best.rank, c.path, c.line_start",
            (ranking.match_expression(words), max_results + TIE_MARGIN),
        ).fetchall()
        if not rows:
            return []
        best = float(rows[0][4])
        scored = [(ranking.score(float(r[4]), best), str(r[0]), int(r[1]), int(r[2]), str(r[3])) for r in rows]
        scored.sort(key=lambda s: (-s[0], s[1], s[2]))
        hits: list[Hit] = []
        for value, path, start, end, text in scored[:max_results]:
            if value < min_score:
                break
            hits.append(Hit(path, value, snippet(Chunk(start, end, text), words, snippet_chars)))
        return hits
