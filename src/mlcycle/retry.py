"""The one retry policy: try, then wait twice as long after each failure (``tenacity``).

API: :func:`retry`.

Used where a service mlcycle needs may be away for a while: the server's first model load
(the registry is down, nothing is promoted yet) and marking a failed training run FAILED
(the tracking store is down). Each caller decides what one attempt is and logs its failures.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tenacity import (
    Retrying,
    retry_if_result,
    stop_any,
    stop_before_delay,
    stop_when_event_set,
    wait_exponential,
)
from tenacity.stop import stop_base


def retry(
    attempt: Callable[[], bool],
    *,
    first_delay: float,
    max_delay: float,
    stop: threading.Event | None = None,
    budget: float | None = None,
) -> bool:
    """Call ``attempt`` until it returns ``True``, waiting ``first_delay`` seconds after the
    first failure and twice as long after each next one, at most ``max_delay``.

    Args:
        attempt: one try; ``True`` when it succeeded. It handles (and logs) its own errors.
        first_delay: the first wait; 0 means a single attempt.
        max_delay: the longest wait.
        stop: when set, waiting ends at once and no further attempt is made.
        budget: give up when the next attempt would start more than this many seconds after
            the first one.

    Returns:
        ``True`` when an attempt succeeded; ``False`` when stopped, out of budget, or the
        single attempt of ``first_delay`` 0 failed.
    """
    if not first_delay:
        return attempt()
    event = stop if stop is not None else threading.Event()
    stops: list[stop_base] = [stop_when_event_set(event)]
    if budget is not None:
        stops.append(stop_before_delay(budget))

    def wait(seconds: float) -> None:
        event.wait(seconds)

    retrying = Retrying(
        retry=retry_if_result(lambda ok: not ok),
        wait=wait_exponential(multiplier=first_delay, max=max_delay),
        stop=stop_any(*stops),
        # Waiting on the event wakes at once when the caller stops; the attempt after the
        # wake is skipped then, so a stopped caller starts no new load.
        sleep=wait,
        retry_error_callback=lambda _state: False,
    )
    return bool(retrying(lambda: not event.is_set() and attempt()))
