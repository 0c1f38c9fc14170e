"""Memory search: latency over a generated corpus, and what following one changed file costs.

    .venv/bin/python bench/memory.py                      # 10,000 files, 50 MB (the issue's corpus)
    .venv/bin/python bench/memory.py --files 1000 --mb 5  # smaller

The corpus is `memory/**/*.md` files of lines drawn from a Zipf-distributed vocabulary of made-up words
(so some words are in most chunks and most in few, as in prose). The index is the server's own
(`athena_server.memory.index.MemoryIndex`), driven in-process as the memory service's thread drives it,
so the figures leave out gRPC/REST (see NOTES for what those add per request). Reported:

- the full build (first refresh: walk, read, chunk, FTS5 insert of every file);
- search p50/p99 with the default check of the files before each search (`ATHENA_MEMORY_REFRESH_SECONDS=0`)
  and without it (a refresh interval > 0 between checks), over queries of 1-3 words;
- after one file changes: the first search (the walk, one file re-read and re-indexed, the search) against
  the full build.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from athena_server.memory.index import MemoryIndex
from athena_server.memory.paths import Workspace

OLD = 1_600_000_000


def words(rng: random.Random, n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choices(letters, k=rng.randint(3, 9))) for _ in range(n)]


def generate(root: Path, files: int, total_mb: float, rng: random.Random) -> tuple[list[str], int]:
    vocab = words(rng, 20_000)
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    per_file = int(total_mb * 1024 * 1024 / files)
    size = 0
    # One pool of words, sliced per file: drawing 7M weighted words one file at a time is what takes long.
    pool = rng.choices(vocab, weights=weights, k=per_file // 7 * 50)
    for i in range(files):
        start = rng.randrange(0, len(pool) - per_file // 7)
        chosen = pool[start : start + per_file // 7]
        lines = [" ".join(chosen[j : j + 12]) for j in range(0, len(chosen), 12)]
        text = f"# note {i}\n" + "\n".join(lines) + "\n"
        path = root / "memory" / f"d{i % 100:02d}" / f"note-{i}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.utime(path, (OLD, OLD))
        size += len(text)
    return vocab, size


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--mb", type=float, default=50.0)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="athena-memory-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        vocab, size = generate(root, args.files, args.mb, rng)
        print(f"corpus: {args.files} files, {size / 1024 / 1024:.1f} MB ({time.perf_counter() - started:.1f} s)")
        index = MemoryIndex(root / ".athena" / "memory-index.db", Workspace(root), 10 * 1024 * 1024)

        started = time.perf_counter()
        stats = index.refresh()
        build = time.perf_counter() - started
        chunks = index.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        print(f"full build: {build:.2f} s ({stats.read} files read, {chunks} chunks)")

        queries = [" ".join(rng.choices(vocab[:5000], k=rng.randint(1, 3))) for _ in range(args.queries)]
        for label, refresh in (("check files before each search", True), ("no file check (refresh interval)", False)):
            timings: list[float] = []
            for q in queries:
                t0 = time.perf_counter()
                if refresh:
                    index.refresh()
                index.search(q, 6, 0.0, 700)
                timings.append((time.perf_counter() - t0) * 1000)
            print(
                f"search, {label}: p50 {statistics.median(timings):.1f} ms, p99 {percentile(timings, 99):.1f} ms"
                f" ({len(queries)} queries)"
            )

        walk = []
        for _ in range(5):
            t0 = time.perf_counter()
            index.refresh()
            walk.append((time.perf_counter() - t0) * 1000)
        print(f"refresh with nothing changed (walk + stat of every file): median {statistics.median(walk):.1f} ms")

        changed = root / "memory" / "d07" / "note-7.md"
        changed.write_text(changed.read_text() + "zzyzx appended line\n")
        os.utime(changed, (OLD + 60, OLD + 60))
        t0 = time.perf_counter()
        after = index.refresh()
        hits = index.search("zzyzx", 6, 0.0, 700)
        first = time.perf_counter() - t0
        assert [h.path for h in hits] == ["memory/d07/note-7.md"], hits
        print(
            f"first search after one file changed: {first * 1000:.1f} ms ({after.read} file read,"
            f" {after.reindexed} re-indexed) vs full build {build * 1000:.0f} ms ({build / first:.0f}x)"
        )
        index.close()


if __name__ == "__main__":
    main()
