"""Distributed hyper-parameter search: an Optuna study that processes and machines share.

API: :func:`optuna_search` (called by :func:`mlcycle.train.train` when
``search_engine="optuna"``), :func:`run_worker` (join a study: ``mlcycle search-worker``),
:func:`suggest_params`, :func:`distributions`.

The study lives in Optuna's RDB storage, normally the tracking PostgreSQL
(``postgresql+psycopg2://…``; its tables go to schema ``mlcycle_search``, see
:func:`mlcycle.train.optuna_support.storage`). The process that starts the search creates
the study, records what a worker needs to rebuild the same splits as a study user attribute
(data source, target, estimator, seed, the parent run, the tracking URI when it holds no
password), and starts
``search_workers`` worker processes; any number of ``mlcycle search-worker`` processes on
other machines may join. Each trial is a nested MLflow run under the one parent run; trial
numbers are handed out by the storage, so trial ``n`` runs exactly once and the search stops
at ``trials`` trials however many workers take part. When they are done the parent refits the
best trial's parameters (deterministic: same seed, same split) and logs it like any training.

The search space is :data:`mlcycle.train.pipelines.SEARCH_SPACES` itself: each of its samplers
is handed a stand-in for numpy's generator whose draws become trial suggestions
(``10 ** r.uniform(-3, 2)`` → ``suggest_float(-3, 2)`` of the exponent, ``r.choice([...])`` →
``suggest_categorical``, ``r.integers(n)`` → ``suggest_int(0, n - 1)``), so both engines search
the same space. Optuna therefore stores the draw (an exponent, an index); MLflow records the
estimator's values.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mlcycle import model_metrics
from mlcycle.data import DatasetSpec
from mlcycle.errors import ConfigError, TrainingError
from mlcycle.tags import (
    MLCYCLE_BEST_TRIAL_NUMBER,
    MLCYCLE_SEARCH_ENGINE,
    MLCYCLE_STUDY,
    MLCYCLE_WORKER,
)
from mlcycle.train import pipelines
from mlcycle.train import trial as trial_mod
from mlcycle.train.optuna_support import (
    PG_SCHEMA,
    distributions,
    import_optuna,
    masked,
    safe_uri,
    suggest_params,
)
from mlcycle.train.optuna_support import storage as open_storage

logger = logging.getLogger(__name__)

#: Study user attribute holding what workers need.
ATTR = "mlcycle"
#: The study storage (the name the tests and earlier callers use).
_storage = open_storage
__all__ = [
    "PG_SCHEMA",
    "distributions",
    "masked",
    "optuna_search",
    "run_worker",
    "suggest_params",
]
_POLL_SECONDS = 0.5


def _work(
    client: Any,
    study: Any,
    attrs: dict[str, Any],
    spec: DatasetSpec,
    overrides: dict[str, Any],
    frames: dict[str, tuple[pd.DataFrame, pd.Series]],
    nested_in_process: bool,
    max_trials: int | None = None,
    after_trial: Callable[[], None] | None = None,
) -> int:
    """Run trials of ``study`` until it has ``attrs['trials']``; returns how many ran here."""
    optuna = import_optuna()
    total = int(attrs["trials"])
    model_key = attrs["model"]
    metric = attrs["metric"]
    worker = f"{socket.gethostname()}:{os.getpid()}"
    done = 0
    while max_trials is None or done < max_trials:
        if len(study.get_trials(deepcopy=False)) >= total:
            break
        trial = study.ask()
        if trial.number >= total:
            # Another worker took the last number between the count and the ask.
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            break
        drawn = suggest_params(trial, model_key, spec.task)
        params = pipelines.estimator_params(
            model_key, spec.task, {**drawn, **overrides}, int(attrs["seed"])
        )
        try:
            _, m, run_id = trial_mod.run_trial(
                client, trial.number + 1, params, model_key, spec, frames, attrs["experiment_id"],
                parent_run_id=None if nested_in_process else attrs["parent_run_id"],
                tags={MLCYCLE_WORKER: worker, MLCYCLE_STUDY: study.study_name},
            )  # fmt: skip
        except Exception:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        trial.set_user_attr("mlflow_run_id", run_id)
        trial.set_user_attr("params", {k: _jsonable(v) for k, v in params.items()})
        trial.set_user_attr("metrics", m)
        trial.set_user_attr("worker", worker)
        score = m.get(f"val_{metric}", float("nan"))
        if math.isfinite(score):
            study.tell(trial, score)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        done += 1
        if after_trial is not None:
            after_trial()
    return done


def _jsonable(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _prepare(attrs: dict[str, Any]) -> tuple[DatasetSpec, dict[str, Any], dict[str, Any]]:
    """The same spec, parameter overrides and splits as the process that started the study."""
    from mlcycle import data as data_mod

    spec, overrides, _, frames = trial_mod.prepare(
        data_mod.load_table(attrs["data"]),
        attrs["target"],
        attrs["task"],
        attrs["time_column"],
        tuple(attrs["drop"]),
        tuple(attrs.get("categorical", ())),
        attrs["model"],
        attrs["params"],
        int(attrs["seed"]),
    )
    return spec, overrides, frames


def run_worker(
    storage: str,
    study_name: str,
    *,
    tracking_uri: str | None = None,
    max_trials: int | None = None,
) -> int:
    """Join study ``study_name`` and run its trials until it has all of them.

    Args:
        storage: the study's RDB storage URL.
        study_name: the study to join.
        tracking_uri: MLflow tracking store [default: the one the study recorded].
        max_trials: leave after this many trials.

    Returns:
        How many trials this worker ran.

    Raises:
        ConfigError: no such study, or it was not started by mlcycle, or no tracking URI.
        TrainingError: a trial failed.
    """
    from mlflow import MlflowClient

    optuna = import_optuna()
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(optuna, storage))
    except KeyError as exc:
        raise ConfigError(f"no study '{study_name}' in {masked(storage)}") from exc
    attrs = study.user_attrs.get(ATTR)
    if not attrs:
        raise ConfigError(f"study '{study_name}' was not started by mlcycle train")
    uri = tracking_uri or attrs.get("tracking_uri")
    if not uri:
        raise ConfigError(
            "the study does not record its tracking URI (it holds a password); "
            "set MLFLOW_TRACKING_URI"
        )
    spec, overrides, frames = _prepare(attrs)
    return _work(MlflowClient(uri), study, attrs, spec, overrides, frames, False, max_trials)


def _worker_main(storage: str, study_name: str, tracking_uri: str | None) -> None:
    logging.basicConfig(level=logging.WARNING)
    run_worker(storage, study_name, tracking_uri=tracking_uri)


def optuna_search(
    cfg: Any,
    spec: DatasetSpec,
    model_key: str,
    overrides: dict[str, Any],
    frames: dict[str, tuple[pd.DataFrame, pd.Series]],
    experiment_id: str,
    parent_run_id: str,
    client: Any,
    on_trial: Callable[[int, int, dict[str, float]], None] | None,
) -> tuple[Any, dict[str, Any], list[str], str]:
    """Run ``cfg.trials`` trials of a new study (in ``cfg.search_workers`` processes).

    Returns what the random search returns: the refitted best pipeline, its parameters, the
    trial run ids in trial order and the best trial's run id.

    Raises:
        ConfigError: workers without a storage, a study name already taken, optuna missing.
        TrainingError: workers failed before the study had its trials, or no trial scored.
    """
    import mlflow

    optuna = import_optuna()
    if cfg.search_workers < 1:
        raise ConfigError("search_workers must be at least 1")
    if cfg.search_workers > 1 and not cfg.search_storage:
        raise ConfigError(
            "worker processes share the study through a storage: give --search-storage "
            "(postgresql+psycopg2://…)"
        )
    metric, higher = model_metrics.primary_metric(spec.task)
    name = cfg.study_name or f"mlcycle-{parent_run_id}"
    storage = open_storage(optuna, cfg.search_storage) if cfg.search_storage else None
    sampler = optuna.samplers.TPESampler(seed=cfg.seed)
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            direction="maximize" if higher else "minimize",
            sampler=sampler,
        )
    except optuna.exceptions.DuplicatedStudyError as exc:
        raise ConfigError(
            f"study '{name}' already exists; choose another --study-name "
            "(mlcycle search-worker joins a running one)"
        ) from exc
    attrs = {
        "data": cfg.data,
        "target": spec.target,
        "task": spec.task,
        "model": model_key,
        "params": {k: str(v) for k, v in cfg.params.items()},
        "time_column": cfg.time_column,
        "drop": list(cfg.drop),
        "categorical": list(cfg.categorical),
        "seed": cfg.seed,
        "trials": cfg.trials,
        "metric": metric,
        "experiment_id": experiment_id,
        "parent_run_id": parent_run_id,
        "tracking_uri": safe_uri(client.tracking_uri),
    }
    study.set_user_attr(ATTR, attrs)
    mlflow.set_tags({MLCYCLE_SEARCH_ENGINE: "optuna", MLCYCLE_STUDY: name})
    mlflow.log_params(
        {
            "search_engine": "optuna",
            "search_workers": cfg.search_workers,
            "study_name": name,
            "search_storage": masked(cfg.search_storage) if cfg.search_storage else "memory",
        }
    )
    reported: set[int] = set()

    def report() -> None:
        if on_trial is None:
            return
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            if t.state.is_finished() and t.number < cfg.trials and t.number not in reported:
                reported.add(t.number)
                on_trial(len(reported), cfg.trials, dict(t.user_attrs.get("metrics", {})))

    if cfg.search_workers == 1:
        _work(
            client, study, attrs, spec, overrides, frames, nested_in_process=True,
            after_trial=report,
        )  # fmt: skip
    else:
        ctx = multiprocessing.get_context("spawn")
        procs = [
            ctx.Process(
                target=_worker_main,
                args=(cfg.search_storage, name, client.tracking_uri),
                name=f"mlcycle-search-{i}",
            )
            for i in range(cfg.search_workers)
        ]
        for p in procs:
            p.start()
        try:
            while any(p.is_alive() for p in procs):
                report()
                time.sleep(_POLL_SECONDS)
        finally:
            for p in procs:
                p.join()
        report()
        failed = [p.exitcode for p in procs if p.exitcode]
        if failed:
            logger.warning("%d search worker(s) exited with %s", len(failed), failed)
    trials = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.number < cfg.trials and "mlflow_run_id" in t.user_attrs
    ]
    trials.sort(key=lambda t: t.number)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(trials) < cfg.trials and cfg.search_workers > 1:
        raise TrainingError(
            f"the search workers stopped after {len(trials)} of {cfg.trials} trials "
            "(see their errors above)"
        )
    if not complete:
        raise TrainingError(f"no trial produced a finite val_{metric}")
    best = max(complete, key=lambda t: t.value) if higher else min(complete, key=lambda t: t.value)
    params = pipelines.estimator_params(
        model_key, spec.task, {**best.user_attrs["params"], **overrides}, cfg.seed
    )
    X_train, y_train = frames["train"]
    pipe = trial_mod.fit(pipelines.build_pipeline(spec, model_key, params), X_train, y_train)
    mlflow.log_metric(f"best_val_{metric}", float(best.value))
    mlflow.set_tag(MLCYCLE_BEST_TRIAL_NUMBER, str(best.number + 1))
    child_ids = [t.user_attrs["mlflow_run_id"] for t in trials]
    return pipe, params, child_ids, best.user_attrs["mlflow_run_id"]
