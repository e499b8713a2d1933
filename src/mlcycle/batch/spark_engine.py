"""The Spark engine of batch scoring: ``mlflow.pyfunc.spark_udf`` over the cluster.

API: :func:`spark_session`, :func:`predict_spark`, :func:`log_spark`.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlcycle.batch.shared import check_columns, is_s3, log_frame
from mlcycle.config import PYSPARK_PYTHON
from mlcycle.errors import ConfigError, DataError


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
    if not is_s3(source) and not Path(source).exists():
        raise DataError(f"data file '{source}' does not exist")
    path = _spark_path(source)
    try:
        if lower.endswith((".parquet", ".pq")) or (not is_s3(source) and Path(source).is_dir()):
            return spark.read.parquet(path)
        return spark.read.option("header", True).option("inferSchema", True).csv(path)
    except Exception as exc:
        raise DataError(f"Spark cannot read '{source}': {exc}") from exc


def predict_spark(
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
    check_columns(df.columns, schema, source)
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


def log_spark(
    written: Any,
    root: str,
    kinds: tuple[tuple[str, str], ...],
    model_name: str,
    model_version: str,
    role: str,
    timestamp_us: int,
) -> int:
    """Append the written rows to the inference log from the executors, one request a group."""
    if not is_s3(root):
        root = str(Path(root).resolve())
    names = [name for name, _ in kinds]
    cols = ["request_id", "record_index", *names, "prediction"]

    def write_group(pdf: pd.DataFrame) -> pd.DataFrame:
        n = log_frame(root, pdf, kinds, model_name, model_version, role, timestamp_us)
        return pd.DataFrame({"rows": [n]})

    counts = written.select(*cols).groupBy("request_id").applyInPandas(write_group, "rows long")
    return int(sum(r["rows"] for r in counts.collect()))
