"""Micro-batching: concurrent requests share one model call.

API: :class:`MicroBatcher`, :class:`Shed`.

Requests queue their validated columns; one task takes what is queued (up to
``max_rows``), waits at most ``max_wait`` seconds for more *only while other requests are
still being parsed* (so a lone client pays no wait), predicts once on a worker thread and
hands each request its slice and the predictor that produced it. A request that timed out
before its batch started is skipped, so timed-out work does not pile up.

A batcher can serve several *arms* (a canary's champion and challenger): they share the
queue, the wait and the predict thread, and one turn calls each arm's model once on its
rows. With separate batchers a 10 % arm's one-row batches cost a model call, a thread
hand-off and a wake-up of their own, and the server made ~1.7x the calls of one model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlcycle.serve.options import DEFAULTS

logger = logging.getLogger(__name__)


class Shed(Exception):
    """The request was not scored: queue full or deadline passed (answer 503)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: Callback after each model call: ``(n_requests, rows, predictions, predictor)``.
OnBatch = Callable[[int, int, np.ndarray, Any], None]


@dataclass(eq=False)
class _Item:
    columns: dict[str, np.ndarray]
    n: int
    future: asyncio.Future[tuple[np.ndarray, Any]] = field(repr=False)
    method: str = "predict"
    arm: str = ""


@dataclass(frozen=True)
class _Arm:
    get_predictor: Callable[[], Any]
    on_batch: OnBatch | None


def concat_columns(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Columns of several requests stacked in order."""
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _single_native_thread() -> None:
    """Make the model calls of this (the predict) thread single-threaded in OpenMP and BLAS.

    The server runs calls in parallel across requests and ``--workers``, never inside one
    call. Left alone, HistGradientBoosting's OpenMP threads spin for cores that other
    processes hold: on a busy 2-core machine a 25-row call took 50-100 ms instead of 5 ms.
    """
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    threadpool_limits(1)


def _call_groups(calls: list[tuple[Any, str, dict[str, np.ndarray]]]) -> list[Any]:
    """Run ``predictor.method(columns)`` calls one after another (on the predict thread); an
    exception is returned in place of its call's predictions, so one arm's failure leaves
    the other's result."""
    out: list[Any] = []
    for predictor, method, columns in calls:
        try:
            out.append(getattr(predictor, method)(columns))
        except Exception as exc:
            out.append(exc)
    return out


class MicroBatcher:
    """Collects requests into batches for ``get_predictor().predict``.

    ``get_predictor`` and ``on_batch`` are the first arm, named ``arm``; :meth:`add_arm` adds
    others, and :meth:`submit` names the arm a request is for.
    """

    def __init__(
        self,
        get_predictor: Callable[[], Any],
        *,
        max_rows: int = DEFAULTS.max_batch_rows,
        max_wait: float = DEFAULTS.max_wait,
        max_queue_rows: int = DEFAULTS.max_queue_rows,
        on_batch: OnBatch | None = None,
        executor: ThreadPoolExecutor | None = None,
        arm: str = "",
    ) -> None:
        self.default_arm = arm
        self._arms: dict[str, _Arm] = {arm: _Arm(get_predictor, on_batch)}
        self.max_rows = max_rows
        self.max_wait = max_wait
        self.max_queue_rows = max_queue_rows
        self.queue: deque[_Item] = deque()
        self.queued_rows = 0
        #: Requests accepted but not yet queued (being read or parsed): worth waiting for.
        self.arriving = 0
        self.busy = False
        self._wake = asyncio.Event()
        #: The predict thread; another batcher's when given (its owner shuts it down).
        self.executor = executor or ThreadPoolExecutor(
            1, thread_name_prefix="predict", initializer=_single_native_thread
        )
        self._owns_executor = executor is None
        self._task: asyncio.Task[None] | None = None

    def add_arm(
        self, name: str, get_predictor: Callable[[], Any], on_batch: OnBatch | None = None
    ) -> None:
        """Serve another model from the same queue and predict thread."""
        if name in self._arms:
            raise ValueError(f"arm {name!r} exists already")
        self._arms[name] = _Arm(get_predictor, on_batch)

    def start(self) -> None:
        """Start the batching task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        while self.queue or self.busy:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._owns_executor:
            self.executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        """Rows waiting for a model call."""
        return self.queued_rows

    def submit(
        self,
        columns: dict[str, np.ndarray],
        n: int,
        method: str = "predict",
        arm: str | None = None,
    ) -> asyncio.Future[tuple[np.ndarray, Any]]:
        """Queue one request; the future gives ``(predictions, predictor)``.

        ``method`` is the predictor's method to call (``predict`` or ``predict_proba``) and
        ``arm`` the model (default: the first); one model call holds the rows of one pair.

        Raises:
            Shed: the queue already holds ``max_queue_rows`` rows.
            KeyError: no such arm.
        """
        arm = self.default_arm if arm is None else arm
        if arm not in self._arms:
            raise KeyError(f"no arm {arm!r}")
        if self.queued_rows + n > self.max_queue_rows and self.queued_rows:
            raise Shed("saturated")
        fut: asyncio.Future[tuple[np.ndarray, Any]] = asyncio.get_running_loop().create_future()
        self.queue.append(_Item(columns, n, fut, method, arm))
        self.queued_rows += n
        self._wake.set()
        return fut

    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        rows = 0
        while self.queue:
            item = self.queue[0]
            if item.future.done():  # timed out while queued: drop its work
                self.queue.popleft()
                self.queued_rows -= item.n
                continue
            if batch and rows + item.n > self.max_rows:
                break
            self.queue.popleft()
            self.queued_rows -= item.n
            batch.append(item)
            rows += item.n
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
            if self.max_wait > 0 and self.arriving > 0 and self.queued_rows < self.max_rows:
                # Others are mid-parse: a short wait lets them join this batch.
                deadline = loop.time() + self.max_wait
                while self.arriving > 0 and self.queued_rows < self.max_rows:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), remaining)
                    except TimeoutError:
                        break
            batch = self._take()
            if not batch:
                continue
            self.busy = True
            try:
                await self._run(batch)
            finally:
                self.busy = False

    async def _run(self, batch: list[_Item]) -> None:
        """One turn: each (arm, method) of the batch in one model call, all in one hand-off
        to the predict thread."""
        groups: dict[tuple[str, str], list[_Item]] = {}
        for it in batch:
            groups.setdefault((it.arm, it.method), []).append(it)
        predictors = {arm: self._arms[arm].get_predictor() for arm, _ in groups}
        calls = [
            (predictors[arm], method, concat_columns([it.columns for it in items]))
            for (arm, method), items in groups.items()
        ]
        results = await asyncio.get_running_loop().run_in_executor(
            self.executor, _call_groups, calls
        )
        for ((arm, _), items), preds in zip(groups.items(), results, strict=True):
            predictor = predictors[arm]
            if isinstance(preds, Exception):
                if len(items) > 1:
                    # One request must not fail its neighbours: score them one by one.
                    for it in items:
                        await self._run([it])
                elif not items[0].future.done():
                    items[0].future.set_exception(preds)
                continue
            on_batch = self._arms[arm].on_batch
            if on_batch is not None:
                on_batch(len(items), sum(it.n for it in items), preds, predictor)
            start = 0
            for it in items:
                if not it.future.done():
                    it.future.set_result((preds[start : start + it.n], predictor))
                start += it.n
