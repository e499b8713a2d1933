"""Batch scoring: a registered model over a whole table, in process (pandas) or on Spark.

API: :func:`predict` → :class:`BatchResult`, :func:`spark_session`, :data:`ENGINES`.

Both engines resolve the model URI once in the registry (``models:/NAME@champion`` becomes
one version), score with the model's pyfunc flavour (``mlflow.pyfunc.spark_udf`` on Spark),
and write the same layout: Hive-partitioned Parquet ::

    {output}/model_version={version}/scored_date={YYYY-MM-DD}/part-*.parquet

One row per input row: the input columns (features cast to the model signature's types, other
columns as read), ``prediction``, ``model_name``, ``model_version``, ``batch_id`` (one per
call), ``scored_at`` (UTC), and ``request_id`` + ``record_index``, the keys late labels join
on when the rows are also appended to the inference log (:mod:`mlcycle.inference_log`,
through its own writer). A ``request_id`` is one chunk of rows (pandas) or one input partition
(Spark).

Inputs are a CSV or Parquet file, local or ``s3://``. Spark reads ``s3://`` as ``s3a://``,
which needs ``hadoop-aws`` on the Spark classpath (see docs/scaling.md).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlcycle import trust
from mlcycle.config import PYSPARK_PYTHON
from mlcycle.errors import ConfigError, DataError
from mlcycle.schema_types import DTYPE_NAMES
from mlcycle.storage import filesystem

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


# --------------------------------------------------------------------------- shared


def _model(model_uri: str, client: Any, allow_pickle: bool) -> tuple[Any, Any]:
    """The registry version ``model_uri`` names now, and its input schema (trust checked)."""
    from mlcycle.serve.model import check_model, resolve

    ref = resolve(model_uri, client)
    return ref, check_model(ref, allow_pickle=allow_pickle)


def _check_columns(present: list[str], schema: Any, source: str) -> None:
    missing = [c for c in schema.names if c not in present]
    if missing:
        raise DataError(
            f"'{source}' lacks the model's feature column(s): {', '.join(missing)} "
            f"(the model needs {', '.join(schema.names)})"
        )


def _is_s3(path: str) -> bool:
    return path.startswith(("s3://", "s3a://"))


def _log_frame(
    root: str,
    frame: pd.DataFrame,
    kinds: tuple[tuple[str, str], ...],
    model_name: str,
    model_version: str,
    role: str,
    timestamp_us: int,
) -> int:
    """Append scored rows to the inference log with its own writer; returns rows written.

    ``frame`` holds ``request_id``, ``record_index`` (0..n-1 within each request), the
    features and ``prediction``.
    """
    from mlcycle.inference_log import PROBA_PREFIX, InferenceLog, LogItem

    proba_cols = [c for c in frame.columns if str(c).startswith(PROBA_PREFIX)]
    classes = tuple(str(c)[len(PROBA_PREFIX) :] for c in proba_cols)
    log = InferenceLog(root, max_pending=len(frame) + 1, flush_records=len(frame) + 1)
    for rid, group in frame.groupby("request_id", sort=True):
        group = group.sort_values("record_index", kind="stable")
        log.append(
            LogItem(
                request_id=str(rid),
                timestamp_us=timestamp_us,
                model_name=model_name,
                model_version=model_version,
                role=role,
                columns={name: group[name].to_numpy() for name, _ in kinds},
                kinds=kinds,
                predictions=group["prediction"].to_numpy(),
                proba=group[proba_cols].to_numpy(dtype=float) if proba_cols else None,
                classes=classes,
            )
        )
    log.close()
    if log.written != len(frame):
        raise DataError(
            f"the inference log at {root} took {log.written} of {len(frame)} rows "
            f"({log.write_errors} write error(s); see the log above)"
        )
    return log.written


# --------------------------------------------------------------------------- pandas


def _cast_features(df: pd.DataFrame, schema: Any, source: str) -> pd.DataFrame:
    """Feature columns converted to the signature's types; a value that does not fit errors."""
    out = df.copy(deep=False)
    for col in schema.columns:
        series = df[col.name]
        try:
            if col.kind == "string":
                values = series.astype(object).where(series.notna(), None)
                out[col.name] = values.map(lambda v: v if v is None else str(v)).astype(object)
            elif col.kind in ("long", "integer", "boolean") and series.isna().any():
                raise ValueError("missing values in an integer/boolean column")
            else:
                out[col.name] = series.astype(DTYPE_NAMES[col.kind])
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"column '{col.name}' of '{source}' does not fit the model's type {col.kind}: {exc}"
            ) from exc
    return out


