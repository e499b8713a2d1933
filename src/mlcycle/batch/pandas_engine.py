"""The pandas engine of batch scoring: in process, chunk by chunk.

API: :func:`predict_pandas`.

The output is written with :mod:`mlcycle.parquet` (fastparquet in the core install, pyarrow
when an extra brought it) and boto3 for ``s3://``: the same files and column types either way.
"""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle import trust
from mlcycle.batch.shared import check_columns, is_s3
from mlcycle.errors import DataError
from mlcycle.parquet import write_parquet
from mlcycle.proba import class_probabilities
from mlcycle.schema_types import DTYPE_NAMES
from mlcycle.storage import s3_client, split_s3

#: Hive partition columns of the output: directory names, not columns of the files.
PARTITION_COLUMNS = ("model_version", "scored_date")
MAX_ROWS_PER_FILE = 1_000_000
ROW_GROUP_ROWS = 128 * 1024


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
    """``proba_<class>`` columns for ``features`` (see :mod:`mlcycle.proba`)."""
    from mlcycle.inference_log import PROBA_PREFIX

    found = class_probabilities(model, features)
    if found is None:
        raise DataError(
            f"the model scoring '{source}' has no predict_proba (a regressor?): use "
            "--predict-method predict"
        )
    values, classes = found
    if values.ndim != 2 or values.shape[1] != len(classes):
        raise DataError(f"the model scoring '{source}' returned no class probabilities")
    return pd.DataFrame(values, columns=[f"{PROBA_PREFIX}{c}" for c in classes])


def predict_pandas(
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
    from mlcycle.data import load_table

    df = load_table(source)
    check_columns(list(df.columns), schema, source)
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
    _write_partition(out, output, f"part-{batch_id}", overwrite=overwrite)
    return out


def _write_partition(out: pd.DataFrame, output: str, stem: str, *, overwrite: bool) -> None:
    """``out`` as ``{output}/model_version=V/scored_date=D/{stem}-{i}.parquet``.

    One call scores with one version on one date, so it writes one partition; ``overwrite``
    first deletes what that partition held.
    """
    values = out[list(PARTITION_COLUMNS)].drop_duplicates()
    if len(values) != 1:  # pragma: no cover - predict_pandas assigns one value to each
        raise DataError(f"batch output spans {len(values)} partitions; expected one")
    part = "/".join(f"{c}={values.iloc[0][c]}" for c in PARTITION_COLUMNS)
    rows = out.drop(columns=list(PARTITION_COLUMNS))
    files = {
        f"{stem}-{i}.parquet": rows.iloc[start : start + MAX_ROWS_PER_FILE]
        for i, start in enumerate(range(0, len(rows), MAX_ROWS_PER_FILE))
    }
    if is_s3(output):
        client = s3_client()
        bucket, prefix = split_s3("s3://" + output.split("://", 1)[1].rstrip("/"))
        where = f"{prefix}/{part}/" if prefix else f"{part}/"
        if overwrite:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=where)
            for page in pages:
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        for name, frame in files.items():
            buf = io.BytesIO()
            write_parquet(frame, buf, row_group_rows=ROW_GROUP_ROWS)
            client.put_object(Bucket=bucket, Key=where + name, Body=buf.getvalue())
        return
    directory = Path(output, *part.split("/"))
    if overwrite and directory.is_dir():
        for old in directory.iterdir():
            if old.is_file():
                old.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in files.items():
        write_parquet(frame, directory / name, row_group_rows=ROW_GROUP_ROWS)
