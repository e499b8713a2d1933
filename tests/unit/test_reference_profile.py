"""The reference profile: per-column statistics of the training features."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlcycle.data import infer_spec
from mlcycle.reference_profile import MAX_DISCRETE_VALUES, PROFILE_BINS, profile


def test_numeric_statistics_are_numpys_on_the_unsorted_values() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame(
        {
            "skewed": np.where(np.arange(n) < 40, np.nan, rng.lognormal(size=n)),
            "with_inf": np.where(np.arange(n) < 7, np.inf, rng.normal(size=n)),
            "discrete": rng.integers(0, MAX_DISCRETE_VALUES, n).astype(float),
            "not_discrete": rng.integers(0, MAX_DISCRETE_VALUES + 1, n).astype(float),
            "constant": np.full(n, 5.0),
            "y": rng.integers(0, 2, n),
        }
    )
    prof = profile(frame, infer_spec(frame, "y"))["columns"]
    for col in ("skewed", "with_inf", "discrete", "not_discrete", "constant"):
        values = frame[col].to_numpy()
        finite = values[np.isfinite(values)]
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, PROFILE_BINS + 1)))
        entry = prof[col]
        assert entry["missing_share"] == np.mean(~np.isfinite(values))
        assert entry["bin_edges"] == list(edges)
        expected = np.histogram(finite, bins=edges)[0] if len(edges) > 1 else [len(finite)]
        assert entry["bin_counts"] == list(expected), col
        assert entry["quantiles"] == list(np.quantile(finite, np.linspace(0, 1, 1001)))
        assert (entry["min"], entry["max"]) == (finite.min(), finite.max())
        assert (entry["mean"], entry["std"]) == (finite.mean(), finite.std())
        uniq, counts = np.unique(finite, return_counts=True)
        if len(uniq) <= MAX_DISCRETE_VALUES:
            pairs = zip(uniq, counts, strict=True)
            assert entry["values"] == {repr(float(v)): int(c) for v, c in pairs}
        else:
            assert "values" not in entry
    assert "values" in prof["discrete"] and "values" not in prof["not_discrete"]


def test_a_categorical_column_counts_its_missing_values_apart() -> None:
    frame = pd.DataFrame({"c": ["a", "b", None, "a", None, "a"], "y": [0, 1, 0, 1, 0, 1]})
    entry = profile(frame, infer_spec(frame, "y"))["columns"]["c"]
    assert entry["missing_share"] == 2 / 6
    assert entry["categories"] == {"a": 3, "b": 1}
    assert entry["n_categories"] == 2
