"""The lifecycle contract of a model version: what register, gate and monitor need from it.

API: :class:`Contract`, :func:`log_contract` (public, also ``mlcycle.log_contract``),
:func:`adopt`, :func:`read`, :func:`load_eval_split`, :func:`load_reference_files`, and
the writers training uses (:func:`tags`, :func:`write_profile`, :func:`write_eval_split`,
:func:`write_sample`).

Whoever trained the model, the contract is the same pieces on its MLflow run:

- tags ``mlcycle.target``, ``mlcycle.task`` and (optional) ``mlcycle.pos_label``, copied to
  the registered version;
- the input schema: the model's MLflow signature;
- ``reference/profile.json`` (per-column statistics of the training features) and
  ``reference/sample.parquet`` (a bounded sample of features, target and predictions) for
  drift, both computed by :mod:`mlcycle.reference_profile`;
- ``reference/test.parquet``: the held-out evaluation split the gate scores on.

``mlcycle train`` writes it; user code writes it with :func:`log_contract` after
``log_model``; ``mlcycle register --target --reference`` writes it onto any run
(:func:`adopt`); and each command takes the pieces as options at use time. The messages of
:class:`MissingPiece` name the option or call that supplies the missing piece.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle import reference_profile
from mlcycle.errors import DataError, MlcycleError
from mlcycle.parquet import MAX_DECLARED_BYTES, read_parquet, write_parquet
from mlcycle.tags import MLCYCLE_POS_LABEL, MLCYCLE_TARGET, MLCYCLE_TASK

logger = logging.getLogger(__name__)

TAG_TARGET = MLCYCLE_TARGET
TAG_TASK = MLCYCLE_TASK
TAG_POS_LABEL = MLCYCLE_POS_LABEL
REFERENCE_DIR = "reference"
PROFILE_FILE = "profile.json"
SAMPLE_FILE = "sample.parquet"
EVAL_FILE = "test.parquet"

#: Most cells (rows x columns) read from a contract's Parquet file: the footer is checked
#: first, so a small crafted file cannot make the gate or monitor decode gigabytes. The sample
#: holds at most MAX_REFERENCE_ROWS rows; an evaluation split of 5M rows x 20 columns fits.
MAX_CELLS = 100_000_000

#: How each piece can be supplied, quoted by every "missing piece" error.
SUPPLY = {
    "target": (
        "give --target COL, or write it with `mlcycle register --run-id RUN --target COL "
        "--reference TABLE` or mlcycle.log_contract(..., target=COL)"
    ),
    "eval": (
        "give --eval-data TABLE, or write it with `mlcycle register --run-id RUN --target COL "
        "--reference TABLE --eval-data TABLE` or mlcycle.log_contract(model, train_df, test_df, "
        "target=COL)"
    ),
    "reference": (
        "give --reference TABLE, or write it with `mlcycle register --run-id RUN --target COL "
        "--reference TABLE` or mlcycle.log_contract(model, train_df, test_df, target=COL)"
    ),
}


class MissingPiece(DataError):
    """A piece of the lifecycle contract is neither on the version nor given."""


@dataclass(frozen=True)
class Contract:
    """The labels of a version's contract (the files are read by the functions below)."""

    target: str | None
    task: str
    pos_label: str | None = None


def tags(target: str, task: str, pos_label: Any = None) -> dict[str, str]:
    """The contract's run tags."""
    out = {TAG_TASK: task, TAG_TARGET: target}
    if pos_label is not None:
        out[TAG_POS_LABEL] = str(pos_label)
    return out


def read(tags_: dict[str, str], metadata: dict[str, Any] | None = None) -> Contract:
    """The contract labels from a model's ``mlcycle`` metadata and run or version tags.

    The model's metadata wins (it travels with the model files); tags come next; the task
    defaults to classification as it always has.
    """
    meta = metadata or {}
    return Contract(
        target=meta.get("target") or tags_.get(TAG_TARGET) or None,
        task=meta.get("task") or tags_.get(TAG_TASK) or "classification",
        pos_label=tags_.get(TAG_POS_LABEL) or None,
    )


def require_target(target: str | None, what: str) -> str:
    """``target``, or :class:`MissingPiece` saying how to supply it."""
    if not target:
        raise MissingPiece(f"{what} does not say which column it predicts: " + SUPPLY["target"])
    return target


# --------------------------------------------------------------------------- writers


def write_profile(
    client: Any, run_id: str, X_train: pd.DataFrame, spec: Any, workdir: Path
) -> None:
    """``reference/profile.json`` of the full training features."""
    ref_dir = workdir / REFERENCE_DIR
    ref_dir.mkdir(exist_ok=True)
    (ref_dir / PROFILE_FILE).write_text(json.dumps(reference_profile.profile(X_train, spec)))
    client.log_artifact(run_id, str(ref_dir / PROFILE_FILE), REFERENCE_DIR)


