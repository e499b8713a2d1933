"""Fixtures of the registry tests: small linear models trained into the test's own store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from registry_helpers import train_small

from mlcycle.data import make_scenario


@pytest.fixture
def client() -> Any:
    """A client on the store the autouse fixture pointed mlflow at."""
    import mlflow
    from mlflow import MlflowClient

    return MlflowClient(mlflow.get_tracking_uri())


@pytest.fixture(scope="session")
def scenario_frame() -> pd.DataFrame:
    return make_scenario(2000, period="reference", seed=3)


@pytest.fixture
def train_run(tmp_path: Path, scenario_frame: pd.DataFrame) -> Callable[..., str]:
    """Train a small linear model; returns its run id."""

    def _train(drop: tuple[str, ...] = (), frame: pd.DataFrame | None = None) -> str:
        return train_small(scenario_frame if frame is None else frame, tmp_path, drop)

    return _train
