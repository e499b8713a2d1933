"""Sanitise: data-quality findings of a window, and values made safe to compare and show.

API: :func:`findings_of`, :func:`numeric_findings`, :func:`clean_numeric`,
:func:`class_labels`, :func:`display_text`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlcycle.inference_log import BOOKKEEPING_COLUMNS, is_output_column
from mlcycle.monitoring.results import DriftConfig, Finding

# class_labels lives with the summary, which counts predictions as labels; shown here too.
from mlcycle.monitoring.summary import (
    CategoricalStats,
    NumericStats,
    WindowSummary,
    class_labels,
    numeric_values,
)

__all__ = [
    "class_labels",
    "clean_numeric",
    "display_text",
    "findings_of",
    "numeric_findings",
]


def findings_of(summary: WindowSummary, config: DriftConfig) -> tuple[list[Finding], list[str]]:
    """Data-quality findings of a summarised window, and the columns usable for drift.

    Missing columns, extra columns, numbers as text, infinities, all-missing and constant
    columns, a rise of missing values, values outside the reference range and new categories
    become :class:`Finding` values; unusable columns are left out, the rest are analysed.
    """
    profile = summary.profile
    findings: list[Finding] = []
    cols: dict[str, Any] = profile["columns"]
    known = set(cols) | set(BOOKKEEPING_COLUMNS) | {profile.get("target", "")}
    # What the server adds after scoring (prediction, proba_<class>) is the log's, not extra.
    extra = [str(c) for c in summary.columns if c not in known and not is_output_column(c)]
    if extra:
        findings.append(Finding(",".join(extra), "extra_columns", "not in the reference; ignored"))
    usable: list[str] = []
    n = summary.rows
    for col, ref in cols.items():
        if col not in summary.columns:
            findings.append(Finding(col, "missing_column", "absent from the current window"))
            continue
        if ref["type"] == "numeric":
            st = summary.numeric.get(col) or NumericStats()
            findings += numeric_findings(col, st)
            missing = 1.0 - st.finite / n if n else 0.0
            if not st.finite:
                findings.append(Finding(col, "all_missing", "no usable value in the window"))
                continue
            if "min" in ref:
                lo, hi = ref["min"], ref["max"]
                outside = (st.below + st.above) / st.finite
                if outside > config.out_of_range_tolerance:
                    findings.append(
                        Finding(
                            col,
                            "out_of_range",
                            f"{outside:.1%} of values outside the reference range [{lo:g}, {hi:g}]",
                        )
                    )
            if st.vmin == st.vmax and ref.get("min") != ref.get("max"):
                findings.append(Finding(col, "constant", f"every value is {st.first:g}"))
        else:
            cs = summary.categorical.get(col) or CategoricalStats()
            present = sum(cs.counts.values())
            missing = 1.0 - present / n if n else 0.0
            if not present:
                findings.append(Finding(col, "all_missing", "no usable value in the window"))
                continue
            if ref.get("n_categories", 0) <= len(ref.get("categories", {})):
                new = {k: c for k, c in cs.counts.items() if k not in ref["categories"]}
                if new:
                    examples = ", ".join(list(new)[:5])
                    findings.append(
                        Finding(
                            col,
                            "new_categories",
                            f"{sum(new.values()) / present:.1%} of values in unseen categories "
                            f"({examples})",
                        )
                    )
            if len(cs.counts) == 1 and ref.get("n_categories", 2) > 1:
                only = next(iter(cs.counts))
                findings.append(Finding(col, "constant", f"every value is {only!r}"))
        if missing > ref.get("missing_share", 0.0) + config.missing_tolerance:
            findings.append(
                Finding(
                    col,
                    "missing_share",
                    f"{missing:.1%} missing (reference {ref.get('missing_share', 0.0):.1%})",
                )
            )
        usable.append(col)
    return findings, usable


def numeric_findings(col: str, st: NumericStats) -> list[Finding]:
    """Numbers that arrived as text, and infinities, in one numeric column."""
    out = []
    if st.text is not None:
        detail = f"numbers arrived as {st.text} text"
        if st.not_numbers:
            detail += (
                f"; {st.not_numbers} value(s) of {st.given} are not numbers and count as missing"
            )
        out.append(Finding(col, "type_mismatch", detail))
    if st.infinite:
        out.append(
            Finding(col, "infinite_values", f"{st.infinite} infinite value(s) treated as missing")
        )
    return out


def clean_numeric(s: pd.Series) -> np.ndarray:
    """Floats of a column, infinities as missing."""
    values = numeric_values(s)[0]
    return np.where(np.isinf(values), np.nan, values)


def display_text(values: pd.Series) -> pd.Series:
    """Text from traffic as shown in the report: markup characters replaced by look-alikes.

    The report's data block is escaped anyway (:func:`script_json`); this also keeps the
    charting code in the page from reading a logged value as markup. Both sides get the same
    mapping, so categories stay comparable.
    """
    return values.astype("str").str.translate(_DISPLAY_MAP)


_DISPLAY_MAP = str.maketrans({"<": "\u2039", ">": "\u203a", "&": "\uff06", '"': "\u201d"})
