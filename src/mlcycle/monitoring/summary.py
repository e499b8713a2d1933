"""Mergeable per-column statistics of a window: what drift verdicts are computed from.

API: :class:`WindowSummary` (``add`` a frame or an Arrow batch, ``merge`` two summaries),
:func:`summarise_frame`, :func:`summarise_batches`.

A window is summarised in one pass, batch by batch, so its size is bounded by the disk, not
by memory: the pandas engine summarises the whole frame as one batch, the Arrow engine the
inference log's record batches one at a time, and the Spark engine each partition on an
executor (the summaries are then merged on the driver). All three give the same statistics,
hence the same verdicts.

Per numeric column the summary holds counts over the reference's quantile points (interior
of each interval, and point masses exactly on a point), the count and total excess of values
below and above the reference range, and the data-quality counters (text that is not a
number, infinities, missing). That is enough for the normed Wasserstein distance — the area
between the two distribution functions, exact outside the reference range and linear within
each of its 1000 quantile intervals — and for PSI on the reference bins. Per categorical
column (and classification predictions) it holds category counts, for Jensen–Shannon and PSI.
A bounded uniform sample of rows (smallest random keys) feeds the Evidently report and the
methods that need raw values (``ks``, ``chisquare``…).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.monitoring.column_stats import (
    MAX_TRACKED_VALUES,
    Bins,
    CategoricalStats,
    Columns,
    NumericStats,
    batch_columns,
    class_labels,
    numeric_stats,
    numeric_values,
    reference_edges,
    wasserstein_from,
)

__all__ = [  # the column statistics are re-exported: the summary is where callers meet them
    "MAX_TRACKED_VALUES",
    "Bins",
    "CategoricalStats",
    "NumericStats",
    "WindowSummary",
    "class_labels",
    "numeric_values",
    "reference_edges",
    "summarise_batches",
    "summarise_frame",
    "wasserstein_from",
]


@dataclass
class WindowSummary:
    """Mergeable statistics of a window (see the module docstring).

    Attributes:
        rows: rows seen.
        columns: names seen in the window (for missing/extra column findings).
        numeric / categorical: per feature column statistics.
        prediction: statistics of the ``prediction`` column, when the window has one.
        sample: at most ``sample_rows`` rows drawn uniformly (for the report).
        batches / max_batch_rows: how the window arrived (the largest batch ever held).
        first_ts / last_ts: time range of the rows (when they have a ``timestamp``).
        labelled: rows whose ``record_id``/``request_id`` is in ``label_keys`` (kept whole;
            bounded by the number of labels).
    """

    profile: dict[str, Any]
    prediction_profile: dict[str, Any] | None = None
    sample_rows: int = 5_000
    seed: int = 0
    label_keys: dict[str, frozenset[str]] | None = None
    rows: int = 0
    batches: int = 0
    max_batch_rows: int = 0
    first_ts: pd.Timestamp | None = None
    last_ts: pd.Timestamp | None = None
    columns: list[str] = field(default_factory=list)
    numeric: dict[str, NumericStats] = field(default_factory=dict)
    categorical: dict[str, CategoricalStats] = field(default_factory=dict)
    prediction: NumericStats | CategoricalStats | None = None
    sample: pd.DataFrame | None = None
    sample_keys: np.ndarray | None = None
    labelled: list[pd.DataFrame] = field(default_factory=list)
    _bins: dict[str, Bins | None] = field(default_factory=dict, repr=False)

    def _edges_of(self, col: str, ref: dict[str, Any]) -> Bins | None:
        if col not in self._bins:
            has = "quantiles" in ref or "bin_edges" in ref
            self._bins[col] = Bins(reference_edges(ref)[0]) if has else None
        return self._bins[col]

    def note_columns(self, names: Any) -> None:
        """Record column names of the window without reading them (extra-column findings)."""
        for c in names:
            if c not in self.columns:
                self.columns.append(str(c))

    def add(self, batch: Any) -> WindowSummary:
        """Add a pandas frame, or an Arrow record batch / table read column by column.

        Arrow columns of numbers and text are counted in Arrow and numpy without building a
        pandas frame (the window's text never becomes Python objects); other types, the
        timestamps and the sampled rows go through pandas, so the statistics are the same.
        """
        cols = batch_columns(batch)
        n = cols.rows
        for c in cols.names:
            if c not in self.columns:
                self.columns.append(str(c))
        if not n:
            return self
        if "timestamp" in cols.names:
            ts = cols.series("timestamp")
            if not isinstance(ts.dtype, pd.DatetimeTZDtype):
                ts = pd.to_datetime(ts, utc=True)
            lo, hi = ts.min(), ts.max()
            self.first_ts = lo if self.first_ts is None else min(self.first_ts, lo)
            self.last_ts = hi if self.last_ts is None else max(self.last_ts, hi)
        self.rows += n
        self.batches += 1
        self.max_batch_rows = max(self.max_batch_rows, n)
        for col, ref in self.profile["columns"].items():
            if col not in cols.names:
                continue
            if ref["type"] == "numeric":
                part: Any = numeric_stats(cols.numbers(col), ref, self._edges_of(col, ref))
                if col in self.numeric:
                    self.numeric[col].merge(part)
                else:
                    self.numeric[col] = part
            else:
                part = cols.categories(col, labels=False)
                if col in self.categorical:
                    self.categorical[col].merge(part)
                else:
                    self.categorical[col] = part
        if "prediction" in cols.names and self.prediction_profile is not None:
            pp = self.prediction_profile
            if pp["type"] == "numeric":
                edges = self._edges_of("prediction", pp)
                pred: Any = numeric_stats(cols.numbers("prediction"), pp, edges)
            else:
                pred = cols.categories("prediction", labels=True)
            if self.prediction is None:
                self.prediction = pred
            else:
                self.prediction.merge(pred)
        self._sample(cols)
        if self.label_keys:
            hit = np.zeros(n, dtype=bool)
            for key, ids in self.label_keys.items():
                if key in cols.names and ids:
                    hit |= cols.series(key).astype("str").isin(ids).to_numpy()
            if hit.any():
                self.labelled.append(cols.rows_at(np.flatnonzero(hit)))
        return self

    def _sample(self, cols: Columns) -> None:
        # Uniform keys per row; the rows with the smallest keys form a uniform sample of the
        # whole window, whichever way it was split into batches.
        n = cols.rows
        rng = np.random.default_rng([self.seed, self.rows, n])
        keys = rng.random(n)
        candidates = np.arange(n)
        if self.sample_keys is not None and len(self.sample_keys) >= self.sample_rows:
            # Only rows under the largest key kept can enter: convert just those.
            candidates = np.flatnonzero(keys < self.sample_keys.max())
            if not len(candidates):
                return
        k = min(self.sample_rows, len(candidates))
        if k < len(candidates):
            candidates = candidates[np.argpartition(keys[candidates], k - 1)[:k]]
        self._merge_sample(cols.rows_at(candidates), keys[candidates])

    def _merge_sample(self, part: pd.DataFrame | None, keys: np.ndarray | None) -> None:
        if part is None or keys is None:
            return
        if self.sample is None or self.sample_keys is None:
            both, all_keys = part, keys
        else:
            both = pd.concat([self.sample, part], ignore_index=True)
            all_keys = np.concatenate([self.sample_keys, keys])
        if len(both) > self.sample_rows:
            keep = np.sort(np.argpartition(all_keys, self.sample_rows - 1)[: self.sample_rows])
            both, all_keys = both.iloc[keep].reset_index(drop=True), all_keys[keep]
        self.sample, self.sample_keys = both, all_keys

    def merge(self, o: WindowSummary) -> WindowSummary:
        """Fold another summary of the same reference into this one."""
        for ts in (o.first_ts, o.last_ts):
            if ts is not None:
                self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
                self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        self.rows += o.rows
        self.batches += o.batches
        self.max_batch_rows = max(self.max_batch_rows, o.max_batch_rows)
        self.columns.extend(c for c in o.columns if c not in self.columns)
        for name in ("numeric", "categorical"):
            mine, theirs = getattr(self, name), getattr(o, name)
            for col, st in theirs.items():
                if col in mine:
                    mine[col].merge(st)
                else:
                    mine[col] = st
        if o.prediction is not None:
            if self.prediction is None:
                self.prediction = o.prediction
            else:
                self.prediction.merge(o.prediction)  # type: ignore[arg-type]
        self._merge_sample(o.sample, o.sample_keys)
        self.labelled.extend(o.labelled)
        return self

    def labelled_frame(self) -> pd.DataFrame:
        """The rows kept for labels, as one frame."""
        parts = [p for p in self.labelled if len(p)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def fresh(self) -> WindowSummary:
        """An empty summary with the same settings."""
        out = WindowSummary(
            self.profile, self.prediction_profile, self.sample_rows, self.seed, self.label_keys
        )
        out._bins = self._bins  # built once per column from the reference, then read-only
        return out


def summarise_frame(
    frame: pd.DataFrame,
    profile: dict[str, Any],
    prediction_profile: dict[str, Any] | None,
    sample_rows: int = 5_000,
    seed: int = 0,
) -> WindowSummary:
    """The summary of an in-memory window (one pass over each column)."""
    return WindowSummary(profile, prediction_profile, sample_rows, seed).add(frame)


def summarise_batches(batches: Any, summary: WindowSummary) -> WindowSummary:
    """Fold an iterable of Arrow record batches (or frames) into ``summary``."""
    for batch in batches:
        summary.add(batch)
    return summary
