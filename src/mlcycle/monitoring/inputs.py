"""Inputs of a monitoring window: the reference, the current window, the labels.

API:

- :class:`ReferenceData` — profile, bounded sample, spec and quality of a training run.
- :func:`load_reference` — from a model version's training run (the champion by default).
- :func:`reference_from_frame` — from a table given by the user.
- :class:`Window` — a half-open time range ``[start, end)`` with a stable key.
- :func:`read_inference_log` — the rows the serving process logged for a model in a window
  (a local directory or an ``s3://`` prefix; layout
  ``{root}/model={name}/version={v}/hour={YYYY-MM-DDTHH}/part-*.parquet``).
- :func:`join_labels` — late labels joined by ``request_id`` (and ``record_index``).
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.data import DatasetSpec, load_table, prepare_features
from mlcycle.errors import DataError, ModelNotFound, MonitoringError
from mlcycle.storage import filesystem
from mlcycle.train import reference as reference_mod

logger = logging.getLogger(__name__)

CHAMPION = "champion"


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
            from mlcycle.monitoring.drift import _labels

            counts = _labels(pred).value_counts()
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
        MonitoringError: the run has no ``reference/`` artifacts (trained before profiles).
    """
    mv = resolve_version(client, name, version)
    if not mv.run_id:
        raise ModelNotFound(f"model '{name}' version {mv.version} has no training run")
    run = client.get_run(mv.run_id)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(client.download_artifacts(mv.run_id, "reference", tmp))
            profile = json.loads((local / "profile.json").read_text())
            sample = pd.read_parquet(local / "sample.parquet")
        except Exception as exc:
            raise MonitoringError(
                f"run {mv.run_id} of '{name}' v{mv.version} has no usable reference/ "
                f"artifacts: {exc}"
            ) from exc
    cols = profile["columns"]
    task = run.data.tags.get("mlcycle.task", profile.get("task", "classification"))
    target = run.data.tags.get("mlcycle.target", profile.get("target", ""))
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


# --------------------------------------------------------------------------- windows


def _utc(ts: datetime | str | pd.Timestamp) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


@dataclass(frozen=True)
class Window:
    """A half-open time range ``[start, end)`` in UTC."""

    start: pd.Timestamp
    end: pd.Timestamp

    @classmethod
    def of(cls, start: datetime | str | pd.Timestamp, end: datetime | str | pd.Timestamp) -> Window:
        """Build from anything ``pd.Timestamp`` reads; naive times are UTC.

        Raises:
            ConfigError: ``end`` is not after ``start``.
        """
        from mlcycle.errors import ConfigError

        s, e = _utc(start), _utc(end)
        if e <= s:
            raise ConfigError(f"window end {e} is not after its start {s}")
        return cls(s, e)

    @classmethod
    def latest(cls, every: timedelta, now: datetime | None = None) -> Window:
        """The last complete window of length ``every`` aligned to the epoch."""
        now_ts = _utc(now or datetime.now(UTC))
        step = pd.Timedelta(every)
        end = now_ts.floor(step)
        return cls(end - step, end)

    @property
    def key(self) -> str:
        """Stable identity of the window (used for idempotence)."""
        return (
            f"{self.start.strftime('%Y-%m-%dT%H:%M:%SZ')}/{self.end.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        )


def _hours_overlap(hour: str, window: Window | None) -> bool:
    if window is None:
        return True
    try:
        start = pd.Timestamp(hour + ":00:00", tz="UTC")
    except ValueError:
        return True
    return start < window.end and start + pd.Timedelta(hours=1) > window.start


def read_inference_log(
    root: str,
    name: str,
    window: Window | None = None,
    version: str | None = None,
    role: str | None = "champion",
) -> pd.DataFrame:
    """Rows logged for model ``name`` in ``window`` (all versions unless ``version``).

    Only hour partitions overlapping the window are opened, so the cost follows the window,
    not the log's age. An absent log or window gives an empty frame, not an error.

    Raises:
        DataError: a partition file cannot be read.
    """
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    fs, base = filesystem(root)
    model_dir = f"{base}/model={name}"
    info = fs.get_file_info(model_dir)
    if info.type != pafs.FileType.Directory and not root.startswith("s3://"):
        logger.info("no inference log for %s under %s", name, root)
        return pd.DataFrame()
    files: list[str] = []
    try:
        selector = pafs.FileSelector(model_dir, recursive=True, allow_not_found=True)
        entries = fs.get_file_info(selector)
    except Exception as exc:
        raise DataError(f"cannot list the inference log at {root}: {exc}") from exc
    for entry in entries:
        if entry.type != pafs.FileType.File or not entry.path.endswith(".parquet"):
            continue
        if entry.base_name.startswith((".", "_")):  # files still being written
            continue
        parts = dict(p.split("=", 1) for p in entry.path[len(model_dir) :].split("/") if "=" in p)
        if version is not None and parts.get("version") != str(version):
            continue
        if not _hours_overlap(parts.get("hour", ""), window):
            continue
        files.append(entry.path)
    if not files:
        return pd.DataFrame()
    try:
        dataset = ds.dataset(sorted(files), filesystem=fs, format="parquet")
        expr = None
        if window is not None:
            lo = window.start.to_pydatetime()
            hi = window.end.to_pydatetime()
            expr = (ds.field("timestamp") >= lo) & (ds.field("timestamp") < hi)
        if role is not None and "role" in dataset.schema.names:
            role_expr = ds.field("role") == role
            expr = role_expr if expr is None else expr & role_expr
        table = dataset.to_table(filter=expr)
    except Exception as exc:
        raise DataError(f"cannot read the inference log at {root}: {exc}") from exc
    return table.to_pandas()


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


def join_labels(current: pd.DataFrame, labels: pd.DataFrame, target: str) -> pd.DataFrame:
    """Attach late labels to the window by ``request_id`` (+ ``record_index``, default 0).

    Raises:
        DataError: the labels lack ``request_id`` or the target column.
    """
    for col in ("request_id", target):
        if col not in labels.columns:
            raise DataError(f"labels lack the column '{col}'")
    if current.empty:
        return current
    if "request_id" not in current.columns:
        raise DataError("the window has no request_id column to join labels on")
    lab = labels[
        ["request_id", target, *(["record_index"] if "record_index" in labels.columns else [])]
    ].copy()
    if "record_index" not in lab.columns:
        lab["record_index"] = 0
    lab["request_id"] = lab["request_id"].astype("str")
    lab["record_index"] = lab["record_index"].fillna(0).astype(np.int64)
    lab = lab.drop_duplicates(["request_id", "record_index"], keep="last")
    cur = current.drop(columns=[target], errors="ignore").copy()
    cur["request_id"] = cur["request_id"].astype("str")
    if "record_index" not in cur.columns:
        cur["record_index"] = 0
    cur["record_index"] = cur["record_index"].astype(np.int64)
    out = cur.merge(lab, on=["request_id", "record_index"], how="left")
    logger.info("labels joined: %d of %d rows labelled", int(out[target].notna().sum()), len(out))
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
