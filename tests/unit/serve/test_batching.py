"""The micro-batcher's predict thread."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import sklearn.ensemble  # noqa: F401  (loads scikit-learn's OpenMP runtime)
from threadpoolctl import threadpool_info

from mlcycle.serve.batching import MicroBatcher


def test_models_run_single_threaded_on_the_predict_thread() -> None:
    seen: list[tuple[str, int]] = []

    class Predictor:
        def predict(self, columns: dict[str, Any]) -> np.ndarray:
            seen.extend((i["user_api"], i["num_threads"]) for i in threadpool_info())
            return np.zeros(len(columns["x"]))

    async def score() -> np.ndarray:
        batcher = MicroBatcher(Predictor)
        batcher.start()
        preds, _ = await batcher.submit({"x": np.arange(3.0)}, 3)
        await batcher.stop()
        return preds

    assert len(asyncio.run(score())) == 3
    assert ("openmp", 1) in seen
    assert all(n == 1 for _, n in seen), seen
