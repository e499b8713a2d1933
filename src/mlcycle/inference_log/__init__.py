"""The inference log: every scored record, appended as Parquet off the request path.

This package owns the log's contract; serving writes through it and monitoring reads through
it. Import from the package; its modules are :mod:`~mlcycle.inference_log.schema` (columns and
partition layout), :mod:`~mlcycle.inference_log.writer` and :mod:`~mlcycle.inference_log.reader`.
API:

- schema — :data:`IDENTITY_COLUMNS`, :data:`BOOKKEEPING_COLUMNS`, :data:`PREDICTION`,
  :data:`PROBA_PREFIX`, :data:`REQUIRED_COLUMNS`, :func:`is_output_column`;
- layout — :func:`model_path`, :func:`partition_path`, :func:`hour_of`,
  :func:`partition_values`, :func:`log_files`;
- writer — :class:`InferenceLog` fed with :class:`LogItem` values;
- reader — :func:`scan_inference_log` (one :class:`LogFile` at a time, read whole or as
  bounded record batches) and :func:`read_inference_log` (a window as one DataFrame), over a
  :class:`Window`.

The layout and the columns of a record are described in :mod:`~mlcycle.inference_log.schema`.

Reading never trusts a file: one that is truncated, not Parquet, or lacks the log's columns
fails alone (described in ``problems`` when the caller gives a list), and hidden files
(``.``/``_``, still being written) are never opened.
"""

from mlcycle.inference_log.reader import (
    STREAM_BATCH_ROWS,
    LogFile,
    Window,
    log_files,
    log_filter,
    read_inference_log,
    scan_inference_log,
)
from mlcycle.inference_log.schema import (
    BOOKKEEPING_COLUMNS,
    IDENTITY_COLUMNS,
    PREDICTION,
    PROBA_PREFIX,
    REQUIRED_COLUMNS,
    hour_of,
    is_output_column,
    model_path,
    partition_path,
    partition_values,
)
from mlcycle.inference_log.writer import InferenceLog, LogItem

__all__ = [
    "BOOKKEEPING_COLUMNS",
    "IDENTITY_COLUMNS",
    "PREDICTION",
    "PROBA_PREFIX",
    "REQUIRED_COLUMNS",
    "STREAM_BATCH_ROWS",
    "InferenceLog",
    "LogFile",
    "LogItem",
    "Window",
    "hour_of",
    "is_output_column",
    "log_files",
    "log_filter",
    "model_path",
    "partition_path",
    "partition_values",
    "read_inference_log",
    "scan_inference_log",
]
