"""Per-column statistics of a window against the reference, and how a batch is read.

API: :class:`NumericStats`, :class:`CategoricalStats` (mergeable counts of one column),
:class:`Bins` (the reference's quantile points with a lookup table), :func:`reference_edges`,
:func:`numeric_values`, :func:`class_labels`, :func:`numeric_stats`, :func:`wasserstein_from`,
and :func:`batch_columns` (a pandas frame or an Arrow batch read column by column), which
:class:`~mlcycle.monitoring.summary.WindowSummary` folds batch after batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: Distinct values tracked per numeric column with a discrete reference (Evidently treats
#: numbers with at most five values as categories).
MAX_TRACKED_VALUES = 5


def reference_edges(ref: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct reference quantile points and the reference CDF just before and at each.

    Returns:
        ``(edges, cdf_left, cdf_right)``: the CDF jumps at an edge repeated in the quantile
        function (a point mass of the reference) from ``cdf_left`` to ``cdf_right``.
    """
    q = np.asarray(ref.get("quantiles") or ref["bin_edges"], dtype=float)
    p = np.linspace(0.0, 1.0, len(q))
    edges, first, counts = np.unique(q, return_index=True, return_counts=True)
    left = p[first]
    right = p[first + counts - 1]
    return edges, left, right


@dataclass
class NumericStats:
    """Counts of one numeric column against the reference's quantile points."""

    rows: int = 0
    given: int = 0
    not_numbers: int = 0
    text: str | None = None
    infinite: int = 0
    finite: int = 0
    below: int = 0
    above: int = 0
    below_excess: float = 0.0
    above_excess: float = 0.0
    vmin: float = np.inf
    vmax: float = -np.inf
    first: float | None = None
    interior: np.ndarray | None = None
    on_edge: np.ndarray | None = None
    bins: np.ndarray | None = None
    values: dict[str, int] | None = field(default_factory=dict)

    def merge(self, o: NumericStats) -> None:
        """Add ``o``'s counts to these."""
        for k in ("rows", "given", "not_numbers", "infinite", "finite", "below", "above"):
            setattr(self, k, getattr(self, k) + getattr(o, k))
        self.below_excess += o.below_excess
        self.above_excess += o.above_excess
        self.text = self.text or o.text
        self.vmin, self.vmax = min(self.vmin, o.vmin), max(self.vmax, o.vmax)
        self.first = self.first if self.first is not None else o.first
        for k in ("interior", "on_edge", "bins"):
            a, b = getattr(self, k), getattr(o, k)
            setattr(self, k, b if a is None else a if b is None else a + b)
        if self.values is None or o.values is None:
            self.values = None
        else:
            for v, c in o.values.items():
                self.values[v] = self.values.get(v, 0) + c
            if len(self.values) > MAX_TRACKED_VALUES:
                self.values = None


@dataclass
class CategoricalStats:
    """Category counts of one column (text as logged; ``str`` of other values)."""

    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def merge(self, o: CategoricalStats) -> None:
        """Add ``o``'s counts to these."""
        self.rows += o.rows
        for k, c in o.counts.items():
            self.counts[k] = self.counts.get(k, 0) + c


def class_labels(s: pd.Series) -> pd.Series:
    """Class labels as text, integers without a trailing ``.0`` (NaN-able ints arrive as floats)."""
    if pd.api.types.is_float_dtype(s):
        finite = s.dropna()
        if len(finite) and (finite == finite.round()).all():
            return s.astype("Int64").astype("str")
    return s.astype("str")


def numeric_values(s: pd.Series) -> tuple[np.ndarray, str | None, int, int]:
    """Floats of a column: ``(values, text dtype or None, given, not numbers)``."""
    if pd.api.types.is_bool_dtype(s):
        s = s.astype(float)
    text = None
    given = bad = 0
    if not pd.api.types.is_numeric_dtype(s):
        coerced = pd.to_numeric(s.astype("string").str.strip(), errors="coerce")
        given = int(s.notna().sum())
        bad = given - int(coerced.notna().sum())
        text = str(s.dtype)
        s = coerced
    return s.to_numpy(dtype=float, na_value=np.nan), text, given, bad


#: Cells of the lookup table that replaces a binary search per value (see :class:`Bins`).
LOOKUP_CELLS = 1 << 16


