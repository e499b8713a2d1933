"""The one retry policy: doubling waits, a stop event that ends it at once, a time budget."""

from __future__ import annotations

import itertools
import threading
import time

from mlcycle.retry import retry


def test_it_tries_until_an_attempt_succeeds_waiting_longer_each_time() -> None:
    calls: list[float] = []

    def attempt() -> bool:
        calls.append(time.monotonic())
        return len(calls) == 4

    assert retry(attempt, first_delay=0.02, max_delay=0.05, stop=threading.Event())
    waits = [b - a for a, b in itertools.pairwise(calls)]
    assert len(calls) == 4
    assert waits[0] >= 0.02 and waits[1] >= 0.04 and waits[2] >= 0.05


def test_a_zero_first_delay_means_one_attempt() -> None:
    calls = []
    assert not retry(lambda: calls.append(1) or False, first_delay=0, max_delay=1)
    assert calls == [1]


def test_setting_the_stop_event_ends_the_wait_and_starts_no_new_attempt() -> None:
    stop = threading.Event()
    calls = []
    done: list[bool] = []
    t = threading.Thread(
        target=lambda: done.append(
            retry(lambda: calls.append(1) or False, first_delay=60, max_delay=60, stop=stop)
        )
    )
    t.start()
    time.sleep(0.1)
    stop.set()
    t.join(5)
    assert done == [False]
    assert calls == [1]


def test_it_gives_up_when_the_next_attempt_would_start_past_the_budget() -> None:
    calls = []
    started = time.monotonic()
    assert not retry(lambda: calls.append(1) or False, first_delay=0.05, max_delay=1, budget=0.2)
    # Attempts at 0, 0.05, 0.15; the next would start at 0.35, past the budget.
    assert len(calls) == 3
    assert time.monotonic() - started < 0.3
