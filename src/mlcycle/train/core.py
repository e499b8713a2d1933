"""Tracked training: one MLflow run per fit, a parent run with nested children per search.

API: :class:`TrainConfig`, :class:`TrainResult`, :func:`train`.

Runs use MLflow's fluent API against the tracking store the caller configured
(:func:`mlcycle.config.apply_tracking`); the client argument is used for lookups.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

import mlcycle
from mlcycle import contract, fluent
from mlcycle import data as data_mod
from mlcycle.config import Settings
from mlcycle.data import DatasetSpec, Task
from mlcycle.errors import ConfigError, TrainingError
from mlcycle.mlflow_compat import preset_dataset_schema
from mlcycle.retry import retry
from mlcycle.tags import (
    MLCYCLE_BEST_TRIAL_RUN_ID,
    MLCYCLE_DATA_DIGEST,
    MLCYCLE_ESTIMATOR,
    MLCYCLE_KIND,
    MLCYCLE_MODEL_URI,
    MLCYCLE_ONNX,
    MLCYCLE_VERSION,
)
from mlcycle.train import evaluate, model_log, onnx_export, pipelines, trial

logger = logging.getLogger(__name__)

#: Called after each search trial: (trial index from 1, trials, the trial's val metrics).
TrialCallback = Callable[[int, int, dict[str, float]], None]

MODEL_ARTIFACT = "model"
SEARCH_ENGINES = ("random", "optuna")
ONNX_FILE = "model.onnx"


def default_run_name(cfg: TrainConfig, model_key: str) -> str:
    """``<estimator> <data file stem>`` (e.g. ``linear churn``): says what was fitted on what."""
    stem = str(cfg.data).rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".gz", ".csv", ".parquet", ".pq"):
        stem = stem.removesuffix(suffix)
    return f"{model_key} {stem or 'data'}"[:250]


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training call needs; values, not code paths."""

    data: str
    target: str
    model: str = "hist_gradient_boosting"
    params: dict[str, Any] = field(default_factory=dict)
    task: Task | None = None
    time_column: str | None = None
    drop: tuple[str, ...] = ()
    #: Feature columns kept as categories whatever their values (``--categorical``).
    categorical: tuple[str, ...] = ()
    seed: int = 42
    trials: int = 0
    experiment: str = "mlcycle"
    run_name: str | None = None
    onnx: bool = True
    plots: bool = True
    #: ``random`` (in process, seeded) or ``optuna`` (a study that processes can share);
    #: ``None`` picks ``optuna`` when the search is shared (``search_storage`` or several
    #: ``search_workers``), else ``random``.
    search_engine: str | None = None
    #: Optuna RDB storage (``postgresql+psycopg2://…``); in memory when ``None``.
    search_storage: str | None = None
    study_name: str | None = None
    #: Worker processes of an Optuna search on this machine (more can join with the CLI).
    search_workers: int = 1
    #: Save a model needing unreviewed skops types (a user's class) with cloudpickle.
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        if self.search_engine is None:
            shared = bool(self.search_storage) or self.search_workers > 1
            object.__setattr__(self, "search_engine", "optuna" if shared else "random")


