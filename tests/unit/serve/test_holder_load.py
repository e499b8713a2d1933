"""The first model load is retried with growing waits while the registry is away, and a
stopped holder starts no further attempt."""

from __future__ import annotations

import gc
import itertools
import time
from collections.abc import Callable
from types import SimpleNamespace

from mlcycle.serve.holder import ModelHolder, ModelSource
from mlcycle.serve.options import ServeOptions


class Flaky:
    """A model source whose first ``fails`` loads raise, as when the registry is down."""

    def __init__(self, fails: int) -> None:
        self.fails = fails
        self.times: list[float] = []

    def load(self) -> object:
        self.times.append(time.monotonic())
        if len(self.times) <= self.fails:
            raise ConnectionError("registry unavailable")
        return SimpleNamespace(version="1")


def _wait(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_the_first_load_is_retried_with_doubling_waits_until_it_succeeds() -> None:
    flaky = Flaky(fails=3)
    holder = ModelHolder(ModelSource(flaky.load), ServeOptions(reload_interval=0.05))
    try:
        holder.start()
        _wait(lambda: holder.champion is not None)
    finally:
        holder.stop()
        gc.unfreeze()
    waits = [b - a for a, b in itertools.pairwise(flaky.times)]
    assert len(flaky.times) == 4
    assert waits[0] >= 0.05 and waits[1] >= 0.1 and waits[2] >= 0.2
    assert holder.load_error is None and holder.champion.version == "1"


def test_a_stopped_holder_makes_no_further_attempt() -> None:
    flaky = Flaky(fails=100)
    holder = ModelHolder(ModelSource(flaky.load), ServeOptions(reload_interval=30))
    holder.start()
    _wait(lambda: holder.load_error is not None)
    holder.stop()
    for t in holder._threads:
        t.join(5)
        assert not t.is_alive()
    assert len(flaky.times) == 1
    assert holder.load_error == "ConnectionError: registry unavailable"