def _proba_frame(model: Any, features: pd.DataFrame, source: str) -> pd.DataFrame:
    """``proba_<class>`` columns for ``features``: sklearn's ``predict_proba``, or any other
    pyfunc asked with ``params={"predict_method": "predict_proba"}`` (MLflow's convention)."""
    from mlcycle.inference_log import PROBA_PREFIX

    raw = model.get_raw_model() if hasattr(model, "get_raw_model") else None
    if raw is not None and hasattr(raw, "predict_proba") and hasattr(raw, "classes_"):
        values, classes = np.asarray(raw.predict_proba(features)), list(raw.classes_)
    else:
        out = model.predict(features, params={"predict_method": "predict_proba"})
        if not isinstance(out, pd.DataFrame) or getattr(out, "ndim", 1) != 2:
            raise DataError(
                f"the model scoring '{source}' has no predict_proba (a regressor?): use "
                "--predict-method predict"
            )
        values, classes = out.to_numpy(), list(out.columns)
    if values.ndim != 2 or values.shape[1] != len(classes):
        raise DataError(f"the model scoring '{source}' returned no class probabilities")
    return pd.DataFrame(values.astype(float), columns=[f"{PROBA_PREFIX}{c}" for c in classes])


def _predict_pandas(
    ref: Any,
    schema: Any,
    source: str,
    output: str,
    *,
    batch_id: str,
    scored_at: datetime,
    overwrite: bool,
    chunk_rows: int,
    allow_pickle: bool = False,
    predict_method: str = "predict",
) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.dataset as ds

    from mlcycle.data import load_table

    df = load_table(source)
    _check_columns(list(df.columns), schema, source)
    df = _cast_features(df, schema, source)
    model = trust.load_pyfunc(ref.download_uri, ref.uri, allow_pickle=allow_pickle)
    features = list(schema.names)
    preds: list[np.ndarray] = []
    probas: list[pd.DataFrame] = []
    request_ids: list[np.ndarray] = []
    record_index: list[np.ndarray] = []
    for i, start in enumerate(range(0, len(df), chunk_rows)):
        part = df.iloc[start : start + chunk_rows]
        preds.append(np.asarray(model.predict(part[features])))
        if predict_method == "predict_proba":
            probas.append(_proba_frame(model, part[features], source))
        request_ids.append(np.full(len(part), f"{batch_id}-{i}", dtype=object))
        record_index.append(np.arange(len(part), dtype=np.int32))
    out = df.assign(
        prediction=np.concatenate(preds),
        model_name=ref.name,
        model_version=str(ref.version),
        batch_id=batch_id,
        scored_at=pd.Timestamp(scored_at),
        request_id=np.concatenate(request_ids),
        record_index=np.concatenate(record_index),
        scored_date=scored_at.strftime("%Y-%m-%d"),
    )
    if probas:
        proba = pd.concat(probas, ignore_index=True)
        out = pd.concat([out.reset_index(drop=True), proba], axis=1)
    fs, base = filesystem(output)
    table = pa.Table.from_pandas(out, preserve_index=False)
    ds.write_dataset(
        table,
        base,
        filesystem=fs,
        format="parquet",
        partitioning=["model_version", "scored_date"],
        partitioning_flavor="hive",
        basename_template=f"part-{batch_id}-{{i}}.parquet",
        existing_data_behavior="delete_matching" if overwrite else "overwrite_or_ignore",
        max_rows_per_file=1_000_000,
        max_rows_per_group=128 * 1024,
    )
    return out


# --------------------------------------------------------------------------- spark