@dataclass(frozen=True)
class TrainResult:
    """What a training call produced."""

    run_id: str
    experiment_id: str
    model_uri: str
    task: Task
    metrics: dict[str, float]
    params: dict[str, Any]
    onnx_exact: bool
    child_run_ids: tuple[str, ...] = ()
    #: What happened to the ONNX copy, for people: ``exact copy logged``, ``not attempted:
    #: …``, ``not kept: …`` or ``skipped``.
    onnx_note: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (what ``mlcycle train --json`` prints)."""
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "model_uri": self.model_uri,
            "task": self.task,
            "metrics": self.metrics,
            "onnx_exact": self.onnx_exact,
            "child_run_ids": list(self.child_run_ids),
        }

    @property
    def runs_uri(self) -> str:
        """``runs:/`` URI of the logged model."""
        return f"runs:/{self.run_id}/{MODEL_ARTIFACT}"


def pip_requirements() -> list[str]:
    """Pinned requirements of every model mlcycle logs (explicit: inferring costs seconds)."""
    import mlflow

    # The core install has mlflow-skinny, which ships the `mlflow` package but not the `mlflow`
    # distribution; the model still names `mlflow`, at the version of the package that logged it.
    names = ["scikit-learn", "skops", "numpy", "pandas", "scipy"]
    return [f"mlflow=={mlflow.__version__}", *(f"{name}=={pkg_version(name)}" for name in names)]


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


def _tags(spec: DatasetSpec, model: str) -> dict[str, str]:
    # mlcycle.data_digest is set by _log_data_side: hashing the table runs beside the fit.
    return {
        **contract.tags(spec.target, spec.task),
        MLCYCLE_VERSION: mlcycle.__version__,
        MLCYCLE_ESTIMATOR: model,
    }


#: Rows MLflow's dataset schema is inferred from (it walks every value of text columns).
SCHEMA_SAMPLE_ROWS = 2_000


def _dataset(frame: pd.DataFrame, source: str, target: str, digest: str) -> Any:
    """The training table as an MLflow dataset, without MLflow walking every row.

    ``PandasDataset.schema`` is a cached property inferred from the whole frame (seconds on
    200k rows with text columns); it is filled from a bounded sample, and the digest is
    mlcycle's own hash of the full table.
    """
    import mlflow

    ds = mlflow.data.from_pandas(  # type: ignore[attr-defined]
        frame, source=source, targets=target, name=Path(source).name, digest=digest
    )
    if len(frame) > SCHEMA_SAMPLE_ROWS:
        frame = frame.sample(SCHEMA_SAMPLE_ROWS, random_state=0)
    preset_dataset_schema(ds, frame)
    return ds


#: Training rows scored for the ``train_*`` metrics (a seeded sample above this size).
TRAIN_METRIC_ROWS = 50_000


def _log_data_side(
    client: Any,
    run_id: str,
    cfg: TrainConfig,
    spec: DatasetSpec,
    source_frame: pd.DataFrame,
    frames: dict[str, tuple[pd.DataFrame, pd.Series]],
    workdir: Path,
) -> None:
    """Everything that needs the data but not the model; runs in a thread beside the fit.

    Uses the client with an explicit run id (MLflow's active run is per thread).
    """
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    digest = data_mod.digest(source_frame)
    client.set_tag(run_id, MLCYCLE_DATA_DIGEST, digest)
    ds = _dataset(source_frame, cfg.data, spec.target, digest)
    client.log_inputs(
        run_id,
        datasets=[
            DatasetInput(
                dataset=ds._to_mlflow_entity(),
                tags=[InputTag(key=MLFLOW_DATASET_CONTEXT, value="training")],
            )
        ],
    )
    X_train, _ = frames["train"]
    contract.write_profile(client, run_id, X_train, spec, workdir)
    X_test, y_test = frames["test"]
    contract.write_eval_split(client, run_id, X_test, y_test, spec.target, workdir)


def _log_plots(
    client: Any,
    run_id: str,
    pipe: Pipeline,
    spec: DatasetSpec,
    test_preds: evaluate.Predictions,
    val: tuple[pd.DataFrame, pd.Series],
    seed: int,
    workdir: Path,
) -> None:
    """Permutation importance and the PNG plots; runs in a thread beside the model logging."""
    imp = evaluate.permutation_importances(pipe, val[0], val[1], seed)
    plot_dir = workdir / "plots"
    evaluate.make_plots(spec.task, test_preds, imp, plot_dir)
    client.log_artifacts(run_id, str(plot_dir), "plots")


def _score_and_plot(
    pool: ThreadPoolExecutor,
    client: Any,
    run_id: str,
    pipe: Pipeline,
    spec: DatasetSpec,
    frames: dict[str, tuple[pd.DataFrame, pd.Series]],
    cfg: TrainConfig,
    workdir: Path,
) -> tuple[dict[str, float], Future[None] | None]:
    """Metrics of every split, the plots started in ``pool``, then the reference sample.

    Uses the client with an explicit run id (MLflow's active run is per thread).
    """
    metrics: dict[str, float] = {}
    preds: dict[str, evaluate.Predictions] = {}
    plots = None
    # The test split first: the plots (the longest chain) start as soon as it is scored.
    for name in ("test", "val", "train"):
        X, y = frames[name]
        preds[name] = evaluate.predict_all(pipe, X, y, spec.task)
        metrics.update(evaluate.compute_metrics(spec.task, preds[name], f"{name}_"))
        if name == "test" and cfg.plots:
            plots = pool.submit(
                _log_plots, client, run_id, pipe, spec, preds["test"], frames["val"], cfg.seed,
                workdir,
            )  # fmt: skip
    X_train, y_train = frames["train"]
    contract.write_sample(
        client, run_id, X_train, y_train, preds["train"].y_pred, spec, cfg.seed, workdir
    )
    return metrics, plots


def _log_full(
    *,
    client: Any,
    run_id: str,
    pool: ThreadPoolExecutor,
    pipe: Pipeline,
    spec: DatasetSpec,
    frames: dict[str, tuple[pd.DataFrame, pd.Series]],
    cfg: TrainConfig,
    model_key: str,
    workdir: Path,
) -> tuple[dict[str, float], str, bool, str]:
    """ONNX copy, model, metrics on every split, plots and reference sample for a fitted pipe.

    The splits are scored and the plots drawn in ``pool`` while the model is logged here.
    """
    import mlflow
    from mlflow.models import infer_signature

    X_train, y_train = frames["train"]
    X_test, _ = frames["test"]
    # Nothing below needs MLflow's active run until the model is logged: scoring the splits
    # (then the plots and the reference sample) and the ONNX conversion start at once in the
    # pool, beside the signature and the skops serialisation here.
    if len(X_train) > TRAIN_METRIC_ROWS:
        scored = X_train.sample(TRAIN_METRIC_ROWS, random_state=cfg.seed)
        X_train, y_train = scored, y_train.loc[scored.index]
    mlflow.log_param("train_metric_rows", len(X_train))
    scoring = pool.submit(
        _score_and_plot,
        pool,
        client,
        run_id,
        pipe,
        spec,
        {**frames, "train": (X_train, y_train)},
        cfg,
        workdir,
    )
    converting = pool.submit(onnx_export.convert, pipe, spec, X_test) if cfg.onnx else None
    example = frames["train"][0].head(5)
    with warnings.catch_warnings():
        # MLflow hints that integer *outputs* (class labels) cannot hold NaN: true and harmless.
        warnings.filterwarnings("ignore", message=".*Integer columns.*", category=UserWarning)
        signature = infer_signature(example, pipe.predict(example))
    # skops with reviewed types, or cloudpickle for a user's class under --allow-pickle.
    fmt, trusted = pipelines.model_format(pipe, cfg.allow_pickle)
    extra_files: list[str] = []
    onnx_exact = False
    onnx_note = "skipped (--no-onnx)"
    if converting is not None:
        blob, check = converting.result()
        (workdir / "onnx").mkdir(exist_ok=True)
        (workdir / "onnx" / "check.json").write_text(json.dumps(check.as_dict(), indent=2))
        mlflow.log_artifact(str(workdir / "onnx" / "check.json"), "onnx")
        onnx_note = f"{'not kept' if check.attempted else 'not attempted'}: {check.reason}"
        if check.rows_checked:
            # Only a comparison that ran has a difference; 0 would claim a perfect match.
            mlflow.log_metric("onnx_max_abs_diff", check.max_abs_diff)
        if blob is not None:
            onnx_note = "exact copy logged"
            onnx_path = workdir / "onnx" / ONNX_FILE
            onnx_path.write_bytes(blob)
            mlflow.log_artifact(str(onnx_path), "onnx")
            extra_files.append(str(onnx_path))
            onnx_exact = True
    mlflow.set_tag(MLCYCLE_ONNX, "exact" if onnx_exact else "none")

    spec_doc = {
        "target": spec.target,
        "task": spec.task,
        "numeric": list(spec.numeric),
        "categorical": list(spec.categorical),
        "classes": list(spec.classes),
        "time_column": spec.time_column,
        "dropped": spec.dropped,
        "estimator": model_key,
        "onnx": ONNX_FILE if onnx_exact else None,
    }
    # mlflow.sklearn.log_model's guarantees with one verification load and no copy.
    info = model_log.log_sklearn_model(
        client,
        run_id,
        pipe,
        name=MODEL_ARTIFACT,
        signature=signature,
        input_example=example,
        pip_requirements=[*pip_requirements(), *pipelines.model_requirements(pipe, fmt)],
        trusted_types=trusted,
        serialization_format=fmt,
        metadata={"mlcycle": spec_doc},
        extra_files=extra_files or None,
        workdir=workdir,
    )
    mlflow.set_tag(MLCYCLE_MODEL_URI, info.model_uri)
    metrics, plots = scoring.result()
    # Logged with the model's id as well, so the MLflow UI shows them on run and model.
    mlflow.log_metrics(metrics, model_id=info.model_id)
    if plots is not None:
        plots.result()
    return metrics, info.model_uri, onnx_exact, onnx_note


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
    import mlflow

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
        ) as run,
        tempfile.TemporaryDirectory() as tmp,
        # Last in, first out: side work finishes before the files and the run are closed.
        ThreadPoolExecutor(max_workers=4, thread_name_prefix="mlcycle-train") as pool,
    ):
        ends_failed.run_id = run.info.run_id
        # Under `mlflow run` the project's run (MLFLOW_RUN_ID) is resumed in its experiment.
        experiment_id = run.info.experiment_id
        mlflow.set_tags(_tags(spec, model_key))
        mlflow.set_tag(MLCYCLE_KIND, "search" if cfg.trials else "train")
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
        X_train, y_train = frames["train"]
        workdir = Path(tmp)
        # Dataset lineage and reference statistics need no model: log them beside the fit.
        data_side = pool.submit(
            _log_data_side, client, run.info.run_id, cfg, spec, df, frames, workdir
        )
        if cfg.trials:
            if cfg.search_engine == "optuna":
                from mlcycle.train import search

                best_pipe, params, child_ids, best_id = search.optuna_search(
                    cfg, spec, model_key, overrides, frames, experiment_id, run.info.run_id,
                    client, on_trial,
                )  # fmt: skip
            else:
                best_pipe, params, child_ids, best_id = _search(
                    client, cfg, spec, model_key, overrides, frames, experiment_id, on_trial
                )
            mlflow.set_tag(MLCYCLE_BEST_TRIAL_RUN_ID, best_id)
            mlflow.log_param("search_trials", cfg.trials)
        else:
            params = pipelines.estimator_params(model_key, spec.task, overrides, cfg.seed)
            best_pipe = trial.fit(
                pipelines.build_pipeline(spec, model_key, params), X_train, y_train
            )
        t_fit = time.perf_counter()
        # `mlflow run` has already logged the entry point's parameters on this run; MLflow
        # refuses to change a logged value, so those keep the project's spelling.
        logged = client.get_run(run.info.run_id).data.params
        all_params = {**base, **{f"model__{k}": v for k, v in params.items()}}
        mlflow.log_params({k: v for k, v in all_params.items() if k not in logged})
        metrics, model_uri, onnx_exact, onnx_note = _log_full(
            client=client,
            run_id=run.info.run_id,
            pool=pool,
            pipe=best_pipe,
            spec=spec,
            frames=frames,
            cfg=cfg,
            model_key=model_key,
            workdir=workdir,
        )
        data_side.result()
        t_end = time.perf_counter()
        seconds = {
            "prepare_seconds": t_prep - t_start,
            "fit_seconds": t_fit - t_prep,
            "log_seconds": t_end - t_fit,
            "total_seconds": t_end - t_start,
        }
        mlflow.log_metrics(seconds)
    return TrainResult(
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        model_uri=model_uri,
        task=spec.task,
        metrics=metrics,
        params=params,
        onnx_exact=onnx_exact,
        child_run_ids=tuple(child_ids),
        seconds=seconds,
        onnx_note=onnx_note,
    )


def _search(
    client: Any,
    cfg: TrainConfig,
    spec: DatasetSpec,
    model_key: str,
    overrides: dict[str, Any],
    frames: dict[str, tuple[pd.DataFrame, pd.Series]],
    experiment_id: str,
    on_trial: TrialCallback | None,
) -> tuple[Pipeline, dict[str, Any], list[str], str]:
    """Random search: each trial a nested run with params and train/val metrics."""
    import mlflow

    metric, higher = evaluate.primary_metric(spec.task)
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
