"""The inference log's schema and its Hive partition layout, declared once.

API: :data:`IDENTITY_COLUMNS`, :data:`BOOKKEEPING_COLUMNS`, :data:`PREDICTION`,
:data:`PROBA_PREFIX`, :data:`REQUIRED_COLUMNS`, :func:`hour_of`, :func:`model_path`,
:func:`partition_path`, :func:`partition_values`, :func:`is_output_column`.

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
"""

from __future__ import annotations

from datetime import UTC, datetime

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


def is_output_column(name: object) -> bool:
    """Whether ``name`` is a column the server adds after scoring (``prediction``, ``proba_*``)."""
    return name == PREDICTION or str(name).startswith(PROBA_PREFIX)


def hour_of(timestamp_us: int) -> str:
    """The ``hour=`` partition value of a timestamp in microseconds since the epoch."""
    return datetime.fromtimestamp(timestamp_us / 1e6, tz=UTC).strftime("%Y-%m-%dT%H")


def model_path(root: str, name: str) -> str:
    """Directory (or S3 prefix) of every partition of model ``name``."""
    return f"{root.rstrip('/')}/model={name}"


def partition_path(root: str, name: str, version: str, hour: str) -> str:
    """Directory (or S3 prefix) of one partition."""
    return f"{model_path(root, name)}/version={version}/hour={hour}"


def partition_values(path: str) -> dict[str, str]:
    """The ``key=value`` directories of a path under the log (``model``, ``version``, ``hour``)."""
    return dict(p.split("=", 1) for p in path.split("/")[:-1] if "=" in p)
