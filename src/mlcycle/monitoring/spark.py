"""The window's summary computed by Spark, next to the inference log.

API: :func:`spark_summary`.

Each Spark partition folds its Arrow batches into a
:class:`~mlcycle.monitoring.summary.WindowSummary` on an executor (``mapInArrow``), with the
same code as the in-process engines; the driver merges the partition summaries, which are a
few hundred kilobytes each whatever the window's size. Verdicts are therefore those of the
pandas and Arrow engines.

Spark reads the window's files as one DataFrame, and one file it cannot read fails the whole
job. So each file is first checked on the driver the way the Arrow engine checks it (its
footer and page headers only: the log's schema, :data:`mlcycle.parquet.MAX_DECLARED_BYTES` per
row group); a file that fails is skipped and described in ``problems``, as the other engines
do, and only the rest is given to Spark. A file whose footer is sound but whose pages are
corrupt still fails the job: its error names the files Spark was reading.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any

import pandas as pd

from mlcycle.errors import DataError
from mlcycle.inference_log import LogFile, Window, log_files
from mlcycle.monitoring.inputs import STREAM_KEEP
from mlcycle.monitoring.summary import WindowSummary

logger = logging.getLogger(__name__)


def _uri(root: str, path: str) -> str:
    """A file of :func:`log_files` as Spark names it (``s3a://`` for S3)."""
    return f"s3a://{path}" if root.startswith("s3://") else path


def spark_summary(
    root: str,
    name: str,
    summary: WindowSummary,
    window: Window | None = None,
    version: str | None = None,
    role: str | None = "champion",
    since: pd.Timestamp | None = None,
    master: str = "local[2]",
    problems: list[str] | None = None,
) -> WindowSummary:
    """Fold the window's rows into ``summary`` with Spark.

    Args:
        root: the inference log's directory or ``s3://`` prefix (read as ``s3a://``).
        name: registered model name.
        summary: an empty summary of the reference.
        window: the time range; the whole log when ``None``.
        version: only this version's partitions.
        role: only rows of this role (``None`` for all).
        since: only rows with a timestamp at or after this one.
        master: the Spark master URL.
        problems: files that fail the driver's check are described here and skipped;
            without it they raise.

    Raises:
        ConfigError: pyspark is not installed.
        DataError: the log cannot be listed, a file fails the driver's check and
            ``problems`` is ``None``, or Spark cannot read the files that passed it.
    """
    from mlcycle.batch import spark_session

    fs, listed = log_files(root, name, window, version)
    files = []
    for path in listed:
        try:
            LogFile(path, fs).check()
        except DataError as exc:
            if problems is None:
                raise DataError(f"cannot read the inference log file {path}: {exc}") from exc
            problems.append(f"{path}: {str(exc)[:240]}")
            logger.warning("inference log: skipped %s", problems[-1])
            continue
        files.append(path)
    if not files:
        return summary
    spark = spark_session(master, "mlcycle-monitor")
    # Timestamps reach the executors' Arrow batches in the session time zone.
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    from pyspark.sql import functions as F

    try:
        df = spark.read.option("mergeSchema", "true").parquet(*[_uri(root, f) for f in files])
        names = df.columns
        if window is not None:
            df = df.where(
                (F.col("timestamp") >= F.lit(window.start.to_pydatetime()))
                & (F.col("timestamp") < F.lit(window.end.to_pydatetime()))
            )
        if since is not None:
            df = df.where(F.col("timestamp") >= F.lit(pd.Timestamp(since).to_pydatetime()))
        if role is not None and "role" in names:
            df = df.where(F.col("role") == role)
        wanted = set(summary.profile["columns"]) | set(STREAM_KEEP)
        wanted.add(summary.profile.get("target", ""))
        df = df.select(*[c for c in names if c in wanted and c not in ("model", "hour")])
        empty = summary.fresh()

        def fold(batches: Any) -> Any:
            import pyarrow as pa

            part = empty.fresh()
            for batch in batches:
                part.add(batch)
            yield pa.RecordBatch.from_pydict({"summary": [pickle.dumps(part)]})

        rows = df.mapInArrow(fold, "summary binary").collect()
    except Exception as exc:
        raise DataError(
            f"Spark cannot read the inference log at {root} ({len(files)} file(s) from "
            f"{files[0]} to {files[-1]}): {exc}"
        ) from exc
    summary.note_columns(names)
    for row in rows:
        summary.merge(pickle.loads(row["summary"]))
    logger.info("spark summarised %d rows of %s in %d partition(s)", summary.rows, name, len(rows))
    return summary
