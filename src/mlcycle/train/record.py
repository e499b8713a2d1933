"""What a training run records about its data and its fitted model.

API: :func:`log_data_side` (dataset lineage, content digest, reference profile, evaluation
split: needs no model, runs beside the fit), :func:`import_after_fit_modules` (beside the
fit too), :func:`blas_leaves_a_core` (around the fit), :func:`log_fitted` (ONNX copy, model, metrics
of every split, plots and reference sample of a fitted pipeline), :class:`Fitted`,
:func:`log_batch`.

Everything here writes through the client with an explicit run id (MLflow's active run is
per thread, and most of this runs in worker threads). Parameters, tags and metrics go in one
``log_batch`` each where they are known together: every call is a round trip and a
transaction in the tracking store.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlcycle import contract, model_metrics
from mlcycle import data as data_mod
from mlcycle.data import DatasetSpec
from mlcycle.extras import MODULES, available
from mlcycle.mlflow_compat import preset_dataset_schema
from mlcycle.tags import MLCYCLE_MODEL_URI, MLCYCLE_ONNX
from mlcycle.train import evaluate, model_log, onnx_export, pipelines, plots
from mlcycle.train.types import MODEL_ARTIFACT, ONNX_FILE, TrainConfig, pip_requirements

Frames = dict[str, tuple[pd.DataFrame, pd.Series]]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

#: Rows the dataset schema's column types are inferred from (MLflow walks every value of text
#: columns); whether a column may be missing is read from all rows.
SCHEMA_SAMPLE_ROWS = 500
#: Training rows scored for the ``train_*`` metrics (a seeded sample above this size): a
#: diagnostic of the gap to the validation split, whose standard error at 20k rows is about
#: 0.3 points of accuracy. Scoring more costs ensembles seconds (100 deep trees) and tells
#: no more; the reference sample (5,000 rows) is drawn from these.
TRAIN_METRIC_ROWS = 20_000


def log_batch(
    client: Any,
    run_id: str,
    *,
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    model_id: str | None = None,
    run_metrics: dict[str, float] | None = None,
) -> None:
    """Params, tags and metrics of ``run_id`` in one call (MLflow splits it past its limits).

    ``model_id`` logs ``metrics`` on the logged model as well, so the MLflow UI shows them on
    both the run and the model; ``run_metrics`` are the run's alone.
    """
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[
            *(Metric(k, float(v), now, 0, model_id=model_id) for k, v in (metrics or {}).items()),
            *(Metric(k, float(v), now, 0) for k, v in (run_metrics or {}).items()),
        ],
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )


#: What the logging after the fit imports first: seconds of a cold ``mlcycle train``.
AFTER_FIT_MODULES = ("skops.io", "mlflow.sklearn", "mlflow.models", "mlflow.pyfunc.scoring_server")


def import_after_fit_modules(onnx: bool) -> None:
    """Import what :func:`log_fitted` needs (and the ONNX extra, when installed and wanted).

    Run beside the fit, so that a cold process imports them while the model fits instead of
    after it; an import that fails is left to the step that needs the module to report.
    """
    names = [*AFTER_FIT_MODULES]
    if onnx and available(*MODULES["onnx"]):
        names.extend(MODULES["onnx"])
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            logger.debug("importing %s ahead failed: %s", name, exc)


def _dataset(frame: pd.DataFrame, source: str, target: str, digest: str) -> Any:
    """The training table as an MLflow dataset, without MLflow walking every row.

    ``PandasDataset.schema`` is a cached property inferred from the whole frame (seconds on
    200k rows with text columns); its types come from a bounded sample, and the digest is
    mlcycle's own hash of the full table.
    """
    import mlflow

    ds = mlflow.data.from_pandas(  # type: ignore[attr-defined]
        frame, source=source, targets=target, name=Path(source).name, digest=digest
    )
    preset_dataset_schema(ds, frame, SCHEMA_SAMPLE_ROWS)
    return ds


def log_data_side(
    client: Any,
    run_id: str,
    cfg: TrainConfig,
    spec: DatasetSpec,
    source_frame: pd.DataFrame,
    frames: Frames,
    workdir: Path,
) -> str:
    """Dataset lineage, reference profile and evaluation split; returns the content digest.

    Needs the data but not the model: runs in a thread beside the fit. The digest is
    returned for the caller's last batch of tags rather than written on its own.
    """
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    digest = data_mod.digest(source_frame)
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
    return digest


def _log_plots(
    client: Any,
    run_id: str,
    pipe: Pipeline,
    spec: DatasetSpec,
    test: Future[model_metrics.Predictions],
    val: tuple[pd.DataFrame, pd.Series],
    seed: int,
    workdir: Path,
) -> None:
    """Permutation importance and the SVG plots, once the test split is scored."""
    imp = evaluate.permutation_importances(pipe, val[0], val[1], seed)
    plot_dir = workdir / "plots"
    plots.make_plots(spec.task, test.result(), imp, plot_dir)
    client.log_artifacts(run_id, str(plot_dir), "plots")


def _score(
    client: Any,
    run_id: str,
    pipe: Pipeline,
    spec: DatasetSpec,
    test: Future[model_metrics.Predictions],
    frames: Frames,
    seed: int,
    workdir: Path,
) -> dict[str, float]:
    """Metrics of every split (the test split scored by ``test``), then the reference sample."""
    metrics = model_metrics.compute_metrics(spec.task, test.result(), "test_")
    train_preds = None
    for name in ("val", "train"):
        X, y = frames[name]
        train_preds = evaluate.predict_all(pipe, X, y, spec.task)
        metrics.update(model_metrics.compute_metrics(spec.task, train_preds, f"{name}_"))
    assert train_preds is not None
    X_train, y_train = frames["train"]
    contract.write_sample(client, run_id, X_train, y_train, train_preds.y_pred, spec, seed, workdir)
    return metrics


@dataclass(frozen=True)
class Fitted:
    """What :func:`log_fitted` recorded."""

    #: The model's metrics on every split, for the caller's last batch (with ``model_id``).
    metrics: dict[str, float]
    model_uri: str
    onnx_exact: bool
    onnx_note: str
    #: Run metrics that are not the model's (``onnx_max_abs_diff``), for the caller's batch.
    run_metrics: dict[str, float]
    model_id: str
    #: Tags for the caller's batch (ONNX kept or not, the model's URI).
    tags: dict[str, str]


def _record_onnx(
    converting: Future[tuple[bytes | None, onnx_export.OnnxCheck]], workdir: Path
) -> tuple[Path, dict[str, float], str, bool]:
    """Write ``onnx/check.json`` (and ``onnx/model.onnx`` when exact) under ``workdir``.

    Returns the directory, the metric to log, the note for people and whether it is exact.
    """
    blob, check = converting.result()
    onnx_dir = workdir / "onnx"
    onnx_dir.mkdir(exist_ok=True)
    (onnx_dir / "check.json").write_text(json.dumps(check.as_dict(), indent=2))
    note = f"{'not kept' if check.attempted else 'not attempted'}: {check.reason}"
    # Only a comparison that ran has a difference; 0 would claim a perfect match.
    metrics = {"onnx_max_abs_diff": check.max_abs_diff} if check.rows_checked else {}
    if blob is None:
        return onnx_dir, metrics, note, False
    (onnx_dir / ONNX_FILE).write_bytes(blob)
    return onnx_dir, metrics, "exact copy logged", True


@contextlib.contextmanager
def blas_leaves_a_core() -> Iterator[None]:
    """Run the fit with one BLAS thread fewer than BLAS would use: the data side takes a core.

    :func:`log_data_side` runs in a thread beside the fit; with BLAS using every core too, the
    cores are oversubscribed and OpenBLAS' spinning threads wait on it. On two cores a linear
    fit on 200k rows took 0.52 s alone with two BLAS threads and 0.43 s with one; tracked, with
    the data side beside it, 1.50 s against 1.30 s for the whole run. A user's own limit
    (``OPENBLAS_NUM_THREADS=1``) stays; OpenMP (boosted trees) and joblib (forests) are not
    touched.
    """
    from threadpoolctl import threadpool_info, threadpool_limits

    blas = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    if not blas or max(blas) <= 1:
        yield
        return
    with threadpool_limits(max(blas) - 1, user_api="blas"):
        yield


def _one_native_thread(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with the native thread pools (BLAS, OpenMP) at one thread each.

    The log phase runs its scoring chains, plots, ONNX check and model logging side by side on
    the machine's cores; a pool inside each prediction would spin for cores those hold (the
    linear pipeline's log phase at 200k rows used about 0.25 CPU s more with them).
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency

        with threadpool_limits(1):
            return fn(*args, **kwargs)

    return wrapper


@_one_native_thread
def log_fitted(
    *,
    client: Any,
    run_id: str,
    pool: ThreadPoolExecutor,
    pipe: Pipeline,
    spec: DatasetSpec,
    frames: Frames,
    cfg: TrainConfig,
    model_key: str,
    workdir: Path,
    params: dict[str, Any],
) -> Fitted:
    """ONNX copy, model, metrics on every split, plots and reference sample for a fitted pipe.

    ``params`` (the run's parameters not logged yet) are logged in one batch before the
    model: the logged model carries them. The test split is scored once, in ``pool``; the
    ONNX check, the plots and the metrics use that one prediction. Scoring, plots and the
    ONNX conversion run in ``pool`` while the model is serialised and logged here. The
    metrics and tags are returned for the caller's last batch, not written here.
    """
    from mlflow.models import infer_signature

    X_train, y_train = frames["train"]
    X_test, y_test = frames["test"]
    if len(X_train) > TRAIN_METRIC_ROWS:
        # The rows pandas' seeded sample picks, kept in table order: scoring rows scattered
        # in memory costs 2.5x (the encoders look up each text value where it lies).
        rows = np.random.RandomState(cfg.seed).choice(len(X_train), TRAIN_METRIC_ROWS, False)
        rows.sort()
        X_train, y_train = X_train.iloc[rows], y_train.iloc[rows]
    # The test split first: the plots and the ONNX check wait for it; workers take tasks in
    # submission order, so a task waiting on it never holds the thread it needs.
    test = pool.submit(evaluate.predict_all, pipe, X_test, y_test, spec.task)
    converting = (
        pool.submit(onnx_export.convert, pipe, spec, X_test, test.result) if cfg.onnx else None
    )
    plotting = (
        pool.submit(_log_plots, client, run_id, pipe, spec, test, frames["val"], cfg.seed, workdir)
        if cfg.plots
        else None
    )
    scoring = pool.submit(
        _score, client, run_id, pipe, spec, test,
        {**frames, "train": (X_train, y_train)}, cfg.seed, workdir,
    )  # fmt: skip
    # While the workers score: the parameters, before the logged model copies them.
    log_batch(client, run_id, params={**params, "train_metric_rows": len(X_train)})
    example = frames["train"][0].head(5)
    with warnings.catch_warnings():
        # MLflow hints that integer *outputs* (class labels) cannot hold NaN: true and harmless.
        warnings.filterwarnings("ignore", message=".*Integer columns.*", category=UserWarning)
        signature = infer_signature(example, pipe.predict(example))
    # skops with reviewed types, or cloudpickle for a user's class under --allow-pickle.
    fmt, trusted = pipelines.model_format(pipe, cfg.allow_pickle)
    metrics: dict[str, float] = {}
    onnx_exact, onnx_note, extra_files = False, "skipped (--no-onnx)", []
    if converting is not None:
        onnx_dir, metrics, onnx_note, onnx_exact = _record_onnx(converting, workdir)
        client.log_artifacts(run_id, str(onnx_dir), "onnx")
        if onnx_exact:
            extra_files.append(str(onnx_dir / ONNX_FILE))
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
    split_metrics = scoring.result()
    if plotting is not None:
        plotting.result()
    tags = {MLCYCLE_ONNX: "exact" if onnx_exact else "none", MLCYCLE_MODEL_URI: info.model_uri}
    return Fitted(
        split_metrics, info.model_uri, onnx_exact, onnx_note, metrics, info.model_id, tags
    )
