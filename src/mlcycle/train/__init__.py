"""Training stage: sklearn pipelines on a table, tracked as MLflow runs.

API:

- :func:`train` with :class:`TrainConfig` → :class:`TrainResult` — one fit, or a search whose
  trials are nested runs with the best summarised on the parent.
- :func:`pip_requirements` — the pinned requirements every logged model carries.
- :mod:`mlcycle.train.types` — the config, the result and the run's fixed names.
- :mod:`mlcycle.train.record` — what a run records: lineage, reference data, model, metrics,
  plots (:mod:`mlcycle.train.plots`), the ONNX copy (:mod:`mlcycle.train.onnx_export`).
- :mod:`mlcycle.train.pipelines` — estimators, search spaces, skops trust list.
- :mod:`mlcycle.train.trial` — data preparation, one fit and one search trial, shared by
  both search engines.
- :mod:`mlcycle.train.model_log` — ``mlflow.sklearn.log_model``'s guarantees, one load.
- :mod:`mlcycle.train.random_search` — the in-process random search (the default engine).
- :mod:`mlcycle.train.search` — the Optuna engine (``search_engine="optuna"``): a study in
  the tracking PostgreSQL that worker processes share (``mlcycle search-worker``).
"""

from mlcycle.train.core import train
from mlcycle.train.types import (
    MODEL_ARTIFACT,
    ONNX_FILE,
    TrainConfig,
    TrainResult,
    pip_requirements,
)

__all__ = ["MODEL_ARTIFACT", "ONNX_FILE", "TrainConfig", "TrainResult", "pip_requirements", "train"]
