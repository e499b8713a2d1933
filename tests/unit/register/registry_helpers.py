"""Helpers of the registry tests (imported by the tests of this directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mlcycle.data import SCENARIO_TARGET

# Informative columns; a model trained without them is a weaker, schema-compatible challenger.
WEAK_DROP = ("tenure_months", "support_calls", "contract")


def train_small(frame: pd.DataFrame, workdir: Path, drop: tuple[str, ...] = ()) -> str:
    """Train a small linear model into the current store; returns its run id."""
    import mlflow
    from mlflow import MlflowClient

    from mlcycle.train import TrainConfig, train

    cfg = TrainConfig(
        data=str(workdir / "scenario.csv"),
        target=SCENARIO_TARGET,
        model="linear",
        drop=drop,
        onnx=False,
        plots=False,
    )
    return train(cfg, MlflowClient(mlflow.get_tracking_uri()), frame=frame).run_id


def state(client: Any, name: str) -> dict[str, Any]:
    """Stages and aliases of every version."""
    from mlcycle.register.core import snapshot

    return snapshot(client, name)


def assert_one_champion(client: Any, name: str) -> str:
    """Exactly one Production version, the one @champion names, and both URIs resolve to it."""
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    from mlcycle.register import champion_version, model_uri
    from mlcycle.register.core import production_versions

    champion = champion_version(client, name)
    assert champion is not None
    assert production_versions(client, name) == [champion]
    by_stage = get_model_name_and_version(client, model_uri(name, stage="Production"))[1]
    by_alias = get_model_name_and_version(client, model_uri(name, alias="champion"))[1]
    assert str(by_stage) == str(by_alias) == champion
    return champion
