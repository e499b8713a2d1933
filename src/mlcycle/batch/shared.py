"""What both batch engines do alike: check the input's columns, log scored rows.

API: :func:`check_columns`, :func:`is_s3`, :func:`log_frame`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlcycle.errors import DataError


def check_columns(present: list[str], schema: Any, source: str) -> None:
    missing = [c for c in schema.names if c not in present]
    if missing:
        raise DataError(
            f"'{source}' lacks the model's feature column(s): {', '.join(missing)} "
            f"(the model needs {', '.join(schema.names)})"
        )


def is_s3(path: str) -> bool:
    return path.startswith(("s3://", "s3a://"))


def log_frame(
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
