"""The in-process random search: each trial a nested run, the best one refitted by the caller.

API: :func:`random_search` (``search_engine="random"``; the Optuna engine is
:mod:`mlcycle.train.search`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlcycle import model_metrics
from mlcycle.data import DatasetSpec
from mlcycle.errors import TrainingError
from mlcycle.train import pipelines, trial
from mlcycle.train.types import TrainConfig, TrialCallback


def random_search(
    client: Any,
    cfg: TrainConfig,
    spec: DatasetSpec,
    model_key: str,
    overrides: dict[str, Any],
    frames: dict[str, tuple[pd.DataFrame, pd.Series]],
    experiment_id: str,
    on_trial: TrialCallback | None,
) -> tuple[Pipeline, dict[str, Any], list[str], str]:
    """Random search: each trial a nested run with params and val metrics.

    Returns the best trial's pipeline, its parameters, the trial run ids in trial order and
    the best trial's run id; logs ``best_val_<metric>`` on the active (parent) run.

    Raises:
        TrainingError: no trial produced a finite primary metric.
    """
    import mlflow

    metric, higher = model_metrics.primary_metric(spec.task)
    rng = np.random.default_rng(cfg.seed)
    best: tuple[float, Pipeline, dict[str, Any], str] | None = None
    child_ids: list[str] = []
    for i in range(1, cfg.trials + 1):
        drawn = pipelines.sample_params(model_key, spec.task, rng)
        params = pipelines.estimator_params(model_key, spec.task, {**drawn, **overrides}, cfg.seed)
        pipe, m, run_id = trial.run_trial(client, i, params, model_key, spec, frames, experiment_id)
        child_ids.append(run_id)
        score = m.get(f"val_{metric}", float("nan"))
        better = best is None or (score > best[0] if higher else score < best[0])
        if better and not np.isnan(score):
            best = (score, pipe, params, run_id)
        if on_trial is not None:
            on_trial(i, cfg.trials, m)
    if best is None:
        raise TrainingError(f"no trial produced a finite val_{metric}")
    mlflow.log_metric(f"best_val_{metric}", best[0])
    return best[1], best[2], child_ids, best[3]
