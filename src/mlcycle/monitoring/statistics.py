"""Statistics: one column's drift score and verdict from the window's summary.

API: :func:`column_drift`.

The profile methods (:data:`~mlcycle.monitoring.results.PROFILE_METHODS`) are computed here
from the reference profile and the summary's counts; other methods run through Evidently's
own stat tests on the bounded samples (:func:`mlcycle.monitoring.evidently_api.run_stattest`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from mlcycle.errors import MonitoringError
from mlcycle.monitoring.evidently_api import run_stattest
from mlcycle.monitoring.results import DEFAULT_THRESHOLDS, ColumnDrift, DriftConfig
from mlcycle.monitoring.summary import (
    MAX_TRACKED_VALUES,
    CategoricalStats,
    NumericStats,
    wasserstein_from,
)


def _aligned(
    ref_counts: dict[str, int], cur_counts: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    keys = list(dict.fromkeys([*ref_counts, *cur_counts]))
    r = np.array([ref_counts.get(k, 0) for k in keys], dtype=float)
    c = np.array([cur_counts.get(k, 0) for k in keys], dtype=float)
    return r, c


def _jensenshannon(ref_counts: dict[str, int], cur_counts: dict[str, int]) -> float:
    from scipy.spatial import distance

    r, c = _aligned(ref_counts, cur_counts)
    return float(distance.jensenshannon(r / r.sum(), c / c.sum()))


def _psi_from(r: np.ndarray, c: np.ndarray) -> float:
    r = r / r.sum()
    c = c / c.sum()
    r = np.where(r == 0, 1e-4, r)
    c = np.where(c == 0, 1e-4, c)
    return float(np.sum((c - r) * np.log(c / r)))


def _method_for(
    col: str, kind: str, ref: dict[str, Any], st: Any, config: DriftConfig, ref_rows: int
) -> str:
    method = config.per_column_method.get(col) or (
        config.num_method if kind == "numeric" else config.cat_method
    )
    if method != "auto":
        return method
    if ref_rows <= 1000:
        return "evidently"  # Evidently's small-data choice (KS, chi², Z) on the data itself
    if kind == "categorical":
        return "jensenshannon"
    if (
        "values" in ref
        and st.values is not None
        and len(set(ref["values"]) | set(st.values)) <= MAX_TRACKED_VALUES
    ):
        return "jensenshannon"
    return "wasserstein"


def column_drift(
    col: str,
    kind: Literal["numeric", "categorical"],
    ref: dict[str, Any],
    st: NumericStats | CategoricalStats,
    cur_sample: pd.Series | None,
    ref_sample: pd.Series | None,
    config: DriftConfig,
    ref_rows: int,
) -> ColumnDrift:
    """One column's verdict from its summary (the sample only for Evidently's own tests)."""
    n = st.rows
    if isinstance(st, NumericStats):
        present = st.finite
        counts = st.values
    else:
        present = sum(st.counts.values())
        counts = st.counts
    missing = 1.0 - present / n if n else 0.0
    method = _method_for(col, kind, ref, st, config, ref_rows)
    threshold = config.per_column_threshold.get(col, DEFAULT_THRESHOLDS.get(method))
    if method == "wasserstein" and isinstance(st, NumericStats):
        score = wasserstein_from(ref, st)
    elif method == "jensenshannon" and kind == "categorical":
        score = _jensenshannon(ref["categories"], counts or {})
    elif method == "jensenshannon" and "values" in ref and counts is not None:
        score = _jensenshannon(ref["values"], counts)
    elif method == "psi" and isinstance(st, NumericStats) and st.bins is not None:
        score = _psi_from(np.asarray(ref["bin_counts"], dtype=float), st.bins.astype(float))
    elif method == "psi" and kind == "categorical":
        score = _psi_from(*_aligned(ref["categories"], counts or {}))
    else:
        if ref_sample is None or cur_sample is None:
            raise MonitoringError(f"method '{method}' for '{col}' needs the reference sample")
        cur = cur_sample.dropna()
        ref_s = ref_sample.dropna()
        if kind == "numeric":
            ref_s = (
                pd.to_numeric(ref_s, errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()
            )
        score, drifted, thr = run_stattest(
            method, kind, ref_s.reset_index(drop=True), cur.reset_index(drop=True), threshold
        )
        return ColumnDrift(col, kind, method, score, thr, drifted, missing, n)
    assert threshold is not None
    return ColumnDrift(col, kind, method, score, threshold, score >= threshold, missing, n)
