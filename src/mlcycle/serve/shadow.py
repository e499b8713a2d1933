"""Shadow scoring: ``@challenger`` scores copies of answered requests; it answers nobody.

API: :class:`ShadowScorer`, :func:`log_kinds`.

The copies go to their own :class:`~mlcycle.serve.batching.MicroBatcher` (no wait: the
response has already left), and their predictions to the inference log with role ``shadow``
under the champion's record ids, so monitoring can pair the two models record by record. A
full shadow queue drops the copy (counted as ``shadow_saturated``), never the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from mlcycle.inference_log import InferenceLog, LogItem
from mlcycle.serve.batching import MicroBatcher, Shed
from mlcycle.serve.metrics import ServeMetrics

logger = logging.getLogger(__name__)


def log_kinds(predictor: Any) -> tuple[tuple[str, str], ...]:
    """``(column, MLflow type)`` of the predictor's signature, cached on it."""
    kinds = getattr(predictor, "_log_kinds", None)
    if kinds is None:
        kinds = tuple((c.name, c.kind) for c in predictor.schema.columns)
        with contextlib.suppress(AttributeError):  # slotted test doubles
            predictor._log_kinds = kinds
    return kinds


class ShadowScorer:
    """Scores copies of requests on the predictor ``get_predictor`` returns."""

    def __init__(
        self,
        get_predictor: Callable[[], Any],
        metrics: ServeMetrics,
        log: InferenceLog | None,
        *,
        max_rows: int,
        max_queue_rows: int,
    ) -> None:
        self.metrics = metrics
        self.log = log
        self.batcher = MicroBatcher(
            get_predictor,
            max_rows=max_rows,
            max_wait=0,
            max_queue_rows=max_queue_rows,
            on_batch=self._on_batch,
        )
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start the batcher on the running loop."""
        self.batcher.start()

    async def stop(self) -> None:
        """Let the copies in flight finish (5 s at most), then stop the batcher."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self.batcher.stop()

    def _on_batch(self, n_requests: int, rows: int, preds: Any, predictor: Any) -> None:
        self.metrics.observe_predictions(
            "shadow", str(predictor.version), preds, predictor.is_classifier
        )

    def score(self, rid: str, ts_us: int, columns: Any, n: int, uid: str) -> None:
        """Queue a copy of a request the champion answered (records ``uid-0``…)."""
        try:
            fut = self.batcher.submit(columns, n)
        except Shed:
            self.metrics.shed.labels("shadow_saturated").inc()
            return

        async def finish() -> None:
            try:
                preds, used = await fut
            except Exception:
                logger.warning("shadow scoring failed", exc_info=True)
                return
            if self.log is not None:
                self.log.append(
                    LogItem(
                        rid,
                        ts_us,
                        used.name,
                        str(used.version),
                        "shadow",
                        columns,
                        log_kinds(used),
                        preds,
                        uid,
                    )
                )

        task = asyncio.get_running_loop().create_task(finish())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
