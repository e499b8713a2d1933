"""The collector's view of a loaded server: long-lived objects frozen after each load."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from mlcycle.serve.heap import freeze_after_load


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_objects_alive_at_load_are_frozen_and_garbage_is_not() -> None:
    model = [{"node": i} for i in range(1000)]
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    frozen = freeze_after_load()
    assert frozen == gc.get_freeze_count() >= 1000
    # The cycle was collected first, not frozen: nothing frozen is unreachable.
    gc.unfreeze()
    assert gc.collect() == 0
    assert model[0] == {"node": 0}
