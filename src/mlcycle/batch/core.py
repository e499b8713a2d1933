"""Batch scoring's API: resolve the model once, run an engine, report what was written.

API: :func:`predict` → :class:`BatchResult`, :data:`ENGINES`, :data:`CHUNK_ROWS`.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from mlcycle import trust
from mlcycle.batch.pandas_engine import predict_pandas
from mlcycle.batch.shared import log_frame
from mlcycle.batch.spark_engine import log_spark, predict_spark, spark_session
from mlcycle.errors import ConfigError
from mlcycle.extras import require

logger = logging.getLogger(__name__)

Engine = Literal["pandas", "spark"]
ENGINES: tuple[str, ...] = ("pandas", "spark")
#: Rows per ``request_id`` (and per pyfunc call) of the pandas engine.
CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class BatchResult:
    """What a batch scoring call wrote."""

    model_uri: str
    model_name: str
    model_version: str
    engine: str
    rows: int
    output: str
    batch_id: str
    scored_at: datetime
    seconds: float
    logged_rows: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (what ``mlcycle predict --json`` prints)."""
        return {
            "model_uri": self.model_uri,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "engine": self.engine,
            "rows": self.rows,
            "output": self.output,
            "batch_id": self.batch_id,
            "scored_at": self.scored_at.isoformat(),
            "seconds": self.seconds,
            "logged_rows": self.logged_rows,
        }

    @property
    def rows_per_second(self) -> float:
        """Throughput of the whole call (read, score, write, log)."""
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def _model(model_uri: str, client: Any, allow_pickle: bool) -> tuple[Any, Any]:
    """The registry version ``model_uri`` names now, and its input schema (trust checked)."""
    from mlcycle.serve.model import check_model, resolve

    ref = resolve(model_uri, client)
    return ref, check_model(ref, allow_pickle=allow_pickle)


def predict(
    model_uri: str,
    source: str,
    output: str,
    *,
    client: Any,
    engine: Engine = "pandas",
    master: str = "local[2]",
    spark: Any = None,
    overwrite: bool = False,
    inference_log: str | None = None,
    role: str = "champion",
    allow_pickle: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    predict_method: str = "predict",
) -> BatchResult:
    """Score every row of ``source`` with ``model_uri`` and write partitioned Parquet.

    Args:
        model_uri: ``models:/NAME@alias``, ``models:/NAME/VERSION|Stage``, ``runs:/…`` or a
            local model directory; resolved once, so one version scores every row.
        source: CSV or Parquet file (Spark also takes a Parquet directory), local or s3://.
        output: directory or s3:// prefix of the partitioned output.
        client: an ``MlflowClient`` for the registry.
        engine: ``pandas`` (in process) or ``spark`` (``mlflow.pyfunc.spark_udf``).
        master: Spark master URL when ``spark`` is not given.
        spark: an existing SparkSession to use.
        overwrite: replace the partitions this call writes instead of adding files.
        inference_log: also append the scored rows to the inference log at this root.
        role: the ``role`` of logged rows; monitoring reads ``champion`` rows by default.
        allow_pickle: skip the trust policy (pickle, cloudpickle, ``code/`` run code on load).
        chunk_rows: rows per pyfunc call and ``request_id`` (pandas engine).
        predict_method: ``predict_proba`` adds one ``proba_<class>`` column per class (to the
            output and the inference log) next to ``prediction`` (pandas engine, classifiers).

    Raises:
        ConfigError: unknown engine or predict method, predict_proba on Spark, or pyspark
            missing for the Spark engine.
        MissingExtra: ``inference_log`` without pyarrow (the ``monitoring`` extra).
        ModelNotFound: the URI names no model.
        UntrustedModel: the trust policy refused the model (:mod:`mlcycle.trust`).
        ServingError: the model has no signature.
        DataError: the input is missing or unreadable, lacks feature columns or holds values
            the model's types cannot take.
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine '{engine}'; choose one of: {', '.join(ENGINES)}")
    if chunk_rows < 1:
        raise ConfigError("chunk_rows must be at least 1")
    from mlcycle.serve.protocol import PREDICT_METHODS

    if predict_method not in PREDICT_METHODS:
        raise ConfigError(
            f"unknown predict method '{predict_method}'; choose one of: "
            f"{', '.join(PREDICT_METHODS)}"
        )
    if predict_method != "predict" and engine == "spark":
        raise ConfigError("predict_proba is supported by the pandas engine only")
    if inference_log:
        # Its writer is pyarrow's (mlcycle.inference_log); the core install has fastparquet.
        require("monitoring", "pyarrow", feature="--to-inference-log")
    t0 = time.perf_counter()
    ref, schema = _model(model_uri, client, allow_pickle)
    batch_id = uuid.uuid4().hex[:12]
    now = datetime.now(UTC)
    # Millisecond precision survives every writer (Spark, pandas, the inference log) intact.
    scored_at = now.replace(microsecond=now.microsecond // 1000 * 1000)
    ts_us = int(scored_at.timestamp() * 1_000_000)
    kinds = tuple((c.name, c.kind) for c in schema.columns)
    version = str(ref.version)
    logged: int | None = None
    # The one checked copy is what either engine loads (Spark ships it to its executors).
    with tempfile.TemporaryDirectory(prefix="mlcycle-batch-") as dst:
        local, _ = trust.fetch_model(
            ref.download_uri, f"{model_uri} (version {version})", allow_pickle=allow_pickle,
            dst=dst,
        )  # fmt: skip
        ref = dataclasses.replace(ref, download_uri=str(local))
        if engine == "pandas":
            out = predict_pandas(
                ref, schema, source, output, batch_id=batch_id, scored_at=scored_at,
                overwrite=overwrite, chunk_rows=chunk_rows, allow_pickle=allow_pickle,
                predict_method=predict_method,
            )  # fmt: skip
            rows = len(out)
            if inference_log:
                logged = log_frame(inference_log, out, kinds, ref.name, version, role, ts_us)
        else:
            session = spark if spark is not None else spark_session(master)
            written, rows = predict_spark(
                session, ref, schema, source, output, batch_id=batch_id, scored_at=scored_at,
                overwrite=overwrite,
            )  # fmt: skip
            if inference_log:
                logged = log_spark(written, inference_log, kinds, ref.name, version, role, ts_us)
    seconds = time.perf_counter() - t0
    logger.info(
        "scored %d rows of %s with %s version %s on %s in %.1fs",
        rows, source, ref.name, version, engine, seconds,
    )  # fmt: skip
    return BatchResult(
        model_uri=model_uri,
        model_name=ref.name,
        model_version=version,
        engine=engine,
        rows=rows,
        output=output,
        batch_id=batch_id,
        scored_at=scored_at,
        seconds=seconds,
        logged_rows=logged,
    )
