"""One fit and one search trial, and the data preparation every fit shares.

API: :func:`prepare`, :func:`fit`, :func:`run_trial`.

Both search engines (:func:`mlcycle.train.core.train`'s random search and
:mod:`mlcycle.train.search`'s Optuna workers) run their trials here, and a worker process
rebuilds the same splits with the same :func:`prepare` the starting process used.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from mlcycle import data as data_mod
from mlcycle import fluent, model_metrics
from mlcycle.data import DatasetSpec, Splits
from mlcycle.errors import TrainingError
from mlcycle.tags import MLCYCLE_KIND, MLCYCLE_TASK, MLCYCLE_TRIAL
from mlcycle.train import evaluate, pipelines

Frames = dict[str, tuple[pd.DataFrame, pd.Series]]


def prepare(
    df: pd.DataFrame,
    target: str,
    task: Any,
    time_column: str | None,
    drop: tuple[str, ...],
    categorical: tuple[str, ...],
    model_key: str,
    params: dict[str, Any],
    seed: int,
) -> tuple[DatasetSpec, dict[str, Any], Splits, Frames]:
    """The spec, the estimator parameter overrides, the splits and their feature frames.

    Raises:
        DataError: the data are unusable.
        ConfigError: an unknown parameter.
    """
    spec = data_mod.infer_spec(df, target, task, time_column, drop, categorical)
    overrides = pipelines.coerce_params(model_key, spec.task, params)
    splits = data_mod.split(df, spec, seed)
    frames = {
        name: (data_mod.prepare_features(part, spec), part[spec.target])
        for name, part in (("train", splits.train), ("val", splits.val), ("test", splits.test))
    }
    return spec, overrides, splits, frames


def fit(pipe: Pipeline, X: pd.DataFrame, y: pd.Series) -> Pipeline:
    """Fit ``pipe``.

    Raises:
        TrainingError: the estimator refused the data.
    """
    try:
        return pipe.fit(X, y)
    except ValueError as exc:
        raise TrainingError(f"fitting failed: {exc}") from exc


def run_trial(
    client: Any,
    i: int,
    params: dict[str, Any],
    model_key: str,
    spec: DatasetSpec,
    frames: Frames,
    experiment_id: str,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> tuple[Pipeline, dict[str, float], str]:
    """Fit one search trial as a nested run (params, val metrics); pipe, metrics, run id.

    ``parent_run_id`` nests it under a run of another process; without it, under the active
    run. The run is written to ``client``'s tracking store (:func:`mlcycle.fluent.start_run`).
    """
    import mlflow

    X_train, y_train = frames["train"]
    X_val, y_val = frames["val"]
    with fluent.start_run(
        client,
        experiment_id=experiment_id,
        run_name=f"trial-{i:03d}",
        parent_run_id=parent_run_id,
        nested=parent_run_id is None,
    ) as child:
        mlflow.set_tags(
            {MLCYCLE_KIND: "trial", MLCYCLE_TASK: spec.task, MLCYCLE_TRIAL: str(i)} | (tags or {})
        )
        mlflow.log_params({"model": model_key, **{f"model__{k}": v for k, v in params.items()}})
        pipe = fit(pipelines.build_pipeline(spec, model_key, params), X_train, y_train)
        m = model_metrics.compute_metrics(
            spec.task, evaluate.predict_all(pipe, X_val, y_val, spec.task), "val_"
        )
        mlflow.log_metrics(m)
    return pipe, m, child.info.run_id
