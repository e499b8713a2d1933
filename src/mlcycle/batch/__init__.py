"""Batch scoring: a registered model over a whole table, in process (pandas) or on Spark.

API: :func:`predict` → :class:`BatchResult`, :func:`spark_session`, :data:`ENGINES`,
:data:`CHUNK_ROWS`.

Modules: :mod:`~mlcycle.batch.core` (the API), :mod:`~mlcycle.batch.pandas_engine`,
:mod:`~mlcycle.batch.spark_engine` and :mod:`~mlcycle.batch.shared` (what both engines do alike).

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

from mlcycle.batch.core import CHUNK_ROWS, ENGINES, BatchResult, Engine, predict
from mlcycle.batch.spark_engine import spark_session

__all__ = ["CHUNK_ROWS", "ENGINES", "BatchResult", "Engine", "predict", "spark_session"]
