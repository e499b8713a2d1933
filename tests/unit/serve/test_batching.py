"""The micro-batcher's predict thread."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
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


class _Const:
    """A predictor answering ``value`` for every row, counting its calls."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.calls: list[int] = []

    def predict(self, columns: dict[str, Any]) -> np.ndarray:
        if self.value < 0:
            raise ValueError("refused")
        self.calls.append(len(columns["x"]))
        return np.full(len(columns["x"]), self.value)


def test_one_turn_scores_both_arms_with_one_call_each() -> None:
    champion, challenger = _Const(1.0), _Const(2.0)
    batches: list[tuple[str, int, int]] = []

    async def score() -> list[tuple[np.ndarray, Any]]:
        batcher = MicroBatcher(
            lambda: champion,
            max_wait=0,
            on_batch=lambda n, rows, *_: batches.append(("champion", n, rows)),
            arm="champion",
        )
        batcher.add_arm(
            "challenger",
            lambda: challenger,
            lambda n, rows, *_: batches.append(("challenger", n, rows)),
        )
        # Queued before the batching task runs: all six land in its first turn.
        arms = ["champion", "challenger", "champion", "champion", "challenger", "champion"]
        futures = [batcher.submit({"x": np.arange(2.0)}, 2, arm=a) for a in arms]
        batcher.start()
        out = list(await asyncio.gather(*futures))
        await batcher.stop()
        return out

    out = asyncio.run(score())
    assert [p.tolist() for p, _ in out] == [[1, 1], [2, 2], [1, 1], [1, 1], [2, 2], [1, 1]]
    assert [used for _, used in out] == [
        champion,
        challenger,
        champion,
        champion,
        challenger,
        champion,
    ]
    assert champion.calls == [8] and challenger.calls == [4]
    assert sorted(batches) == [("challenger", 2, 4), ("champion", 4, 8)]


def test_a_failing_arm_leaves_the_other_arms_requests_answered() -> None:
    champion, broken = _Const(1.0), _Const(-1.0)

    async def score() -> tuple[Any, Any]:
        batcher = MicroBatcher(lambda: champion, max_wait=0, arm="champion")
        batcher.add_arm("challenger", lambda: broken)
        good = batcher.submit({"x": np.arange(3.0)}, 3, arm="champion")
        bad = batcher.submit({"x": np.arange(1.0)}, 1, arm="challenger")
        batcher.start()
        out = await asyncio.gather(good, bad, return_exceptions=True)
        await batcher.stop()
        return out[0], out[1]

    good, bad = asyncio.run(score())
    assert good[0].tolist() == [1, 1, 1]
    assert isinstance(bad, ValueError)


def test_a_request_for_an_unknown_arm_is_refused() -> None:
    async def submit() -> None:
        MicroBatcher(lambda: _Const(1.0)).submit({"x": np.arange(1.0)}, 1, arm="nope")

    with pytest.raises(KeyError, match="nope"):
        asyncio.run(submit())
