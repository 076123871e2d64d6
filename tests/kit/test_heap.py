"""The start-up heap is frozen out of the cyclic collector's passes (in this process)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from shopflow_kit.heap import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_live_objects_are_frozen_and_garbage_is_collected_first(unfrozen: None) -> None:
    kept = [_Node() for _ in range(1000)]
    garbage = _Node()
    gone = weakref.ref(garbage)
    del garbage

    frozen = freeze_startup_heap()

    assert gone() is None, "a cycle that was garbage before the freeze must be collected"
    assert frozen == gc.get_freeze_count() >= len(kept)
    # A full collection now passes over the frozen objects: none is in any generation.
    tracked = {id(o) for o in gc.get_objects()}
    assert not any(id(node) in tracked for node in kept)


def test_objects_made_after_the_freeze_are_still_collected(unfrozen: None) -> None:
    freeze_startup_heap()
    late = _Node()
    gone = weakref.ref(late)
    del late
    gc.collect()
    assert gone() is None
