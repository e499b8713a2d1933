"""Tracked training: one MLflow run per fit, a parent run with nested children per search.

API: :func:`train` (with :class:`~mlcycle.train.types.TrainConfig` →
:class:`~mlcycle.train.types.TrainResult`, re-exported here).

The run is MLflow's fluent run, started on the caller's client (:func:`mlcycle.fluent.start_run`:
nested search trials need it); what the run records is written through the client with an
explicit run id (:mod:`mlcycle.train.record`), most of it in worker threads beside the fit
and the model logging.
"""

from __future__ import annotations

import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

import mlcycle
from mlcycle import contract, fluent
from mlcycle import data as data_mod
from mlcycle.config import Settings
from mlcycle.data import DatasetSpec
from mlcycle.errors import ConfigError
from mlcycle.retry import retry
from mlcycle.tags import (
    MLCYCLE_BEST_TRIAL_RUN_ID,
    MLCYCLE_DATA_DIGEST,
    MLCYCLE_ESTIMATOR,
    MLCYCLE_KIND,
    MLCYCLE_VERSION,
)
from mlcycle.train import pipelines, record, trial
from mlcycle.train.random_search import random_search
from mlcycle.train.types import (
    MODEL_ARTIFACT,
    ONNX_FILE,
    SEARCH_ENGINES,
    TrainConfig,
    TrainResult,
    TrialCallback,
    default_run_name,
    pip_requirements,
)

__all__ = [
    "MODEL_ARTIFACT",
    "ONNX_FILE",
    "SEARCH_ENGINES",
    "TrainConfig",
    "TrainResult",
    "TrialCallback",
    "default_run_name",
    "pip_requirements",
    "train",
]

logger = logging.getLogger(__name__)


class _EndsFailed:
    """Make sure a failed run does not stay RUNNING when the tracking store is briefly away.

    MLflow ends a failed run with one ``set_terminated`` call inside the client's retry
    budget; when the store is down longer than that, the run stays RUNNING for good. On the
    way out of a failure this keeps trying (bounded) to mark the run and its RUNNING nested
    trials FAILED. Enter it before the run starts and set :attr:`run_id`.
    """

    def __init__(self, client: Any, budget: float = 120.0) -> None:
        self.client = client
        self.budget = budget
        self.run_id: str | None = None

    def __enter__(self) -> _EndsFailed:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None or self.run_id is None:
            return
        run_id = self.run_id
        errors: list[Exception] = []

        def mark_failed() -> bool:
            try:
                run = self.client.get_run(run_id)
                children = self.client.search_runs(
                    [run.info.experiment_id],
                    filter_string=f"tags.mlflow.parentRunId = '{run_id}' "
                    "and attributes.status = 'RUNNING'",
                )
                for r in [*children, run]:
                    if r.info.status == "RUNNING":
                        self.client.set_terminated(r.info.run_id, "FAILED")
                return True
            except Exception as err:
                errors.append(err)
                return False

        if not retry(mark_failed, first_delay=1.0, max_delay=15.0, budget=self.budget):
            logger.error("run %s may be left RUNNING: %s", run_id, errors[-1])


def _tags(spec: DatasetSpec, model: str, kind: str) -> dict[str, str]:
    # mlcycle.data_digest comes at the end: hashing the table runs beside the fit.
    return {
        **contract.tags(spec.target, spec.task),
        MLCYCLE_VERSION: mlcycle.__version__,
        MLCYCLE_ESTIMATOR: model,
        MLCYCLE_KIND: kind,
    }


def _fit(
    client: Any,
    cfg: TrainConfig,
    spec: DatasetSpec,
    model_key: str,
    overrides: dict[str, Any],
    frames: trial.Frames,
    experiment_id: str,
    run_id: str,
    on_trial: TrialCallback | None,
) -> tuple[Any, dict[str, Any], list[str], dict[str, str]]:
    """One fit, or the search's best: pipeline, parameters, trial run ids, run tags."""
    if not cfg.trials:
        params = pipelines.estimator_params(model_key, spec.task, overrides, cfg.seed)
        X_train, y_train = frames["train"]
        pipe = trial.fit(pipelines.build_pipeline(spec, model_key, params), X_train, y_train)
        return pipe, params, [], {}
    if cfg.search_engine == "optuna":
        from mlcycle.train import search

        pipe, params, child_ids, best_id = search.optuna_search(
            cfg, spec, model_key, overrides, frames, experiment_id, run_id, client, on_trial
        )
    else:
        pipe, params, child_ids, best_id = random_search(
            client, cfg, spec, model_key, overrides, frames, experiment_id, on_trial
        )
    return pipe, params, child_ids, {MLCYCLE_BEST_TRIAL_RUN_ID: best_id}