def write_eval_split(
    client: Any, run_id: str, X_test: pd.DataFrame, y_test: Any, target: str, workdir: Path
) -> None:
    """``reference/test.parquet``: the held-out split (features and target) the gate scores."""
    ref_dir = workdir / REFERENCE_DIR
    ref_dir.mkdir(exist_ok=True)
    frame = X_test.copy()
    frame[target] = np.asarray(y_test)
    write_parquet(frame, ref_dir / EVAL_FILE)
    client.log_artifact(run_id, str(ref_dir / EVAL_FILE), REFERENCE_DIR)


def write_sample(
    client: Any,
    run_id: str,
    X: pd.DataFrame,
    y: Any,
    y_pred: np.ndarray | None,
    spec: Any,
    seed: int,
    workdir: Path,
) -> None:
    """``reference/sample.parquet``: a bounded sample of features, target and predictions."""
    sample_dir = workdir / "reference-sample"
    sample_dir.mkdir(exist_ok=True)
    if y_pred is None:
        frame = X.copy()
        frame[spec.target] = np.asarray(y)
        if len(frame) > reference_profile.MAX_REFERENCE_ROWS:
            frame = frame.sample(reference_profile.MAX_REFERENCE_ROWS, random_state=seed)
        frame = frame.reset_index(drop=True)
    else:
        frame = reference_profile.reference_sample(X, y, y_pred, spec, seed)
    write_parquet(frame, sample_dir / SAMPLE_FILE)
    client.log_artifact(run_id, str(sample_dir / SAMPLE_FILE), REFERENCE_DIR)


# --------------------------------------------------------------------------- readers


def load_eval_split(client: Any, run_id: str | None, what: str) -> pd.DataFrame:
    """The held-out split a run stored.

    Raises:
        MissingPiece: no run, or the run has no ``reference/test.parquet``.
    """
    if not run_id:
        raise MissingPiece(f"{what} has no run to hold an evaluation split: " + SUPPLY["eval"])
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, f"{REFERENCE_DIR}/{EVAL_FILE}", tmp)
        except Exception as exc:
            raise MissingPiece(
                f"run {run_id} of {what} has no evaluation split ({REFERENCE_DIR}/{EVAL_FILE}): "
                + SUPPLY["eval"]
            ) from exc
        name = f"{REFERENCE_DIR}/{EVAL_FILE} of run {run_id} ({what})"
        return read_parquet(path, max_cells=MAX_CELLS, max_bytes=MAX_DECLARED_BYTES, name=name)


def load_reference_files(
    client: Any, run_id: str, what: str
) -> tuple[dict[str, Any], pd.DataFrame]:
    """``(profile, sample)`` a run stored under ``reference/``.

    Raises:
        MissingPiece: either file is missing or unreadable.
    """
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(client.download_artifacts(run_id, REFERENCE_DIR, tmp))
            profile = json.loads((local / PROFILE_FILE).read_text())
            sample = read_parquet(
                local / SAMPLE_FILE, max_cells=MAX_CELLS, max_bytes=MAX_DECLARED_BYTES
            )
        except Exception as exc:
            raise MissingPiece(
                f"run {run_id} of {what} has no usable {REFERENCE_DIR}/ artifacts ({exc}): "
                + SUPPLY["reference"]
            ) from exc
    return profile, sample


# --------------------------------------------------------------------------- supplying it


def _predict(model_uri: str | None, X: pd.DataFrame, allow_pickle: bool) -> np.ndarray | None:
    """The model's predictions on ``X`` for the reference sample, or ``None`` if unavailable.

    Loaded through the trust policy: a model it refuses leaves the sample without
    predictions (prediction drift then reads the window alone) rather than running its code.
    """
    if model_uri is None:
        return None
    from mlcycle import trust

    try:
        with tempfile.TemporaryDirectory(prefix="mlcycle-contract-") as dst:
            model = trust.load_pyfunc(model_uri, "the model", allow_pickle=allow_pickle, dst=dst)
            return np.asarray(model.predict(X)).reshape(len(X), -1)[:, 0]
    except MlcycleError as exc:
        logger.warning("reference sample kept without predictions: %s", exc)
        return None


