"""The reference data a training run leaves for monitoring: a bounded sample and a profile.

API: :func:`reference_sample`, :func:`profile`.

The profile holds per-column statistics of the *whole* training split (quantile bin edges with
counts for numbers, frequencies for categories), so drift checks need not reload the training
data; the sample (at most :data:`MAX_REFERENCE_ROWS` rows) feeds Evidently's report.
"""

from __future__ import annotations

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


def profile(X: pd.DataFrame, spec: DatasetSpec) -> dict[str, Any]:
    """Per-column statistics of the full training features (JSON-ready)."""
    cols: dict[str, Any] = {}
    for col in spec.numeric:
        values = X[col].to_numpy(dtype=float, na_value=np.nan)
        finite = values[np.isfinite(values)]
        entry: dict[str, Any] = {
            "type": "numeric",
            "count": len(values),
            "missing_share": float(np.mean(~np.isfinite(values))) if len(values) else 0.0,
        }
        if len(finite):
            edges = np.unique(np.quantile(finite, np.linspace(0, 1, PROFILE_BINS + 1)))
            counts, _ = (
                np.histogram(finite, bins=edges)
                if len(edges) > 1
                else (np.array([len(finite)]), None)
            )
            entry.update(
                min=float(finite.min()),
                max=float(finite.max()),
                mean=float(finite.mean()),
                std=float(finite.std()),
                bin_edges=[float(e) for e in edges],
                bin_counts=[int(c) for c in counts],
                quantiles=[
                    float(q) for q in np.quantile(finite, np.linspace(0, 1, PROFILE_QUANTILES))
                ],
            )
            uniq, ucounts = np.unique(finite, return_counts=True)
            if len(uniq) <= MAX_DISCRETE_VALUES:
                entry["values"] = {
                    repr(float(v)): int(c) for v, c in zip(uniq, ucounts, strict=True)
                }
        cols[col] = entry
    for col in spec.categorical:
        s = X[col]
        counts = s.value_counts(dropna=True)
        cols[col] = {
            "type": "categorical",
            "count": len(s),
            "missing_share": float(s.isna().mean()) if len(s) else 0.0,
            "categories": {str(k): int(v) for k, v in counts.head(MAX_CATEGORIES).items()},
            "n_categories": int(counts.size),
        }
    return {"rows": len(X), "target": spec.target, "task": spec.task, "columns": cols}
