"""A serving process's collector settings (athena_server/heap.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from athena_server import heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_freezes_start_up_objects_and_raises_only_the_young_threshold(restored_collector: None) -> None:
    _, middle, old = gc.get_threshold()
    kept = {"start-up": ["state"]}
    heap.settle()
    assert gc.get_freeze_count() > 0
    # Frozen: no generation the collector walks holds it any more.
    assert not any(o is kept for o in gc.get_objects())
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, middle, old)


def test_cycles_made_after_settle_are_still_collected(restored_collector: None) -> None:
    heap.settle()

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2