class Bins:
    """Reference quantile points with a lookup table: the index of each value in one pass.

    A binary search over 1,000 points per value costs ~10 dependent comparisons; instead the
    value's cell in a uniform grid over the reference range gives a lower bound on its index,
    and a few vectorised steps (at most the points in one cell, usually one) finish it. The
    result is exactly ``np.searchsorted(edges, x, side="right")``; when the points crowd into
    few cells (extreme outliers in the reference) the binary search is used instead.
    """

    def __init__(self, edges: np.ndarray) -> None:
        self.edges = edges
        self.padded = np.append(edges, np.inf)
        self.lut: np.ndarray | None = None
        self.steps = 0
        self._psi_key: bytes | None = None
        self._psi_left = self._psi_split = np.zeros(0, dtype=np.int64)
        if len(edges) > 32 and edges[-1] > edges[0]:
            lo, hi = edges[0], edges[-1]
            grid = lo + (hi - lo) * (np.arange(LOOKUP_CELLS) / LOOKUP_CELLS)
            # One below the first point >= the cell's start: a lower bound despite rounding.
            lut = np.maximum(np.searchsorted(edges, grid, side="left") - 1, 0)
            steps = int(np.max(np.diff(np.append(lut, len(edges))))) + 1
            if steps <= 8:
                self.lut, self.steps = lut, steps
                self.scale = LOOKUP_CELLS / (hi - lo)

    def psi_counts(
        self, inner: np.ndarray, x: np.ndarray, idx: np.ndarray, st: NumericStats
    ) -> np.ndarray:
        """``np.bincount(np.searchsorted(inner, x, side="right"))`` from the quantile counts.

        The values between two consecutive quantile points (``idx`` groups, already counted
        in ``st``) share one PSI bin unless a bin edge falls strictly between the points;
        only the values of such split groups (a few of a thousand) are searched again.
        """
        assert st.on_edge is not None and st.interior is not None
        k = len(self.edges)
        nb = len(inner) + 1
        key = inner.tobytes()
        if self._psi_key != key:
            left = np.concatenate([[0], np.searchsorted(inner, self.edges, side="right")])
            right = np.concatenate([np.searchsorted(inner, self.edges, side="left"), [nb - 1]])
            self._psi_key, self._psi_left, self._psi_split = key, left, left != right
        per_idx = np.empty(k + 1, dtype=np.int64)
        per_idx[0] = st.below
        per_idx[1:k] = st.on_edge[: k - 1] + st.interior
        per_idx[k] = st.on_edge[k - 1] + st.above
        split = self._psi_split
        whole = ~split
        out = np.bincount(self._psi_left[whole], weights=per_idx[whole], minlength=nb)
        out = out.astype(np.int64)
        if split.any():
            rest = x[split[idx]]
            out += np.bincount(np.searchsorted(inner, rest, side="right"), minlength=nb)
        return out

    def index(self, x: np.ndarray) -> np.ndarray:
        """``np.searchsorted(edges, x, side="right")`` for finite ``x``."""
        if self.lut is None:
            return np.searchsorted(self.edges, x, side="right")
        lo = self.edges[0]
        cell = np.clip((x - lo) * self.scale, 0, LOOKUP_CELLS - 1).astype(np.int64)
        idx = self.lut[cell]
        for _ in range(self.steps):
            idx += self.padded[idx] <= x
        idx[x < lo] = 0
        return idx


def numeric_stats(
    values: tuple[np.ndarray, str | None, int, int], ref: dict[str, Any], bins: Bins | None
) -> NumericStats:
    raw, text, given, bad = values
    st = NumericStats(rows=len(raw), given=given, not_numbers=bad, text=text)
    ok = np.isfinite(raw)
    st.infinite = int(np.isinf(raw).sum())
    finite = raw if ok.all() else raw[ok]
    st.finite = len(finite)
    if not len(finite):
        return st
    st.vmin, st.vmax = float(finite.min()), float(finite.max())
    st.first = float(finite[0])
    if bins is not None and len(bins.edges):
        edges = bins.edges
        lo, hi = edges[0], edges[-1]
        below = finite < lo
        above = finite > hi
        st.below, st.above = int(below.sum()), int(above.sum())
        if st.below:
            st.below_excess = float(np.sum(lo - finite[below]))
        if st.above:
            st.above_excess = float(np.sum(finite[above] - hi))
        # idx - 1 is the last edge <= v: v lies on it or inside the interval that follows.
        idx = bins.index(finite)
        k = len(edges)
        exact = bins.padded[np.maximum(idx - 1, 0)] == finite
        st.on_edge = np.bincount(idx[exact] - 1, minlength=k)[:k]
        inside = ~exact & (idx > 0) & (idx < k)
        st.interior = np.bincount(idx[inside] - 1, minlength=k - 1)[: k - 1]
    if "bin_edges" in ref and len(ref["bin_edges"]) > 1:
        inner = np.asarray(ref["bin_edges"], dtype=float)[1:-1]
        if bins is not None and idx is not None:
            st.bins = bins.psi_counts(inner, finite, idx, st)
        else:
            st.bins = np.bincount(
                np.searchsorted(inner, finite, side="right"), minlength=len(inner) + 1
            )
    if "values" in ref:
        uniq, counts = np.unique(finite, return_counts=True)
        if len(uniq) <= MAX_TRACKED_VALUES:
            st.values = {repr(float(v)): int(c) for v, c in zip(uniq, counts, strict=True)}
        else:
            st.values = None
    else:
        st.values = None
    return st


