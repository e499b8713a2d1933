"""Inputs of a monitoring window: the reference, the current window, the labels.

API:

- :class:`ReferenceData`, :func:`load_reference`, :func:`reference_from_frame`,
  :func:`reference_for_table` — the reference (:mod:`mlcycle.monitoring.reference`).
- :class:`Window`, :func:`read_inference_log` — the inference log's time range and reader,
  from :mod:`mlcycle.inference_log` (which owns the log's schema, layout and reading).
- :func:`stream_inference_log` — the same rows folded batch by batch into a
  :class:`~mlcycle.monitoring.summary.WindowSummary` (bounded memory, any window size).
- :func:`summarise_file`, :func:`load_current` — a window given as a file.
- :func:`join_labels` — late labels joined by ``record_id`` or, when unambiguous, by
  ``request_id`` (and ``record_index``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from mlcycle.data import load_table
from mlcycle.errors import DataError
from mlcycle.inference_log import (
    IDENTITY_COLUMNS,
    PREDICTION,
    STREAM_BATCH_ROWS,
    Window,
    read_inference_log,
    scan_inference_log,
)
from mlcycle.monitoring.reference import (
    CHAMPION,
    ReferenceData,
    load_reference,
    reference_for_table,
    reference_from_frame,
    resolve_version,
)
from mlcycle.monitoring.summary import WindowSummary

logger = logging.getLogger(__name__)

#: Log columns a streamed window keeps besides the model's: labels join on the ids, retrain
#: reads the time.
STREAM_KEEP = (*IDENTITY_COLUMNS, PREDICTION)
__all__ = [  # the reference and the log's reader are re-exported: a window's inputs, in one place
    "CHAMPION",
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
