"""The inference log's one reader: the part files of a time window, never trusting a file.

API: :class:`Window`, :func:`log_files`, :func:`log_filter`, :class:`LogFile`,
:func:`scan_inference_log`, :func:`read_inference_log`, :data:`STREAM_BATCH_ROWS`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from mlcycle.errors import ConfigError, DataError
from mlcycle.inference_log.schema import REQUIRED_COLUMNS, model_path, partition_values
from mlcycle.parquet import MAX_DECLARED_BYTES, check_declared, declared, string_bytes
from mlcycle.parquet.limits import is_text
from mlcycle.storage import filesystem

logger = logging.getLogger(__name__)


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
    model_dir = model_path(base, name)
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
    whole (statistics of a file that breaks half-way must not count). Whoever can write to
    the log can write any file, so before a page is decoded its footer and page headers are
    held to :data:`mlcycle.parquet.MAX_DECLARED_BYTES`: per row group when streamed, in all
    when read whole. String columns are read dictionary-encoded and the bytes their rows hold
    (a dictionary value once per row that uses it) are held to the same limit, per batch or
    per file, before they are decoded.
    """

    path: str
    filesystem: Any
    filter: Any = None
    role: str | None = "champion"
    columns: frozenset[str] | None = None

    def _dataset(self) -> tuple[Any, Any, list[str] | None, frozenset[str]]:
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
        strings = [f.name for f in dataset.schema if is_text(f.type)]
        if strings:
            # Read dictionary-encoded: a dictionary value is held once, not copied per row,
            # until :meth:`_decoded` has counted what the copies would cost.
            options = ds.ParquetReadOptions(dictionary_columns=strings)
            try:
                dataset = ds.dataset(
                    self.path,
                    filesystem=self.filesystem,
                    format=ds.ParquetFileFormat(read_options=options),
                )
            except Exception as exc:
                raise DataError(f"unreadable ({type(exc).__name__}: {exc})") from exc
        return dataset, flt, cols, frozenset(strings)

    def _decoded(self, data: Any, strings: frozenset[str], what: str) -> Any:
        """``data`` (a record batch or table) with its string columns decoded, once the bytes
        their rows hold are within :data:`~mlcycle.parquet.MAX_DECLARED_BYTES`.

        Raises:
            DataError: they are not.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        size = string_bytes(table)
        if size > MAX_DECLARED_BYTES:
            raise DataError(
                f"the file holds {size:,} bytes of string values across the rows of {what} (a "
                f"dictionary value counted once per row that uses it), more than the "
                f"{MAX_DECLARED_BYTES:,} mlcycle decodes at once from a Parquet file"
            )
        for i, field in enumerate(data.schema):
            if field.name in strings and pa.types.is_dictionary(field.type):
                plain = pc.cast(data.column(i), field.type.value_type)
                data = data.set_column(i, pa.field(field.name, plain.type), plain)
        return data

    def check(self) -> None:
        """Check the file as :meth:`batches` does before streaming it, reading only its footer
        and page headers (for a reader that streams it another way, e.g. Spark).

        Raises:
            DataError: the file is not an inference-log file, cannot be read, or a row group
                declares more than :data:`~mlcycle.parquet.MAX_DECLARED_BYTES`.
        """
        self._dataset()
        self._check_declared(per_row_group=True)

    def _check_declared(self, *, per_row_group: bool) -> None:
        try:
            handle = self.filesystem.open_input_file(self.path)
        except Exception as exc:
            raise DataError(f"unreadable ({type(exc).__name__}: {exc})") from exc
        with handle:
            # The footer's totals first: no page header is read for a file they refuse.
            for pages in (False, True):
                found = declared(handle, "the file", pages=pages)
                check_declared(
                    found, "the file", max_bytes=MAX_DECLARED_BYTES, per_row_group=per_row_group
                )

    @property
    def column_names(self) -> list[str]:
        """The file's column names (read from its footer)."""
        return list(self._dataset()[0].schema.names)

    def batches(self, batch_rows: int = STREAM_BATCH_ROWS) -> Iterator[Any]:
        """The file's rows as Arrow record batches, one held at a time.

        Raises:
            DataError: the file is not an inference-log file, cannot be read, or a row group
                declares more than :data:`~mlcycle.parquet.MAX_DECLARED_BYTES`.
        """
        dataset, flt, cols, strings = self._dataset()
        self._check_declared(per_row_group=True)
        try:
            scanned = dataset.to_batches(
                columns=cols,
                filter=flt,
                batch_size=batch_rows,
                batch_readahead=0,
                fragment_readahead=0,
            )
            for batch in scanned:
                yield self._decoded(batch, strings, "one batch")
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"unreadable ({type(exc).__name__}: {exc})") from exc

    def table(self) -> Any:
        """The file's rows as one Arrow table.

        Raises:
            DataError: the file is not an inference-log file, cannot be read, or declares
                more than :data:`~mlcycle.parquet.MAX_DECLARED_BYTES` in all.
        """
        dataset, flt, cols, strings = self._dataset()
        self._check_declared(per_row_group=False)
        try:
            table = dataset.to_table(columns=cols, filter=flt)
        except Exception as exc:
            raise DataError(f"unreadable ({type(exc).__name__}: {exc})") from exc
        return self._decoded(table, strings, "the file")


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
