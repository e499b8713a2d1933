"""Micro-batching: concurrent requests share one model call.

API: :class:`MicroBatcher`, :class:`Shed`.

Requests queue their validated columns; one task takes what is queued (up to
``max_rows``), waits at most ``max_wait`` seconds for more *only while other requests are
still being parsed* (so a lone client pays no wait), predicts once on a worker thread and
hands each request its slice and the predictor that produced it. A request that timed out
before its batch started is skipped, so timed-out work does not pile up.
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


@dataclass(eq=False)
class _Item:
    columns: dict[str, np.ndarray]
    n: int
    future: asyncio.Future[tuple[np.ndarray, Any]] = field(repr=False)
    method: str = "predict"


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


class MicroBatcher:
    """Collects requests into batches for ``get_predictor().predict``."""

    def __init__(
        self,
        get_predictor: Callable[[], Any],
        *,
        max_rows: int = DEFAULTS.max_batch_rows,
        max_wait: float = DEFAULTS.max_wait,
        max_queue_rows: int = DEFAULTS.max_queue_rows,
        on_batch: Callable[[int, int, np.ndarray, Any], None] | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.get_predictor = get_predictor
        self.max_rows = max_rows
        self.max_wait = max_wait
        self.max_queue_rows = max_queue_rows
        self.on_batch = on_batch
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
        self, columns: dict[str, np.ndarray], n: int, method: str = "predict"
    ) -> asyncio.Future[tuple[np.ndarray, Any]]:
        """Queue one request; the future gives ``(predictions, predictor)``.

        ``method`` is the predictor's method to call (``predict`` or ``predict_proba``); a
        batch only holds requests for the same one.

        Raises:
            Shed: the queue already holds ``max_queue_rows`` rows.
        """
        if self.queued_rows + n > self.max_queue_rows and self.queued_rows:
            raise Shed("saturated")
        fut: asyncio.Future[tuple[np.ndarray, Any]] = asyncio.get_running_loop().create_future()
        self.queue.append(_Item(columns, n, fut, method))
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
            if batch and (rows + item.n > self.max_rows or item.method != batch[0].method):
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
        loop = asyncio.get_running_loop()
        predictor = self.get_predictor()
        columns = concat_columns([it.columns for it in batch])
        rows = sum(it.n for it in batch)
        try:
            fn = getattr(predictor, batch[0].method)
            preds = await loop.run_in_executor(self.executor, fn, columns)
        except Exception as exc:
            if len(batch) > 1:
                # One request must not fail its neighbours: score them one by one.
                for it in batch:
                    await self._run([it])
                return
            if not batch[0].future.done():
                batch[0].future.set_exception(exc)
            return
        if self.on_batch is not None:
            self.on_batch(len(batch), rows, preds, predictor)
        start = 0
        for it in batch:
            if not it.future.done():
                it.future.set_result((preds[start : start + it.n], predictor))
            start += it.n
