"""The garbage collector's settings in a serving process.

Start-up leaves about 150,000 long-lived objects (modules, the contract's descriptors, SQLAlchemy's
tables and compiled statements, the routes). CPython's collector walks all of them on every full
collection: measured under `POST /api/v1/runs` load, 7 full collections in 12 s took about 140 ms each,
10 % of the process's CPU and its worst latency spikes (p99 255 ms against p50 96 ms). A request allocates
a few thousand short-lived containers, so at the default young threshold (700) the young generation is
collected several times per request as well.

`settle()` runs once start-up is done: it freezes what exists (moved to a permanent generation the
collector skips; those objects live as long as the process anyway) and collects the young generation
every YOUNG_THRESHOLD allocations. Measured the same way: collection time 1.5 s -> 0.23 s, CPU per run
-15 %, p99 -50 %. Garbage cycles are still collected, only less often.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 7_000


def settle() -> None:
    """Freeze start-up's objects and collect the young generation less often (see the module's notes)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
