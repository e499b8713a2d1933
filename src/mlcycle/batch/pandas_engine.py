"""The pandas engine of batch scoring: in process, chunk by chunk.

API: :func:`predict_pandas`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from mlcycle import trust
from mlcycle.batch.shared import check_columns
from mlcycle.errors import DataError
from mlcycle.proba import class_probabilities
from mlcycle.schema_types import DTYPE_NAMES
from mlcycle.storage import filesystem


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
    import pyarrow as pa
    import pyarrow.dataset as ds

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
