"""The inference log: every scored record, appended as Parquet off the request path.

This module owns the log's contract; serving writes through it and monitoring reads through
it. API:

- schema — :data:`IDENTITY_COLUMNS`, :data:`BOOKKEEPING_COLUMNS`, :data:`PREDICTION`,
  :data:`PROBA_PREFIX`, :data:`REQUIRED_COLUMNS`;
- layout — :func:`partition_path`, :func:`hour_of`, :func:`partition_values`,
  :func:`log_files`;
- writer — :class:`InferenceLog` fed with :class:`LogItem` values;
- reader — :func:`scan_inference_log` (one :class:`LogFile` at a time, read whole or as
  bounded record batches) and :func:`read_inference_log` (a window as one DataFrame), over a
  :class:`Window`.

Layout (Hive-style, one directory per model, version and UTC hour)::

    {root}/model={name}/version={version}/hour={YYYY-MM-DDTHH}/part-{unix_ms}-{uuid8}.parquet

One row per scored record: ``record_id`` (string, assigned by the server and unique per scored
record: ``{uid}-{record_index}`` where ``uid`` is a random id of the request; the champion and
shadow rows of one record share it), ``request_id`` (string, the client's ``X-Request-Id`` when
it sent one, kept for correlation only: clients can repeat it), ``record_index`` (int32, row
within the request), ``timestamp`` (timestamp[us, UTC]), ``model_name``, ``model_version``, ``role``
(``champion`` or ``shadow``), one column per model input with its own name and type, then
``prediction``; records scored with ``predict_proba`` add one ``proba_<class>`` column
(float64) per class, null in records scored with ``predict``. ``root`` is a directory or an
``s3://bucket/prefix`` (boto3, honouring ``MLFLOW_S3_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL``).
Local files appear atomically (written under a hidden name, then renamed).

Reading never trusts a file: one that is truncated, not Parquet, or lacks the log's columns
fails alone (described in ``problems`` when the caller gives a list), and hidden files
(``.``/``_``, still being written) are never opened.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.errors import ConfigError, DataError
from mlcycle.storage import filesystem, s3_client, split_s3

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- schema

#: Columns that identify and time a record (late labels join on them).
IDENTITY_COLUMNS = ("record_id", "request_id", "record_index", "timestamp")
#: The bookkeeping columns every record starts with, in file order; the model's inputs follow.
BOOKKEEPING_COLUMNS = (*IDENTITY_COLUMNS, "model_name", "model_version", "role")
#: The model's output column.
PREDICTION = "prediction"
#: Prefix of the probability columns (``proba_<class>``) of records scored with predict_proba.
PROBA_PREFIX = "proba_"
#: Columns a file must have to be read as part of the log (older files lack ``record_id``).
REQUIRED_COLUMNS = ("request_id", "timestamp", PREDICTION)

_ARROW_TYPES = {
    "long": "int64",
    "integer": "int32",
    "double": "float64",
    "float": "float32",
    "string": "string",
    "boolean": "bool",
}


@dataclass(frozen=True)
class LogItem:
    """The records of one request scored by one model version."""

    request_id: str
    timestamp_us: int
    model_name: str
    model_version: str
    role: str
    columns: dict[str, np.ndarray]
    kinds: tuple[tuple[str, str], ...]  # (column, MLflow type) in signature order
    predictions: np.ndarray
    record_uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: Class probabilities (rows x classes) when the client asked for ``predict_proba``.
    proba: np.ndarray | None = None
    classes: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        """Number of records."""
        return len(self.predictions)


# --------------------------------------------------------------------------- layout


def hour_of(timestamp_us: int) -> str:
    """The ``hour=`` partition value of a timestamp in microseconds since the epoch."""
    return datetime.fromtimestamp(timestamp_us / 1e6, tz=UTC).strftime("%Y-%m-%dT%H")


def partition_path(root: str, name: str, version: str, hour: str) -> str:
    """Directory (or S3 prefix) of one partition."""
    return f"{root.rstrip('/')}/model={name}/version={version}/hour={hour}"


def partition_values(path: str) -> dict[str, str]:
    """The ``key=value`` directories of a path under the log (``model``, ``version``, ``hour``)."""
    return dict(p.split("=", 1) for p in path.split("/")[:-1] if "=" in p)


# --------------------------------------------------------------------------- writer


def _table(items: list[LogItem]) -> Any:
    import pyarrow as pa

    first = items[0]
    counts = [it.n for it in items]
    total = sum(counts)
    import pyarrow.compute as pc

    record_index = pa.array(
        np.concatenate([np.arange(n, dtype=np.int32) for n in counts]), pa.int32()
    )
    uids = pa.array(
        np.repeat(np.array([it.record_uid for it in items], dtype=object), counts), pa.string()
    )
    per_item = [
        # Built column-wise in Arrow, not per record in Python, to keep the writer cheap.
        pc.binary_join_element_wise(uids, pc.cast(record_index, pa.string()), "-"),
        pa.array(
            np.repeat(np.array([it.request_id for it in items], dtype=object), counts), pa.string()
        ),
        record_index,
        pa.array(
            np.repeat(np.array([it.timestamp_us for it in items], dtype="datetime64[us]"), counts),
            pa.timestamp("us", tz="UTC"),
        ),
        pa.array([first.model_name] * total, pa.string()),
        pa.array([first.model_version] * total, pa.string()),
        pa.array(np.repeat(np.array([it.role for it in items], dtype=object), counts), pa.string()),
    ]
    arrays: dict[str, Any] = dict(zip(BOOKKEEPING_COLUMNS, per_item, strict=True))
    for col, kind in first.kinds:
        values = np.concatenate([it.columns[col] for it in items])
        arrays[col] = pa.array(
            values, type=pa.type_for_alias(_ARROW_TYPES.get(kind, "string")), from_pandas=True
        )
    preds = np.concatenate([np.asarray(it.predictions) for it in items])
    arrays[PREDICTION] = pa.array(preds if preds.dtype != object else preds.tolist())
    classes = next((it.classes for it in items if it.proba is not None), ())
    for j, cls in enumerate(classes):
        # Null where the record was scored with plain predict.
        values = np.concatenate(
            [it.proba[:, j] if it.proba is not None else np.full(it.n, np.nan) for it in items]
        )
        arrays[f"{PROBA_PREFIX}{cls}"] = pa.array(values, pa.float64(), from_pandas=True)
    return pa.table(arrays)


class InferenceLog:
    """Bounded, batched, background writer of the inference log.

    ``append`` never blocks and does no conversion: when ``max_pending`` records are already
    waiting it drops the item and counts it. A thread turns what was appended into Arrow
    tables every ``chunk_records`` records or ``chunk_seconds`` (short steps, so the Python
    work that holds the GIL stays far below a request's latency and appended items die young
    instead of filling the collector's oldest generation), and writes one Parquet file per
    partition every ``flush_records`` records or ``flush_seconds`` (encoding and I/O run in
    Arrow's C++ with the GIL released). :meth:`close` writes what is left.
    """

    def __init__(
        self,
        root: str,
        *,
        max_pending: int = 200_000,
        flush_records: int = 20_000,
        flush_seconds: float = 5.0,
        chunk_records: int = 512,
        chunk_seconds: float = 0.05,
    ) -> None:
        self.root = root.rstrip("/") if root.startswith("s3://") else str(Path(root).resolve())
        self.max_pending = max_pending
        self.flush_records = flush_records
        self.flush_seconds = flush_seconds
        self.chunk_records = chunk_records
        self.chunk_seconds = chunk_seconds
        self.pending = 0
        self.dropped = 0
        self.written = 0
        self.files = 0
        self.write_errors = 0
        self._buffer: list[LogItem] = []
        self._buffered = 0  # records appended, not yet converted
        # Converted, not yet written: partition → Arrow tables and their record count.
        self._staged: dict[tuple[str, str, int], list[Any]] = {}
        self._staged_rows: dict[tuple[str, str, int], int] = {}
        self._staged_since: float | None = None
        self._cond = threading.Condition()
        self._io = threading.Lock()  # one converter/writer at a time (thread or flush())
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> InferenceLog:
        """Start the writer thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
            self._thread.start()
        return self

    def append(self, item: LogItem) -> bool:
        """Queue ``item``; ``False`` (and counted as dropped) when the queue is full or closed."""
        n = item.n
        with self._cond:
            if self._stop or self.pending + n > self.max_pending:
                self.dropped += n
                return False
            self._buffer.append(item)
            self.pending += n
            self._buffered += n
            if self._buffered >= self.chunk_records:
                self._cond.notify()
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Stop accepting, write everything queued, wait up to ``timeout`` seconds."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            self.flush()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._stop and self._buffered < self.chunk_records:
                    self._cond.wait(self.chunk_seconds)
                stop = self._stop
            if stop:
                self.flush()
                return
            with self._io:
                self._convert()
                self._write_staged(force=False)

    def flush(self) -> int:
        """Write the queued records now (one file per partition); returns how many."""
        with self._io:
            self._convert()
            return self._write_staged(force=True)

    def _convert(self) -> None:
        """Turn the appended items into Arrow tables, ``chunk_records`` at a time."""
        with self._cond:
            items, self._buffer = self._buffer, []
            self._buffered = 0
        step = max(1, self.chunk_records)
        for lo in range(0, len(items), step):
            if lo:
                time.sleep(0)  # let the event loop take the GIL between chunks
            groups: dict[tuple[str, str, int], list[LogItem]] = {}
            for it in items[lo : lo + step]:
                # Integer hours: the partition string is formatted once per group, not per item.
                key = (it.model_name, it.model_version, it.timestamp_us // _US_PER_HOUR)
                groups.setdefault(key, []).append(it)
            for key, group in groups.items():
                n = sum(it.n for it in group)
                try:
                    table = _table(group)
                except Exception:
                    logger.exception(
                        "inference log: cannot convert %d records of %s/%s", n, key[0], key[1]
                    )
                    self._lost(n)
                    continue
                self._staged.setdefault(key, []).append(table)
                self._staged_rows[key] = self._staged_rows.get(key, 0) + n
                if self._staged_since is None:
                    self._staged_since = time.monotonic()

    def _write_staged(self, *, force: bool) -> int:
        if not self._staged:
            return 0
        aged = (
            self._staged_since is not None
            and time.monotonic() - self._staged_since >= self.flush_seconds
        )
        due = force or aged or sum(self._staged_rows.values()) >= self.flush_records
        if not due:
            return 0
        staged, self._staged = self._staged, {}
        rows, self._staged_rows = self._staged_rows, {}
        self._staged_since = None
        done = 0
        for (name, version, hour), tables in staged.items():
            n = rows[(name, version, hour)]
            try:
                self._write(
                    partition_path(self.root, name, version, hour_of(hour * _US_PER_HOUR)),
                    _concat(tables),
                )
            except Exception:
                logger.exception(
                    "inference log: cannot write %d records of %s/%s", n, name, version
                )
                self._lost(n)
                continue
            done += n
            with self._cond:
                self.written += n
                self.files += 1
                self.pending -= n
        return done

    def _lost(self, n: int) -> None:
        with self._cond:
            self.write_errors += 1
            self.dropped += n
            self.pending -= n

    def _write(self, directory: str, table: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        fname = f"part-{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}.parquet"
        # Arrow's own sinks: encoding and writing release the GIL (a Python file object
        # would take it back for every chunk).
        if directory.startswith("s3://"):
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="zstd")
            bucket, prefix = split_s3(directory)
            s3_client().put_object(
                Bucket=bucket, Key=f"{prefix}/{fname}", Body=sink.getvalue().to_pybytes()
            )
            return
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / f".{fname}.tmp"
        pq.write_table(table, str(tmp), compression="zstd")
        os.replace(tmp, path / fname)


_US_PER_HOUR = 3_600_000_000


def _concat(tables: list[Any]) -> Any:
    import pyarrow as pa

    if len(tables) == 1:
        return tables[0]
    # A chunk whose optional column was all null may have inferred a narrower type.
    return pa.concat_tables(tables, promote_options="permissive")


# --------------------------------------------------------------------------- reader


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

    def overlaps_hour(self, hour: str) -> bool:
        """Whether the ``hour=`` partition ``hour`` can hold rows of the window."""
        try:
            start = pd.Timestamp(hour + ":00:00", tz="UTC")
        except ValueError:
            return True  # not an hour we wrote: let the timestamp filter decide
        return start < self.end and start + pd.Timedelta(hours=1) > self.start


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
        parts = partition_values(entry.path[len(model_dir) :])
        if version is not None and parts.get("version") != str(version):
            continue
        if window is not None and not window.overlaps_hour(parts.get("hour", "")):
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


#: Rows per Arrow record batch when a file is streamed (about 10 MB for 20 numbers).
STREAM_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class LogFile:
    """One part file of the log, opened lazily; what :func:`scan_inference_log` yields.

    :meth:`batches` and :meth:`table` check the file is an inference-log file before reading
    and raise :class:`DataError` for anything wrong with it, so a caller can skip the file
    whole (statistics of a file that breaks half-way must not count).
    """

    path: str
    filesystem: Any
    filter: Any = None
    role: str | None = "champion"
    columns: frozenset[str] | None = None

    def _dataset(self) -> tuple[Any, Any, list[str] | None]:
        import pyarrow as pa
        import pyarrow.dataset as ds

        try:
            dataset = ds.dataset(self.path, filesystem=self.filesystem, format="parquet")
        except Exception as exc:
            raise DataError(f"unreadable ({type(exc).__name__}: {exc})") from exc
        names = dataset.schema.names
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise DataError(f"not an inference-log file (no {', '.join(missing)})")
        if not pa.types.is_timestamp(dataset.schema.field("timestamp").type):
            raise DataError(f"'timestamp' is {dataset.schema.field('timestamp').type}")
        flt = self.filter
        if self.role is not None and "role" in names:
            by_role = ds.field("role") == self.role
            flt = by_role if flt is None else flt & by_role
        cols = None if self.columns is None else [c for c in names if c in self.columns]
        return dataset, flt, cols

    @property
    def column_names(self) -> list[str]:
        """The file's column names (read from its footer)."""
        return list(self._dataset()[0].schema.names)

    def batches(self, batch_rows: int = STREAM_BATCH_ROWS) -> Iterator[Any]:
        """The file's rows as Arrow record batches, one held at a time.

        Raises:
            DataError: the file is not an inference-log file or cannot be read.
        """
        dataset, flt, cols = self._dataset()
        try:
            yield from dataset.to_batches(
                columns=cols,
                filter=flt,
                batch_size=batch_rows,
                batch_readahead=0,
                fragment_readahead=0,
            )
        except Exception as exc:
            raise DataError(f"unreadable ({type(exc).__name__}: {exc})") from exc

    def table(self) -> Any:
        """The file's rows as one Arrow table.

        Raises:
            DataError: the file is not an inference-log file or cannot be read.
        """
        dataset, flt, cols = self._dataset()
        try:
            return dataset.to_table(columns=cols, filter=flt)
        except Exception as exc:
            raise DataError(f"unreadable ({type(exc).__name__}: {exc})") from exc


def scan_inference_log(
    root: str,
    name: str,
    window: Window | None = None,
    version: str | None = None,
    role: str | None = "champion",
    since: pd.Timestamp | None = None,
    columns: set[str] | frozenset[str] | None = None,
) -> Iterator[LogFile]:
    """The part files of model ``name`` that can hold rows of ``window``, in path order.

    Only hour partitions overlapping the window are listed, so the cost follows the window,
    not the log's age. Each :class:`LogFile` reads only rows with ``role`` (``None``: all) in
    ``window`` and after ``since``, and only ``columns`` when given.

    Raises:
        DataError: the log root does not exist or cannot be listed.
    """
    fs, files = log_files(root, name, window, version)
    expr = log_filter(window, since)
    keep = frozenset(columns) if columns is not None else None
    for path in files:
        yield LogFile(path, fs, expr, role, keep)


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

    A model or window without rows gives an empty frame, not an error.

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
    import pyarrow as pa

    tables = []
    for part in scan_inference_log(root, name, window, version, role, since):
        try:
            tables.append(part.table())
        except DataError as exc:
            if problems is None:
                raise DataError(f"cannot read the inference log file {part.path}: {exc}") from exc
            problems.append(f"{part.path}: {str(exc)[:240]}")
            logger.warning("inference log: skipped %s", problems[-1])
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return pd.DataFrame()
    try:
        # Files of one model can differ: a version's inputs, proba columns only when asked.
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    return table.to_pandas()