def _categorical_stats(s: pd.Series) -> CategoricalStats:
    counts = s.value_counts()
    # Counting first and converting the few keys is much faster than converting every value;
    # it is the same when the keys are already text (3 and 3.0 would be one key otherwise).
    if not all(isinstance(k, str) for k in counts.index):
        counts = s.astype("str").value_counts()
    return CategoricalStats(len(s), {str(k): int(v) for k, v in counts.items()})


class Columns:
    """The columns of one batch, as the summary reads them."""

    names: list[str]
    rows: int

    def series(self, col: str) -> pd.Series:
        raise NotImplementedError

    def rows_at(self, index: np.ndarray) -> pd.DataFrame:
        raise NotImplementedError

    def numbers(self, col: str) -> tuple[np.ndarray, str | None, int, int]:
        return numeric_values(self.series(col))

    def categories(self, col: str, labels: bool) -> CategoricalStats:
        s = self.series(col)
        return _categorical_stats(class_labels(s) if labels else s)


class _FrameColumns(Columns):
    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.names = [str(c) for c in frame.columns]
        self.rows = len(frame)

    def series(self, col: str) -> pd.Series:
        return self.frame[col]

    def rows_at(self, index: np.ndarray) -> pd.DataFrame:
        return self.frame.iloc[index].reset_index(drop=True)


class _ArrowColumns(Columns):
    def __init__(self, batch: Any) -> None:
        self.batch = batch
        self.names = list(batch.schema.names)
        self.rows = batch.num_rows

    def series(self, col: str) -> pd.Series:
        return self.batch.column(col).to_pandas()

    def rows_at(self, index: np.ndarray) -> pd.DataFrame:
        return self.batch.take(index).to_pandas()

    def numbers(self, col: str) -> tuple[np.ndarray, str | None, int, int]:
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = self.batch.column(col)
        t = arr.type
        # pandas reads booleans with nulls as objects (a type finding): leave those to it.
        boolean = pa.types.is_boolean(t) and not arr.null_count
        if pa.types.is_floating(t) or pa.types.is_integer(t) or boolean:
            # Nulls become NaN, as in pandas; no Python object per value.
            values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
            return np.asarray(values, dtype=float), None, 0, 0
        return super().numbers(col)

    def categories(self, col: str, labels: bool) -> CategoricalStats:
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = self.batch.column(col)
        t = arr.type
        text = pa.types.is_string(t) or pa.types.is_large_string(t)
        # Integers print the same in Arrow and pandas; floats and booleans do not.
        if not (text or (labels and pa.types.is_integer(t))):
            return super().categories(col, labels)
        if not text:
            arr = pc.cast(arr, pa.string())
        counts = pc.value_counts(arr)
        keys = counts.field("values").to_pylist()
        found = counts.field("counts").to_pylist()
        return CategoricalStats(
            self.rows,
            {k: int(c) for k, c in zip(keys, found, strict=True) if k is not None},
        )


def wasserstein_from(ref: dict[str, Any], st: NumericStats) -> float:
    """Normed Wasserstein-1 between the reference and the window, from the summary.

    W1 is the area between the two distribution functions. Below the reference minimum the
    reference CDF is 0, so the area is the mean excess of the values below it (exact); above
    the maximum likewise. Within the reference range both CDFs are linear on each interval
    between consecutive quantile points (the reference by construction of its quantile
    function, the window by spreading each interval's interior count evenly), with jumps at
    point masses, so each interval's area is exact for those lines.
    """
    edges, left, right = reference_edges(ref)
    n = st.finite
    if not n or st.interior is None or st.on_edge is None:
        return float("nan")
    area = (st.below_excess + st.above_excess) / n
    # Window CDF at each edge: just before (c_left) and at it (c_right).
    c_right = (st.below + np.cumsum(st.on_edge) + np.concatenate([[0], np.cumsum(st.interior)])) / n
    c_left = c_right - st.on_edge / n
    # On (e_j, e_{j+1}): reference runs from right[j] to left[j+1]; window from c_right[j]
    # to c_left[j+1]; the difference is linear, its absolute value integrated exactly.
    a0 = right[:-1] - c_right[:-1]
    a1 = left[1:] - c_left[1:]
    w = np.diff(edges)
    same = a0 * a1 >= 0
    s = np.abs(a0) + np.abs(a1)
    crossing = np.divide(a0 * a0 + a1 * a1, 2.0 * s, out=np.zeros_like(s), where=s > 0)
    area += float(np.sum(w * np.where(same, s / 2.0, crossing)))
    return area / max(float(ref.get("std", 0.0)), 0.001)


def batch_columns(batch: Any) -> Columns:
    """The columns of a pandas frame or an Arrow record batch / table."""
    return _FrameColumns(batch) if isinstance(batch, pd.DataFrame) else _ArrowColumns(batch)