def spark_session(master: str = "local[2]", app_name: str = "mlcycle-predict") -> Any:
    """A SparkSession on ``master`` (the running one when there is one).

    In local mode the Python workers run this interpreter, so they see the same packages.

    Raises:
        ConfigError: pyspark is not installed (``pip install 'mlcycle[spark]'``).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(
            "the spark engine needs pyspark: pip install 'mlcycle[spark]' (and Java 17+)"
        ) from exc
    # Spark's workers default to `python3` on PATH, which may lack mlflow and the model's
    # packages; a cluster's executors bring their own interpreter.
    if master.startswith("local") and not PYSPARK_PYTHON.is_set():
        PYSPARK_PYTHON.set(sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name)
    if master.startswith("local"):
        builder = builder.config("spark.ui.enabled", "false").config(
            "spark.sql.shuffle.partitions", "4"
        )
    return builder.getOrCreate()


def _result_type(download_uri: str) -> str:
    """Spark type of one prediction per row, from the model's output signature.

    ``spark_udf`` would infer an array type from mlcycle's ``Tensor(int64, (-1,))`` outputs.
    """
    import mlflow
    from mlflow.types import TensorSpec

    sig = mlflow.models.get_model_info(download_uri).signature
    outputs = sig.outputs.inputs if sig is not None and sig.outputs is not None else []
    if len(outputs) != 1:
        return "double"
    spec = outputs[0]
    if isinstance(spec, TensorSpec):
        kind = spec.type.kind
        if kind == "b":
            return "boolean"
        if kind in "iu":
            return "long" if spec.type.itemsize > 4 else "int"
        if kind == "f":
            return "double" if spec.type.itemsize > 4 else "float"
        return "string"
    return str(spec.type.to_spark().simpleString())


def _spark_path(path: str) -> str:
    return "s3a://" + path[len("s3://") :] if path.startswith("s3://") else path


def _spark_read(spark: Any, source: str) -> Any:
    lower = source.lower()
    if not _is_s3(source) and not Path(source).exists():
        raise DataError(f"data file '{source}' does not exist")
    path = _spark_path(source)
    try:
        if lower.endswith((".parquet", ".pq")) or (not _is_s3(source) and Path(source).is_dir()):
            return spark.read.parquet(path)
        return spark.read.option("header", True).option("inferSchema", True).csv(path)
    except Exception as exc:
        raise DataError(f"Spark cannot read '{source}': {exc}") from exc


def _predict_spark(
    spark: Any,
    ref: Any,
    schema: Any,
    source: str,
    output: str,
    *,
    batch_id: str,
    scored_at: datetime,
    overwrite: bool,
) -> tuple[Any, int]:
    import mlflow
    from mlflow.types import DataType
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    df = _spark_read(spark, source)
    _check_columns(df.columns, schema, source)
    for c in schema.columns:
        df = df.withColumn(c.name, F.col(c.name).cast(DataType[c.kind].to_spark()))
    udf = mlflow.pyfunc.spark_udf(
        spark, ref.download_uri, result_type=_result_type(ref.download_uri), env_manager="local"
    )
    mono = F.monotonically_increasing_id()
    # monotonically_increasing_id is partition << 33 | row within partition: one request per
    # input partition, record_index its row number, as the inference log's writer numbers them.
    scored = df.select(
        "*",
        udf(F.struct(*[F.col(n) for n in schema.names])).alias("prediction"),
        F.lit(ref.name).alias("model_name"),
        F.lit(str(ref.version)).alias("model_version"),
        F.lit(batch_id).alias("batch_id"),
        F.lit(scored_at).cast(TimestampType()).alias("scored_at"),
        F.concat(F.lit(f"{batch_id}-"), F.shiftright(mono, 33).cast("string")).alias("request_id"),
        mono.bitwiseAND(F.lit((1 << 33) - 1)).cast("int").alias("record_index"),
        F.lit(scored_at.strftime("%Y-%m-%d")).alias("scored_date"),
    )
    try:
        (
            scored.write.mode("overwrite" if overwrite else "append")
            .option("partitionOverwriteMode", "dynamic")
            .partitionBy("model_version", "scored_date")
            .parquet(_spark_path(output))
        )
    except Exception as exc:
        raise DataError(f"Spark could not score '{source}': {exc}") from exc
    written = spark.read.parquet(_spark_path(output)).where(F.col("batch_id") == batch_id)
    return written, written.count()


def _log_spark(
    written: Any,
    root: str,
    kinds: tuple[tuple[str, str], ...],
    model_name: str,
    model_version: str,
    role: str,
    timestamp_us: int,
) -> int:
    """Append the written rows to the inference log from the executors, one request a group."""
    if not _is_s3(root):
        root = str(Path(root).resolve())
    names = [name for name, _ in kinds]
    cols = ["request_id", "record_index", *names, "prediction"]

    def write_group(pdf: pd.DataFrame) -> pd.DataFrame:
        n = _log_frame(root, pdf, kinds, model_name, model_version, role, timestamp_us)
        return pd.DataFrame({"rows": [n]})

    counts = written.select(*cols).groupBy("request_id").applyInPandas(write_group, "rows long")
    return int(sum(r["rows"] for r in counts.collect()))


# --------------------------------------------------------------------------- API


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
    t0 = time.perf_counter()
    ref, schema = _model(model_uri, client, allow_pickle)
    batch_id = uuid.uuid4().hex[:12]
    now = datetime.now(UTC)
    # Millisecond precision survives every writer (Spark, pyarrow, the inference log) intact.
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
            out = _predict_pandas(
                ref, schema, source, output, batch_id=batch_id, scored_at=scored_at,
                overwrite=overwrite, chunk_rows=chunk_rows, allow_pickle=allow_pickle,
                predict_method=predict_method,
            )  # fmt: skip
            rows = len(out)
            if inference_log:
                logged = _log_frame(inference_log, out, kinds, ref.name, version, role, ts_us)
        else:
            session = spark if spark is not None else spark_session(master)
            written, rows = _predict_spark(
                session, ref, schema, source, output, batch_id=batch_id, scored_at=scored_at,
                overwrite=overwrite,
            )  # fmt: skip
            if inference_log:
                logged = _log_spark(written, inference_log, kinds, ref.name, version, role, ts_us)
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
