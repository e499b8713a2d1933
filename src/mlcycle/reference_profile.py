"""The reference of the lifecycle contract: a bounded sample and a profile of the training data.

API: :func:`reference_sample`, :func:`profile`.

Training (and :mod:`mlcycle.contract` for a run trained elsewhere) writes them; monitoring
profiles a reference table and the prediction column the same way. Numbers and pandas only:
monitoring imports this module without the training stage (scikit-learn, MLflow's sklearn
flavor).

The profile holds per-column statistics of the *whole* training split (quantile bin edges with
counts for numbers, frequencies for categories), so drift checks need not reload the training
data; the sample (at most :data:`MAX_REFERENCE_ROWS` rows) feeds Evidently's report.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.data import DatasetSpec

MAX_REFERENCE_ROWS = 5_000
PROFILE_BINS = 20
MAX_CATEGORIES = 100
#: Points of the reference quantile function kept per numeric column (Wasserstein at scale).
PROFILE_QUANTILES = 1001
#: Numeric columns with at most this many distinct values also keep their value counts.
MAX_DISCRETE_VALUES = 20


def reference_sample(
    X: pd.DataFrame, y: pd.Series, y_pred: np.ndarray, spec: DatasetSpec, seed: int
) -> pd.DataFrame:
    """Features, target and prediction of at most ``MAX_REFERENCE_ROWS`` training rows."""
    frame = X.copy()
    frame[spec.target] = np.asarray(y)
    frame["prediction"] = y_pred
    if len(frame) > MAX_REFERENCE_ROWS:
        frame = frame.sample(MAX_REFERENCE_ROWS, random_state=seed)
    return frame.reset_index(drop=True)


def _numeric_entry(values: np.ndarray) -> dict[str, Any]:
    """Statistics of one numeric column; the finite values are sorted once for all of them.

    Quantiles of sorted values are the same numbers (the order statistics do not depend on
    the order), and counting between edges by ``searchsorted`` is how ``np.histogram`` counts
    for uneven bins: the results match the unsorted computations exactly, at a third of the
    cost. Mean and std stay on the unsorted values (summation order changes float rounding).
    """
    isfinite = np.isfinite(values)
    finite = values[isfinite]
    entry: dict[str, Any] = {
        "type": "numeric",
        "count": len(values),
        "missing_share": float(np.mean(~isfinite)) if len(values) else 0.0,
    }
    if not len(finite):
        return entry
    ordered = np.sort(finite)
    edges = np.unique(np.quantile(ordered, np.linspace(0, 1, PROFILE_BINS + 1)))
    if len(edges) > 1:
        # np.histogram's bins: [e_i, e_i+1) each, the last one closed on the right.
        cum = np.concatenate(
            [
                np.searchsorted(ordered, edges[:-1], "left"),
                np.searchsorted(ordered, edges[-1:], "right"),
            ]
        )
        counts = np.diff(cum)
    else:
        counts = np.array([len(finite)])
    entry.update(
        min=float(ordered[0]),
        max=float(ordered[-1]),
        mean=float(finite.mean()),
        std=float(finite.std()),
        bin_edges=[float(e) for e in edges],
        bin_counts=[int(c) for c in counts],
        quantiles=[float(q) for q in np.quantile(ordered, np.linspace(0, 1, PROFILE_QUANTILES))],
    )
    starts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    if len(starts) < MAX_DISCRETE_VALUES:
        bounds = np.concatenate([[0], starts, [len(ordered)]])
        entry["values"] = {repr(float(ordered[a])): int(b - a) for a, b in pairwise(bounds)}
    return entry


def profile(X: pd.DataFrame, spec: DatasetSpec) -> dict[str, Any]:
    """Per-column statistics of the full training features (JSON-ready)."""
    cols: dict[str, Any] = {}
    for col in spec.numeric:
        cols[col] = _numeric_entry(X[col].to_numpy(dtype=float, na_value=np.nan))
    for col in spec.categorical:
        s = X[col]
        counts = s.value_counts(dropna=True)
        cols[col] = {
            "type": "categorical",
            "count": len(s),
            # value_counts(dropna=True) leaves out exactly the missing values.
            "missing_share": float((len(s) - counts.sum()) / len(s)) if len(s) else 0.0,
            "categories": {str(k): int(v) for k, v in counts.head(MAX_CATEGORIES).items()},
            "n_categories": int(counts.size),
        }
    return {"rows": len(X), "target": spec.target, "task": spec.task, "columns": cols}
