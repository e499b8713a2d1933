"""Inputs of a monitoring window: the reference, the current window, the labels.

API:

- :class:`ReferenceData` — profile, bounded sample, spec and quality of a training run.
- :func:`load_reference` — from a model version's training run (the champion by default).
- :func:`reference_from_frame` — from a table given by the user.
- :class:`Window` — a half-open time range ``[start, end)`` with a stable key.
- :func:`read_inference_log` — the rows the serving process logged for a model in a window
  (a local directory or an ``s3://`` prefix; layout
  ``{root}/model={name}/version={v}/hour={YYYY-MM-DDTHH}/part-*.parquet``).
- :func:`stream_inference_log` — the same rows folded batch by batch into a
  :class:`~mlcycle.monitoring.summary.WindowSummary` (bounded memory, any window size).
- :func:`join_labels` — late labels joined by ``record_id`` or, when unambiguous, by
  ``request_id`` (and ``record_index``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from mlcycle import contract
from mlcycle.data import DatasetSpec, load_table, prepare_features
from mlcycle.errors import DataError, ModelNotFound, MonitoringError
from mlcycle.monitoring.summary import WindowSummary
from mlcycle.storage import filesystem
from mlcycle.train import reference as reference_mod
from mlcycle.uris import resolve_version

logger = logging.getLogger(__name__)


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


def log_files(
    root: str, name: str, window: Window | None = None, version: str | None = None
) -> tuple[Any, list[str]]:
    """The filesystem and the Parquet files of model ``name`` whose hour overlaps ``window``.

    Raises:
        DataError: the log root does not exist or cannot be listed.
    """
    import pyarrow.fs as pafs

    fs, base = filesystem(root)
    if not root.startswith("s3://") and fs.get_file_info(base).type != pafs.FileType.Directory:
        raise DataError(f"the inference log root {root} does not exist (is --inference-log right?)")
    model_dir = f"{base}/model={name}"
    info = fs.get_file_info(model_dir)
    if info.type != pafs.FileType.Directory and not root.startswith("s3://"):
        logger.info("no inference log for %s under %s", name, root)
        return fs, []
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
    return fs, sorted(files)


def log_filter(window: Window | None, since: pd.Timestamp | None = None) -> Any:
    """The Arrow dataset filter of a window (and a start), or ``None`` for the whole log."""
    import pyarrow.dataset as ds

    expr = None
    if window is not None:
        lo = window.start.to_pydatetime()
        hi = window.end.to_pydatetime()
        expr = (ds.field("timestamp") >= lo) & (ds.field("timestamp") < hi)
    if since is not None:
        later = ds.field("timestamp") >= _utc(since).to_pydatetime()
        expr = later if expr is None else expr & later
    return expr


def read_inference_log(
    root: str,
    name: str,
    window: Window | None = None,
    version: str | None = None,
    role: str | None = "champion",
    problems: list[str] | None = None,
    since: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Rows logged for model ``name`` in ``window`` (all versions unless ``version``).

    Only hour partitions overlapping the window are opened, so the cost follows the window,
    not the log's age. A model or window without rows gives an empty frame, not an error.

    Args:
        root: the inference log's directory or ``s3://`` prefix.
        name: registered model name.
        window: the time range; the whole log when ``None``.
        version: only this version's partitions.
        role: only rows of this role (``champion``; ``None`` for all).
        problems: when a list is given, a file that cannot be read (truncated, not Parquet)
            or does not have the log's schema is skipped and described there, and the rest
            is read; without it such a file raises.
        since: only rows with a timestamp at or after this one.

    Raises:
        DataError: the log root does not exist; a partition file cannot be read and
            ``problems`` is ``None``.
    """
    import pyarrow.dataset as ds

    fs, files = log_files(root, name, window, version)
    if not files:
        return pd.DataFrame()
    expr = log_filter(window, since)
    try:
        dataset = ds.dataset(sorted(files), filesystem=fs, format="parquet")
        if role is not None and "role" in dataset.schema.names:
            role_expr = ds.field("role") == role
            expr = role_expr if expr is None else expr & role_expr
        table = dataset.to_table(filter=expr)
    except Exception as exc:
        if problems is None:
            raise DataError(f"cannot read the inference log at {root}: {exc}") from exc
        # One bad file must not cost the window: read file by file and report the bad ones.
        return _read_file_by_file(fs, sorted(files), expr, role, problems)
    return table.to_pandas()


#: Columns every inference-log file has (the writer's schema, before the model's inputs).
_LOG_REQUIRED = ("request_id", "timestamp", "prediction")


def _read_file_by_file(
    fs: Any, files: list[str], expr: Any, role: str | None, problems: list[str]
) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.dataset as ds

    tables = []
    for path in files:
        try:
            part = ds.dataset(path, filesystem=fs, format="parquet")
            missing = [c for c in _LOG_REQUIRED if c not in part.schema.names]
            if missing:
                problems.append(f"{path}: not an inference-log file (no {', '.join(missing)})")
                continue
            if not pa.types.is_timestamp(part.schema.field("timestamp").type):
                problems.append(f"{path}: 'timestamp' is {part.schema.field('timestamp').type}")
                continue
            flt = expr
            if role is not None and "role" in part.schema.names:
                flt = ds.field("role") == role if flt is None else flt & (ds.field("role") == role)
            tables.append(part.to_table(filter=flt).to_pandas())
        except Exception as exc:
            problems.append(f"{path}: unreadable ({type(exc).__name__}: {str(exc)[:200]})")
    for p in problems:
        logger.warning("inference log: skipped %s", p)
    tables = [t for t in tables if len(t)]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


#: Rows per Arrow record batch when a window is streamed (about 10 MB for 20 numbers).
STREAM_BATCH_ROWS = 65_536
#: Bookkeeping columns a streamed window keeps (labels join on them; retrain reads time).
_STREAM_KEEP = ("record_id", "request_id", "record_index", "timestamp", "prediction")


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
    so a file that breaks half-way is skipped whole, as :func:`read_inference_log` does.

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
    import pyarrow as pa
    import pyarrow.dataset as ds

    fs, files = log_files(root, name, window, version)
    expr = log_filter(window, since)
    wanted = set(summary.profile["columns"]) | set(_STREAM_KEEP)
    wanted.add(summary.profile.get("target", ""))
    for path in files:
        part = summary.fresh()
        try:
            dataset = ds.dataset(path, filesystem=fs, format="parquet")
            names = dataset.schema.names
            missing = [c for c in _LOG_REQUIRED if c not in names]
            if missing:
                raise DataError(f"not an inference-log file (no {', '.join(missing)})")
            if not pa.types.is_timestamp(dataset.schema.field("timestamp").type):
                raise DataError(f"'timestamp' is {dataset.schema.field('timestamp').type}")
            flt = expr
            if role is not None and "role" in names:
                flt = ds.field("role") == role if flt is None else flt & (ds.field("role") == role)
            part.note_columns(names)
            batches = dataset.to_batches(
                columns=[c for c in names if c in wanted],
                filter=flt,
                batch_size=batch_rows,
                batch_readahead=0,
                fragment_readahead=0,
            )
            for batch in batches:
                part.add(batch)
        except Exception as exc:
            if problems is None:
                raise DataError(f"cannot read the inference log file {path}: {exc}") from exc
            why = str(exc) if isinstance(exc, DataError) else f"{type(exc).__name__}: {exc}"
            problems.append(f"{path}: unreadable ({why[:200]})")
            logger.warning("inference log: skipped %s", problems[-1])
            continue
        summary.merge(part)
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