def _frames(
    train_df: pd.DataFrame, test_df: pd.DataFrame | None, target: str, task: str | None
) -> tuple[Any, pd.DataFrame, pd.Series, pd.DataFrame | None, pd.Series | None]:
    from mlcycle import data as data_mod

    spec = data_mod.infer_spec(train_df, target, task)  # type: ignore[arg-type]
    X_train = data_mod.prepare_features(train_df, spec)
    y_train = train_df[target]
    if test_df is None:
        return spec, X_train, y_train, None, None
    if target not in test_df.columns:
        raise DataError(f"the evaluation data lack the target column '{target}'")
    return spec, X_train, y_train, data_mod.prepare_features(test_df, spec), test_df[target]


def write(
    client: Any,
    run_id: str,
    train_df: pd.DataFrame,
    test_df: pd.DataFrame | None,
    *,
    target: str,
    task: str | None = None,
    pos_label: Any = None,
    model_uri: str | None = None,
    allow_pickle: bool = False,
    seed: int = 42,
) -> Contract:
    """Write the whole contract onto a run from the training (reference) and test frames.

    Args:
        client: an ``MlflowClient``.
        run_id: the run that logged the model.
        train_df: training (reference) rows: features and the target column.
        test_df: held-out rows for the gate; ``None`` leaves the run without one.
        target: the column the model predicts.
        task: ``classification`` or ``regression``; inferred from the target when ``None``.
        pos_label: the positive class of a binary classifier.
        model_uri: the logged model, scored on the sample for prediction drift.
        allow_pickle: let the trust policy load pickled models for that scoring.
        seed: sampling seed.

    Raises:
        DataError: the frames lack the target or are unusable for training statistics.
    """
    spec, X_train, y_train, X_test, y_test = _frames(train_df, test_df, target, task)
    if pos_label is not None and spec.classes and str(pos_label) not in spec.classes:
        raise DataError(
            f"pos_label '{pos_label}' is not a class of '{target}': {', '.join(spec.classes)}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_profile(client, run_id, X_train, spec, workdir)
        if X_test is not None:
            write_eval_split(client, run_id, X_test, y_test, target, workdir)
        sample = X_train
        if len(sample) > 5_000:
            sample = sample.sample(5_000, random_state=seed)
        y_pred = _predict(model_uri, sample, allow_pickle)
        write_sample(client, run_id, sample, y_train.loc[sample.index], y_pred, spec, seed, workdir)
    for key, value in tags(target, spec.task, pos_label).items():
        client.set_tag(run_id, key, value)
    logger.info("lifecycle contract written to run %s (target %s)", run_id, target)
    return Contract(target, spec.task, None if pos_label is None else str(pos_label))


def _run_and_model(model_info_or_run: Any) -> tuple[str, str | None]:
    """``(run id, model URI)`` of a ``ModelInfo``, a ``Run``, an ``ActiveRun`` or a run id."""
    if isinstance(model_info_or_run, str):
        return model_info_or_run, None
    run_id = getattr(model_info_or_run, "run_id", None)
    if run_id:
        return str(run_id), getattr(model_info_or_run, "model_uri", None)
    info = getattr(model_info_or_run, "info", None)
    if info is not None and getattr(info, "run_id", None):
        return str(info.run_id), None
    raise DataError(
        "log_contract needs the ModelInfo that log_model returned, a Run, or a run id; "
        f"got {type(model_info_or_run).__name__}"
    )


def log_contract(
    model_info_or_run: Any,
    train_df: pd.DataFrame,
    test_df: pd.DataFrame | None = None,
    *,
    target: str,
    task: str | None = None,
    pos_label: Any = None,
    allow_pickle: bool = False,
) -> Contract:
    """Write mlcycle's lifecycle contract from your own training code, after ``log_model``.

    It writes the tags and ``reference/`` artifacts ``mlcycle train`` writes, so
    ``mlcycle register``, ``gate``, ``promote`` and ``monitor`` need no further options::

        info = mlflow.xgboost.log_model(booster, name="model", input_example=X.head())
        mlcycle.log_contract(info, train_df, test_df, target="churned")

    Args:
        model_info_or_run: what ``log_model`` returned (its model is scored for the
            reference predictions), or a ``Run``/``ActiveRun``/run id.
        train_df: training rows, features and target (the drift reference).
        test_df: held-out rows, features and target (the gate's default evaluation data).
        target: the column the model predicts.
        task: ``classification`` or ``regression``; inferred when ``None``.
        pos_label: the positive class of a binary classifier.
        allow_pickle: let the trust policy load a pickled model to score the sample.

    Returns:
        The contract written.

    Raises:
        DataError: unusable frames or argument.
    """
    from mlflow import MlflowClient

    run_id, model_uri = _run_and_model(model_info_or_run)
    return write(
        MlflowClient(),
        run_id,
        train_df,
        test_df,
        target=target,
        task=task,
        pos_label=pos_label,
        model_uri=model_uri,
        allow_pickle=allow_pickle,
    )
