"""Inputs of a monitoring window: the reference, the current window, the labels.

API:

- :class:`ReferenceData` — profile, bounded sample, spec and quality of a training run.
- :func:`load_reference` — from a model version's training run (the champion by default).
- :func:`reference_from_frame` — from a table given by the user.
- :class:`Window`, :func:`read_inference_log` — the inference log's time range and reader,
  from :mod:`mlcycle.inference_log` (which owns the log's schema, layout and reading).
- :func:`stream_inference_log` — the same rows folded batch by batch into a
  :class:`~mlcycle.monitoring.summary.WindowSummary` (bounded memory, any window size).
- :func:`join_labels` — late labels joined by ``record_id`` or, when unambiguous, by
  ``request_id`` (and ``record_index``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle import contract
from mlcycle.data import DatasetSpec, load_table, prepare_features
from mlcycle.errors import DataError, ModelNotFound, MonitoringError
from mlcycle.inference_log import (
    IDENTITY_COLUMNS,
    PREDICTION,
    STREAM_BATCH_ROWS,
    Window,
    read_inference_log,
    scan_inference_log,
)
from mlcycle.monitoring.summary import WindowSummary, class_labels
from mlcycle.train import reference as reference_mod

logger = logging.getLogger(__name__)

CHAMPION = "champion"
#: Log columns a streamed window keeps besides the model's: labels join on the ids, retrain
#: reads the time.
STREAM_KEEP = (*IDENTITY_COLUMNS, PREDICTION)
__all__ = [  # the log's reader and time range are re-exported: monitoring reads through them
    "ReferenceData",
    "Window",
    "join_labels",
    "load_current",
    "load_reference",
    "read_inference_log",
    "reference_for_table",
    "reference_from_frame",
    "resolve_version",
    "stream_inference_log",
]


@dataclass(frozen=True)
class ReferenceData:
    """What the current window is compared with."""

    profile: dict[str, Any]
    sample: pd.DataFrame
    task: str
    target: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    classes: tuple[str, ...] = ()
    quality: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        """Feature columns in model input order."""
        return [*self.numeric, *self.categorical]

    def prediction_profile(self) -> dict[str, Any]:
        """Profile entry of the ``prediction`` column, built from the sample."""
        pred = self.sample["prediction"]
        if self.task == "classification":
            counts = class_labels(pred).value_counts()
            return {
                "type": "categorical",
                "categories": {str(k): int(v) for k, v in counts.items()},
                "n_categories": int(counts.size),
            }
        spec = DatasetSpec(
            target=self.target, task="regression", numeric=("prediction",), categorical=()
        )
        frame = pd.DataFrame({"prediction": pd.to_numeric(pred, errors="coerce")})
        return dict(reference_mod.profile(frame, spec)["columns"]["prediction"])


def _quality_from_run(metrics: dict[str, float], task: str) -> dict[str, float]:
    keys = ("accuracy", "f1") if task == "classification" else ("rmse", "mae", "r2")
    return {k: float(metrics[f"test_{k}"]) for k in keys if f"test_{k}" in metrics}


def resolve_version(client: Any, name: str, version: str | None = None) -> Any:
    """The registered version ``version``, or the ``@champion`` one.

    Raises:
        ModelNotFound: no such version, or no champion yet.
    """
    try:
        if version is not None:
            return client.get_model_version(name, str(version))
        return client.get_model_version_by_alias(name, CHAMPION)
    except Exception as exc:
        what = f"version {version}" if version is not None else "@champion"
        raise ModelNotFound(f"model '{name}' has no {what}: {exc}") from exc


def load_reference(client: Any, name: str, version: str | None = None) -> ReferenceData:
    """The reference that training stored for a registered model version.

    Args:
        client: an ``MlflowClient``.
        name: registered model name.
        version: a version number; the ``@champion`` when omitted.

    Raises:
        ModelNotFound: no such version or it has no training run.
        MissingPiece: the run has no ``reference/`` artifacts (a model not trained by
            mlcycle whose contract was never written; give a reference table instead).
    """
    mv = resolve_version(client, name, version)
    if not mv.run_id:
        raise ModelNotFound(f"model '{name}' version {mv.version} has no training run")
    run = client.get_run(mv.run_id)
    profile, sample = contract.load_reference_files(client, mv.run_id, f"'{name}' v{mv.version}")
    cols = profile["columns"]
    terms = contract.read(run.data.tags, {"task": profile.get("task"), "target": None})
    task = terms.task
    target = terms.target or profile.get("target", "")
    classes: tuple[str, ...] = ()
    if task == "classification" and target in sample.columns:
        classes = tuple(sorted(map(str, pd.unique(sample[target]))))
    return ReferenceData(
        profile=profile,
        sample=sample,
        task=task,
        target=target,
        numeric=tuple(c for c, v in cols.items() if v["type"] == "numeric"),
        categorical=tuple(c for c, v in cols.items() if v["type"] == "categorical"),
        classes=classes,
        quality=_quality_from_run(run.data.metrics, task),
        run_id=mv.run_id,
        model_name=name,
        model_version=str(mv.version),
        params=dict(run.data.params),
    )


def reference_from_frame(
    df: pd.DataFrame,
    like: ReferenceData | None = None,
    spec: DatasetSpec | None = None,
    seed: int = 0,
) -> ReferenceData:
    """A reference built from a table (features, target, optionally ``prediction``).

    The columns and task come from ``like`` (the model's own reference) or ``spec``.

    Raises:
        ConfigError: neither ``like`` nor ``spec`` is given.
        DataError: the table lacks feature columns.
    """
    if spec is None:
        if like is None:
            raise MonitoringError("a reference table needs the model's spec (give the model)")
        spec = DatasetSpec(
            target=like.target,
            task=like.task,  # type: ignore[arg-type]
            numeric=like.numeric,
            categorical=like.categorical,
            classes=like.classes,
        )
    X = prepare_features(df, spec)
    profile = reference_mod.profile(X, spec)
    sample = X.copy()
    if spec.target in df.columns:
        sample[spec.target] = df[spec.target].to_numpy()
    if "prediction" in df.columns:
        sample["prediction"] = df["prediction"].to_numpy()
    if len(sample) > reference_mod.MAX_REFERENCE_ROWS:
        sample = sample.sample(reference_mod.MAX_REFERENCE_ROWS, random_state=seed)
    return ReferenceData(
        profile=profile,
        sample=sample.reset_index(drop=True),
        task=spec.task,
        target=spec.target,
        numeric=spec.numeric,
        categorical=spec.categorical,
        classes=spec.classes or (like.classes if like else ()),
        quality=dict(like.quality) if like else {},
        run_id=like.run_id if like else None,
        model_name=like.model_name if like else None,
        model_version=like.model_version if like else None,
        params=dict(like.params) if like else {},
    )


def reference_for_table(
    client: Any,
    name: str,
    version: str | None,
    df: pd.DataFrame,
    target: str | None = None,
    seed: int = 0,
) -> ReferenceData:
    """A reference table given by the user, used as given.

    When the version has its own reference, its columns, task and quality frame the table
    (:func:`reference_from_frame`); otherwise the table alone defines them, with the target
    from ``target`` or the version's contract, so no artifacts are needed.

    Raises:
        ModelNotFound: no such version.
        MissingPiece: neither the version nor ``target`` says which column it predicts.
        DataError: the table lacks the target or is unusable.
    """
    from mlcycle.data import infer_spec

    try:
        like = load_reference(client, name, version)
    except contract.MissingPiece:
        like = None
    if like is not None and (target is None or target == like.target):
        return reference_from_frame(df, like=like, seed=seed)
    mv = resolve_version(client, name, version)
    terms = contract.read(dict(mv.tags or {}))
    col = contract.require_target(target or terms.target, f"'{name}' v{mv.version}")
    if col not in df.columns:
        raise DataError(f"the reference table lacks the target column '{col}'")
    # A task the contract states is kept; otherwise the target's values decide.
    task = terms.task if contract.TAG_TASK in (mv.tags or {}) else None
    spec = infer_spec(df, col, task)  # type: ignore[arg-type]
    ref = reference_from_frame(df, spec=spec, seed=seed)
    return ReferenceData(
        **{
            **ref.__dict__,
            "run_id": mv.run_id,
            "model_name": name,
            "model_version": str(mv.version),
        }
    )


def stream_inference_log(
    root: str,
    name: str,
    summary: WindowSummary,
    window: Window | None = None,
    version: str | None = None,
    role: str | None = "champion",
    problems: list[str] | None = None,
    since: pd.Timestamp | None = None,
    batch_rows: int = STREAM_BATCH_ROWS,
) -> WindowSummary:
    """Fold the window's rows into ``summary`` one Arrow record batch at a time.

    Memory holds one batch and the summary, whatever the window's size: each file is
    scanned with read-ahead off, only the columns the reference knows (and the log's ids)
    are read, and a file's statistics join the window's only once the whole file was read,
    so a file that breaks half-way is skipped whole, as :func:`read_inference_log` does
    (both read through :func:`mlcycle.inference_log.scan_inference_log`).

    Args:
        root: the inference log's directory or ``s3://`` prefix.
        name: registered model name.
        summary: an empty summary of the reference (:func:`mlcycle.monitoring.drift.new_summary`).
        window: the time range; the whole log when ``None``.
        version: only this version's partitions.
        role: only rows of this role (``None`` for all).
        problems: unreadable files are described here and skipped; without it they raise.
        since: only rows with a timestamp at or after this one.
        batch_rows: rows per record batch.

    Raises:
        DataError: the log root does not exist; a file cannot be read and ``problems`` is
            ``None``.
    """
    wanted = {*summary.profile["columns"], *STREAM_KEEP, summary.profile.get("target", "")}
    for log_file in scan_inference_log(root, name, window, version, role, since, wanted):
        part = summary.fresh()
        try:
            part.note_columns(log_file.column_names)
            for batch in log_file.batches(batch_rows):
                part.add(batch)
        except Exception as exc:
            if problems is None:
                raise DataError(
                    f"cannot read the inference log file {log_file.path}: {exc}"
                ) from exc
            why = (
                str(exc)
                if isinstance(exc, DataError)
                else f"unreadable ({type(exc).__name__}: {exc})"
            )
            problems.append(f"{log_file.path}: {why[:240]}")
            logger.warning("inference log: skipped %s", problems[-1])
            continue
        summary.merge(part)
    return summary


#: Bytes the Parquet reader buffers per column: pages are read as they are decoded instead
#: of a whole row group at once (a 1M-row row group would cost its full decoded size).
READ_BUFFER_BYTES = 1 << 20


def summarise_file(
    path: str | Path,
    summary: WindowSummary,
    batch_rows: int = STREAM_BATCH_ROWS,
) -> WindowSummary | None:
    """Fold a Parquet window file into ``summary`` one record batch at a time.

    The file is never held whole, nor a whole row group: the reader buffers pages
    (:data:`READ_BUFFER_BYTES` per column), so memory holds about one batch and the summary.
    Only the columns the reference knows, the prediction and the log's ids are read.
    Returns ``None`` when the file must be read whole instead (:func:`load_current`): it is
    not Parquet, or it carries the target column (its labels feed quality metrics and
    retraining).

    Raises:
        DataError: the Parquet file cannot be read or has duplicate column names.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcycle.storage import filesystem

    source = str(path)
    if not source.lower().endswith((".parquet", ".pq")):
        return None
    fs, where = filesystem(source)
    target = summary.profile.get("target", "")
    wanted = {*summary.profile["columns"], *STREAM_KEEP}
    try:
        with fs.open_input_file(where) as handle:
            reader = pq.ParquetFile(handle, buffer_size=READ_BUFFER_BYTES, pre_buffer=False)
            names = reader.schema_arrow.names
            if target in names:
                return None
            if len(set(names)) != len(names):
                raise DataError(f"'{source}' has duplicate column names")
            summary.note_columns(names)
            columns = [c for c in names if c in wanted]
            for batch in reader.iter_batches(batch_size=batch_rows, columns=columns):
                summary.add(batch)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read '{source}' as Parquet: {exc}") from exc
    # Arrow's allocator keeps the freed batches' pages; hand them back, so the report step
    # (Evidently's imports and plots) reuses them instead of raising the peak.
    pa.default_memory_pool().release_unused()
    logger.info("summarised %d rows of %s in %d batches", summary.rows, source, summary.batches)
    return summary


def load_current(path: str) -> pd.DataFrame:
    """A window given as a CSV or Parquet file (an empty file is an empty window).

    Raises:
        DataError: the file cannot be read.
    """
    try:
        return load_table(path)
    except DataError as exc:
        if "has no rows" in str(exc) or "is empty" in str(exc):
            return pd.DataFrame()
        raise


def join_labels(
    current: pd.DataFrame,
    labels: pd.DataFrame,
    target: str,
    problems: list[str] | None = None,
) -> pd.DataFrame:
    """Attach late labels to the window, one label to at most one logged record.

    A label row with a ``record_id`` (the id the server assigned to the scored record) joins
    that record. One without joins by ``request_id`` (+ ``record_index``, default 0) — but
    ``request_id`` comes from the client and can repeat, so a request id that names several
    logged records is ambiguous: its label is refused (described in ``problems`` and logged),
    never copied onto each of them. The last of duplicate labels for one key wins.

    Raises:
        DataError: the labels lack the target column, or both ``record_id`` and
            ``request_id``; the window has neither column to join on.
    """
    if target not in labels.columns:
        raise DataError(f"labels lack the column '{target}'")
    if "record_id" not in labels.columns and "request_id" not in labels.columns:
        raise DataError("labels lack the column 'request_id' (or 'record_id')")
    if current.empty:
        return current
    cur = current.drop(columns=[target], errors="ignore").reset_index(drop=True)
    value = pd.Series(np.nan, index=cur.index, dtype="object")
    by_record = labels.iloc[:0]
    if "record_id" in labels.columns:
        if "record_id" not in cur.columns and "request_id" not in labels.columns:
            raise DataError("the window has no record_id column to join labels on")
        if "record_id" in cur.columns:  # else (a file without ids): join by request_id
            by_record = labels[labels["record_id"].notna()]
            labels = labels[labels["record_id"].isna()]
    if len(by_record):
        lab = by_record.drop_duplicates("record_id", keep="last")
        mapping = pd.Series(lab[target].to_numpy(), index=lab["record_id"].astype("str"))
        value = cur["record_id"].astype("str").map(mapping).astype("object")
    if len(labels) and "request_id" in labels.columns:
        if "request_id" not in cur.columns:
            raise DataError("the window has no request_id column to join labels on")
        lab = labels[["request_id", target]].copy()
        lab["record_index"] = (
            labels["record_index"].fillna(0).astype(np.int64)
            if "record_index" in labels.columns
            else 0
        )
        lab["request_id"] = lab["request_id"].astype("str")
        lab = lab.drop_duplicates(["request_id", "record_index"], keep="last")
        keys = pd.DataFrame(
            {
                "request_id": cur["request_id"].astype("str"),
                "record_index": (
                    cur["record_index"].astype(np.int64) if "record_index" in cur.columns else 0
                ),
            }
        )
        ambiguous = keys.duplicated(keep=False)
        hit = keys.merge(lab, on=["request_id", "record_index"], how="left", validate="m:1")
        joined = hit[target].where(~ambiguous.to_numpy())
        refused = lab.merge(keys[ambiguous].drop_duplicates(), on=["request_id", "record_index"])
        if len(refused):
            ids = ", ".join(pd.unique(refused["request_id"])[:5])
            msg = (
                f"{len(refused)} label(s) refused: their request id names several logged "
                f"records ({ids}); send record_id to label them"
            )
            logger.warning("labels: %s", msg)
            if problems is not None:
                problems.append(msg)
        value = value.where(value.notna(), joined.to_numpy())
    out = cur.assign(**{target: value.to_numpy()})
    labelled = out[target].notna()
    if labelled.any():
        out[target] = out[target].infer_objects()
    logger.info("labels joined: %d of %d rows labelled", int(labelled.sum()), len(out))
    return out


def production_training_rows(
    labelled: pd.DataFrame, reference: ReferenceData, time_column: str | None
) -> pd.DataFrame:
    """Labelled window rows shaped like the training table (features, target, time column)."""
    keep = (
        labelled[labelled[reference.target].notna()]
        if reference.target in labelled.columns
        else labelled.iloc[:0]
    )
    out = keep[[c for c in reference.features if c in keep.columns]].copy()
    out[reference.target] = keep[reference.target].to_numpy()
    if time_column and "timestamp" in keep.columns:
        out[time_column] = pd.to_datetime(keep["timestamp"]).dt.tz_localize(None).to_numpy()
    return out.reset_index(drop=True)
