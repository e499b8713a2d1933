"""A failed training run is marked FAILED even when the tracking store is away for a while."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from mlflow import MlflowClient

from mlcycle.train.core import _EndsFailed


class StoreAway(MlflowClient):
    """A real client whose store refuses the first ``away`` reads (an outage, then back)."""

    def __init__(self, away: int) -> None:
        super().__init__()
        self.away = away
        self.calls = 0

    def get_run(self, run_id: str) -> Any:
        self.calls += 1
        if self.calls <= self.away:
            raise ConnectionError("tracking store unavailable")
        return super().get_run(run_id)


def _failing_run(client: MlflowClient) -> str:
    experiment = client.create_experiment("cleanup")
    return str(client.create_run(experiment).info.run_id)


def test_the_run_ends_failed_once_the_store_is_back() -> None:
    client = StoreAway(away=2)
    run_id = _failing_run(client)
    with pytest.raises(RuntimeError), _EndsFailed(client, budget=30) as ends:
        ends.run_id = run_id
        raise RuntimeError("the fit failed")
    assert client.calls == 3  # two refusals, waits of 1 s and 2 s, then the store answered
    assert MlflowClient().get_run(run_id).info.status == "FAILED"


def test_it_gives_up_after_its_budget_and_says_the_run_may_stay_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = StoreAway(away=100)
    run_id = _failing_run(client)
    with (
        caplog.at_level(logging.ERROR, logger="mlcycle.train.core"),
        pytest.raises(RuntimeError),
        _EndsFailed(client, budget=2.5) as ends,
    ):
        ends.run_id = run_id
        raise RuntimeError("the fit failed")
    assert client.calls == 2  # at 0 s and 1 s; the next (at 3 s) is past the budget
    assert f"run {run_id} may be left RUNNING: tracking store unavailable" in caplog.text
    assert MlflowClient().get_run(run_id).info.status == "RUNNING"
