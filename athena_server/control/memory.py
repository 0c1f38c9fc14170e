"""Memory search and reads for the API, and the memory a run's context recalls.

Blocking work (walking the workspace, reading files, SQLite) runs off the event loop: the index on one
thread of its own (it owns the index connection; refresh and search are short), reads of line windows on
the default thread pool. Memory is on by default (`ATHENA_MEMORY_ENABLED`, the architecture's rule; the
original had it off); switched off, search finds nothing and get is CONFIG_ERROR `memory is disabled`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from athena.v1 import memory_pb2
from athena_server.config import Settings
from athena_server.engine.context import memory_block
from athena_server.errors import config_error
from athena_server.memory.index import Hit, MemoryIndex
from athena_server.memory.paths import Workspace, normalise, open_lines

log = logging.getLogger(__name__)

INDEX_FILE = "memory-index.db"
MAX_RESULTS_LIMIT = 100
# The most text one get answers with (lines past it are left for the next window); well inside gRPC's
# 4 MiB message limit and the REST page budget.
MAX_GET_BYTES = 512 * 1024


def citation(path: str, start: int, end: int) -> str:
    return f"{path}#L{start}" if start == end else f"{path}#L{start}-L{end}"


def hit_message(hit: Hit) -> memory_pb2.MemoryHit:
    start, end = hit.shown.line_start, hit.shown.line_end
    return memory_pb2.MemoryHit(
        id=f"{hit.path}:{start}",
        source_path=hit.path,
        snippet=hit.shown.text,
        score=hit.score,
        line_start=start,
        line_end=end,
        citation=citation(hit.path, start, end),
    )


class MemoryService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workspace = Workspace(settings.workspace or Path.cwd())
        self._db_path = settings.data_dir / INDEX_FILE
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="athena-memory")
        self._index: MemoryIndex | None = None
        # When the last refresh began (monotonic), on the index thread.
        self._refreshed_at: float | None = None
        self._default_results = max(1, min(MAX_RESULTS_LIMIT, settings.memory_max_results))

    # ---- API ----------------------------------------------------------------------------------------

    async def search(self, req: memory_pb2.SearchMemoryRequest) -> memory_pb2.SearchMemoryResponse:
        query = req.query.strip()
        if not query:
            raise config_error("memory.search.query must be a non-empty string.")
        max_results = self._default_results
        if req.HasField("max_results"):
            if not 1 <= req.max_results <= MAX_RESULTS_LIMIT:
                raise config_error(f"memory.search.maxResults must be between 1 and {MAX_RESULTS_LIMIT}.")
            max_results = req.max_results
        min_score = 0.0
        if req.HasField("min_score"):
            if not (math.isfinite(req.min_score) and 0 <= req.min_score <= 1):
                raise config_error("memory.search.minScore must be a number between 0 and 1.")
            min_score = req.min_score
        if not self.settings.memory_enabled:
            return memory_pb2.SearchMemoryResponse(results=[])
        hits = await self._search(query, max_results, min_score)
        return memory_pb2.SearchMemoryResponse(results=[hit_message(h) for h in hits])

    async def get(self, req: memory_pb2.GetMemoryRequest) -> memory_pb2.GetMemoryResponse:
        path = normalise(req.path, "memory.get")
        first = 1
        if req.HasField("from_line"):
            if req.from_line < 1:
                raise config_error("memory.get.from must be a positive integer.")
            first = req.from_line
        count: int | None = None
        if req.HasField("lines"):
            if req.lines < 1:
                raise config_error("memory.get.lines must be a positive integer.")
            count = req.lines
        if not self.settings.memory_enabled:
            raise config_error("memory is disabled")
        return await asyncio.to_thread(self._window, path, first, count)

    def _window(self, path: str, first: int, count: int | None) -> memory_pb2.GetMemoryResponse:
        """Lines `first`..`first+count-1` (those that exist and fit `MAX_GET_BYTES`); `lineEnd` is the last
        line returned, so a window past the end is empty with `lineEnd = from - 1`."""
        real = self.workspace.locate(path)
        stop = None if count is None else first - 1 + count
        taken: list[str] = []
        size = 0
        for line in itertools.islice(open_lines(real, path), first - 1, stop):
            cost = len(line.encode()) + 1
            if size + cost > MAX_GET_BYTES:
                if not taken:  # one line longer than the budget: its head
                    taken.append(line.encode()[:MAX_GET_BYTES].decode(errors="ignore"))
                break
            taken.append(line)
            size += cost
        return memory_pb2.GetMemoryResponse(
            path=path, text="\n".join(taken), line_start=first, line_end=first + len(taken) - 1
        )

    # ---- runs ---------------------------------------------------------------------------------------

    async def recall(self, text: str, budget: int) -> list[tuple[str, str]]:
        """(citation, snippet) of the best hits for a run's input, best first, whose context blocks fit
        `budget` characters together. A failing index costs the run its memory, not the run: logged."""
        if not self.settings.memory_enabled or budget <= 0 or not text.strip():
            return []
        try:
            hits = await self._search(text, self._default_results, 0.0)
        except (OSError, sqlite3.Error):
            log.exception("memory recall failed; the run goes on without memory")
            return []
        recalled: list[tuple[str, str]] = []
        size = 0
        for hit in hits:
            cite = citation(hit.path, hit.shown.line_start, hit.shown.line_end)
            extra = len(memory_block(cite, hit.shown.text)) + (2 if recalled else 0)
            if size + extra <= budget:
                recalled.append((cite, hit.shown.text))
                size += extra
        return recalled

    # ---- the index ----------------------------------------------------------------------------------

    async def _search(self, query: str, max_results: int, min_score: float) -> list[Hit]:
        asked = time.monotonic()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._search_sync, query, max_results, min_score, asked)

    def _search_sync(self, query: str, max_results: int, min_score: float, asked: float) -> list[Hit]:
        """Refresh, then search. A refresh that began after this search was asked for already saw every
        change made before it, so a burst of searches shares one walk of the files; with
        `memory_refresh_seconds` > 0 a refresh younger than that is reused too."""
        index = self._open()
        last = self._refreshed_at
        interval = self.settings.memory_refresh_seconds
        if last is None or (last < asked and (interval <= 0 or asked - last >= interval)):
            self._refreshed_at = time.monotonic()
            index.refresh()
        return index.search(query, max_results, min_score, self.settings.memory_max_snippet_chars)

    def _open(self) -> MemoryIndex:
        if self._index is None:
            self._index = MemoryIndex(self._db_path, self.workspace, self.settings.memory_max_file_bytes)
        return self._index

    async def close(self) -> None:
        def shut() -> None:
            if self._index is not None:
                self._index.close()
                self._index = None

        await asyncio.get_running_loop().run_in_executor(self._thread, shut)
        self._thread.shutdown(wait=False)