def train(
    cfg: TrainConfig,
    client: Any,
    frame: pd.DataFrame | None = None,
    on_trial: TrialCallback | None = None,
    settings: Settings | None = None,
) -> TrainResult:
    """Fit, evaluate and log one model (or a search of ``cfg.trials`` nested trials).

    Data are validated before any run starts, so bad data leave no run behind; a failure
    after that ends the run as FAILED.

    Args:
        cfg: what to train.
        client: an ``MlflowClient`` for the configured stores.
        frame: the data, when already loaded (``cfg.data`` is still recorded as the source).
        on_trial: progress callback for searches.
        settings: the CLI's settings (where a new experiment keeps artifacts).

    Raises:
        DataError: the data are unusable.
        ConfigError: unknown model or parameter.
        TrainingError: fitting or logging failed.
    """

    from mlcycle.config import ensure_experiment

    t_start = time.perf_counter()
    if cfg.search_engine not in SEARCH_ENGINES:
        raise ConfigError(
            f"unknown search engine '{cfg.search_engine}'; choose one of: "
            + ", ".join(SEARCH_ENGINES)
        )
    model_key = pipelines.resolve_estimator(cfg.model)
    df = frame if frame is not None else data_mod.load_table(cfg.data)
    spec, overrides, splits, frames = trial.prepare(
        df, cfg.target, cfg.task, cfg.time_column, cfg.drop, cfg.categorical,
        model_key, cfg.params, cfg.seed,
    )  # fmt: skip
    pipelines.check_trainable(
        model_key,
        spec,
        df[spec.target],
        pipelines.estimator_params(model_key, spec.task, overrides, cfg.seed),
        cfg.allow_pickle,
    )
    experiment_id = ensure_experiment(client, cfg.experiment, settings)
    t_prep = time.perf_counter()

    child_ids: list[str] = []
    with (
        _EndsFailed(client) as ends_failed,
        fluent.start_run(
            client,
            experiment_id=experiment_id,
            run_name=cfg.run_name or default_run_name(cfg, model_key),
            tags=_tags(spec, model_key, "search" if cfg.trials else "train"),
        ) as run,
        tempfile.TemporaryDirectory() as tmp,
        # Last in, first out: side work finishes before the files and the run are closed.
        ThreadPoolExecutor(max_workers=5, thread_name_prefix="mlcycle-train") as pool,
    ):
        ends_failed.run_id = run.info.run_id
        # Under `mlflow run` the project's run (MLFLOW_RUN_ID) is resumed in its experiment.
        experiment_id = run.info.experiment_id
        run_id = run.info.run_id
        base = {
            "model": model_key,
            "task": spec.task,
            "target": spec.target,
            "seed": cfg.seed,
            "n_rows": len(df),
            "n_train": len(splits.train),
            "n_val": len(splits.val),
            "n_test": len(splits.test),
            "numeric_features": ",".join(spec.numeric)[:500],
            "categorical_features": ",".join(spec.categorical)[:500],
            "time_column": spec.time_column or "",
        }
        workdir = Path(tmp)
        # Dataset lineage and reference statistics need no model: log them beside the fit.
        data_side = pool.submit(
            record.log_data_side, client, run_id, cfg, spec, df, frames, workdir
        )
        pool.submit(record.import_after_fit_modules, cfg.onnx)
        with record.blas_leaves_a_core():
            best_pipe, params, child_ids, tags = _fit(
                client, cfg, spec, model_key, overrides, frames, experiment_id, run_id, on_trial
            )
        if cfg.trials:
            base["search_trials"] = cfg.trials
        t_fit = time.perf_counter()
        # `mlflow run` has already logged the entry point's parameters on this run; MLflow
        # refuses to change a logged value, so those keep the project's spelling.
        logged = run.data.params
        all_params = {**base, **{f"model__{k}": v for k, v in params.items()}}
        fitted = record.log_fitted(
            client=client,
            run_id=run_id,
            pool=pool,
            pipe=best_pipe,
            spec=spec,
            frames=frames,
            cfg=cfg,
            model_key=model_key,
            workdir=workdir,
            params={k: v for k, v in all_params.items() if k not in logged},
        )
        tags[MLCYCLE_DATA_DIGEST] = data_side.result()
        t_end = time.perf_counter()
        seconds = {
            "prepare_seconds": t_prep - t_start,
            "fit_seconds": t_fit - t_prep,
            "log_seconds": t_end - t_fit,
            "total_seconds": t_end - t_start,
        }
        # One last store write: the split metrics (on the run and its logged model too), the
        # run's own metrics and the tags known only now.
        record.log_batch(
            client,
            run_id,
            metrics=fitted.metrics,
            model_id=fitted.model_id,
            run_metrics={**fitted.run_metrics, **seconds},
            tags={**fitted.tags, **tags},
        )
    return TrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        model_uri=fitted.model_uri,
        task=spec.task,
        metrics=fitted.metrics,
        params=params,
        onnx_exact=fitted.onnx_exact,
        child_run_ids=tuple(child_ids),
        seconds=seconds,
        onnx_note=fitted.onnx_note,
    )
