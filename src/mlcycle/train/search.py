"""Distributed hyper-parameter search: an Optuna study that processes and machines share.

API: :func:`optuna_search` (called by :func:`mlcycle.train.train` when
``search_engine="optuna"``), :func:`run_worker` (join a study: ``mlcycle search-worker``),
:func:`suggest_params`, :func:`distributions`.

The study lives in Optuna's RDB storage, normally the tracking PostgreSQL
(``postgresql+psycopg2://…``; its tables go to schema ``mlcycle_search``, see
:func:`_storage`). The process that starts the search creates the study, records what a
worker needs to rebuild the same splits as a study user attribute (data source, target,
estimator, seed, the parent run, the tracking URI when it holds no password), and starts
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

from mlcycle.data import DatasetSpec
from mlcycle.errors import ConfigError, TrainingError
from mlcycle.redact import redact_uri
from mlcycle.tags import (
    MLCYCLE_BEST_TRIAL_NUMBER,
    MLCYCLE_SEARCH_ENGINE,
    MLCYCLE_STUDY,
    MLCYCLE_WORKER,
)
from mlcycle.train import evaluate, pipelines
from mlcycle.train import trial as trial_mod

logger = logging.getLogger(__name__)

#: Study user attribute holding what workers need.
ATTR = "mlcycle"
_POLL_SECONDS = 0.5


class _Draws:
    """Stands in for ``numpy.random.Generator`` inside one SEARCH_SPACES sampler."""

    def __init__(self, trial: Any, name: str) -> None:
        self.trial = trial
        self.name = name

    def uniform(self, low: float, high: float) -> float:
        return float(self.trial.suggest_float(self.name, float(low), float(high)))

    def choice(self, options: Any) -> Any:
        plain = [o.item() if isinstance(o, np.generic) else o for o in list(options)]
        return self.trial.suggest_categorical(self.name, plain)

    def integers(self, low: int, high: int | None = None) -> int:
        if high is None:
            low, high = 0, low
        return int(self.trial.suggest_int(self.name, int(low), int(high) - 1))


def suggest_params(trial: Any, model: str, task: str) -> dict[str, Any]:
    """One draw from the estimator's SEARCH_SPACES entry, suggested through ``trial``."""
    space = pipelines.search_space(model, task)  # type: ignore[arg-type]
    # _Draws has the three Generator methods the samplers call (duck typing by design).
    return {key: draw(_Draws(trial, key)) for key, draw in space.items()}  # type: ignore[arg-type]


def distributions(model: str, task: str) -> dict[str, Any]:
    """The Optuna distributions the estimator's search space translates into."""
    import optuna

    study = optuna.create_study()
    trial = study.ask()
    suggest_params(trial, model, task)
    return dict(trial.distributions)


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise ConfigError(
            "the optuna search engine needs optuna: pip install 'mlcycle[search]'"
        ) from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _safe_uri(uri: str) -> str | None:
    """``uri`` when it holds no password (it is stored in the study), else ``None``."""
    if "://" not in uri:
        return uri
    netloc = uri.split("://", 1)[1].split("/", 1)[0]
    userinfo = netloc.rpartition("@")[0]
    return None if ":" in userinfo else uri


def masked(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (for params and messages)."""
    return redact_uri(uri)


#: PostgreSQL schema of the study tables when the storage is the tracking database.
PG_SCHEMA = "mlcycle_search"


def _storage(optuna: Any, url: str) -> Any:
    """Optuna's RDB storage at ``url``; on PostgreSQL in schema :data:`PG_SCHEMA`.

    Optuna and MLflow both keep their migration state in a table ``alembic_version``: in the
    same schema each would read the other's revision and refuse to start. Giving Optuna its
    own schema lets the study live in the tracking database itself. A URL that already sets
    ``search_path`` is used as given.
    """
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    try:
        if url.startswith("postgresql") and "search_path" not in url:
            import sqlalchemy as sa

            engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{PG_SCHEMA}"'))
            finally:
                engine.dispose()
            kwargs["connect_args"] = {"options": f"-csearch_path={PG_SCHEMA}"}
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:
        raise ConfigError(f"cannot open the study storage {masked(url)}: {exc}") from exc


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
    optuna = _import_optuna()
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

    optuna = _import_optuna()
    try:
        study = optuna.load_study(study_name=study_name, storage=_storage(optuna, storage))
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

    optuna = _import_optuna()
    if cfg.search_workers < 1:
        raise ConfigError("search_workers must be at least 1")
    if cfg.search_workers > 1 and not cfg.search_storage:
        raise ConfigError(
            "worker processes share the study through a storage: give --search-storage "
            "(postgresql+psycopg2://…)"
        )
    metric, higher = evaluate.primary_metric(spec.task)
    name = cfg.study_name or f"mlcycle-{parent_run_id}"
    storage = _storage(optuna, cfg.search_storage) if cfg.search_storage else None
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
        "tracking_uri": _safe_uri(client.tracking_uri),
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
