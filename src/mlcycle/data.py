"""Load, validate and split tabular data; generate the demo scenario.

API:

- :func:`load_table` — CSV or Parquet from a path or an ``s3://`` URI.
- :func:`write_table` — a frame to a local CSV or Parquet file, by suffix.
- :func:`infer_spec` — target, task and feature columns, with validation.
- :func:`split` — deterministic train/validation/test split by seed or by a time column.
- :func:`make_scenario` — the demo's churn problem, with drifted production periods
  (:mod:`mlcycle.scenario`, re-exported).
- :func:`digest` — a stable content digest of a frame (:mod:`mlcycle.digest`, re-exported).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from mlcycle.digest import digest
from mlcycle.errors import DataError
from mlcycle.scenario import (
    SCENARIO_DRIFT,
    SCENARIO_TARGET,
    SCENARIO_TIME,
    Period,
    make_scenario,
)
from mlcycle.tables import load_table, write_table

# The scenario and table I/O were published here first; the demo, tests and users import them.
__all__ = [
    "SCENARIO_DRIFT",
    "SCENARIO_TARGET",
    "SCENARIO_TIME",
    "DataError",
    "DatasetSpec",
    "Period",
    "Splits",
    "Task",
    "digest",
    "infer_spec",
    "load_table",
    "make_scenario",
    "prepare_features",
    "split",
    "write_table",
]

logger = logging.getLogger(__name__)

Task = Literal["classification", "regression"]

_MAX_CLASSES_FOR_INT_TARGET = 20

#: A column whose non-missing values are at least this share numbers is a numeric column
#: with a few bad values, not a categorical one (docs/training.md, "Input checks").
NUMERIC_SHARE_FOR_MIXED = 0.5
#: The test split must hold at least this many rows (docs/training.md, "Input checks")...
MIN_TEST_ROWS = 5
#: ...and, for classification, at least this many rows of every class.
MIN_TEST_ROWS_PER_CLASS = 2


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class DatasetSpec:
    """What a table means for training."""

    target: str
    task: Task
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    time_column: str | None = None
    classes: tuple[str, ...] = ()
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        """Feature columns in model input order."""
        return [*self.numeric, *self.categorical]


def detect_task(y: pd.Series) -> Task:
    """Classification for labels (strings, booleans, few integer values), else regression."""
    if (
        y.dtype == bool
        or isinstance(y.dtype, pd.CategoricalDtype)
        or not pd.api.types.is_numeric_dtype(y)
    ):
        return "classification"
    if pd.api.types.is_integer_dtype(y) and y.nunique() <= _MAX_CLASSES_FOR_INT_TARGET:
        return "classification"
    return "regression"


def _looks_like_timestamps(s: pd.Series) -> bool:
    """True for text columns whose values all parse as ISO-8601 timestamps (CSV dates)."""
    if pd.api.types.is_numeric_dtype(s) or s.dtype == bool:
        return False
    sample = s.dropna().astype(str).head(200)
    if sample.empty or not sample.str.match(r"^\d{4}-\d{2}-\d{2}").all():
        return False
    try:
        pd.to_datetime(sample, format="ISO8601")
    except (ValueError, TypeError):
        return False
    return True


def infer_spec(
    df: pd.DataFrame,
    target: str,
    task: Task | None = None,
    time_column: str | None = None,
    drop: tuple[str, ...] = (),
    categorical: tuple[str, ...] = (),
) -> DatasetSpec:
    """Validate ``df`` for training and decide the task and feature columns.

    A text column whose values are mostly numbers is refused (the non-numbers are typos or
    placeholders such as ``"unknown"``) unless it is named in ``categorical``, which also
    turns a numeric column (codes, zip codes) into categories.

    Args:
        df: the table.
        target: the target column.
        task: ``classification`` or ``regression``; ``None`` detects it from the target.
        time_column: a column to split by time (not a feature).
        drop: columns to leave out.
        categorical: feature columns to treat as categories whatever their values.

    Raises:
        DataError: missing target or time column, missing target values, a target with one
            class, an entirely missing feature column, a mostly numeric column with
            non-numbers, or no feature left.
    """
    if df.empty:
        raise DataError("data has no rows")
    if target not in df.columns:
        raise DataError(
            f"target column '{target}' is not in the data; columns are: "
            + ", ".join(map(str, df.columns[:30]))
        )
    if time_column is not None and time_column not in df.columns:
        raise DataError(f"time column '{time_column}' is not in the data")
    for name in drop:
        if name not in df.columns:
            raise DataError(f"column to drop '{name}' is not in the data")
    for name in categorical:
        if name not in df.columns:
            raise DataError(f"categorical column '{name}' is not in the data")
        if name == target:
            raise DataError(f"'{name}' is the target; --categorical names feature columns")
    y = df[target]
    n_missing = int(y.isna().sum())
    if n_missing:
        raise DataError(
            f"target column '{target}' has {n_missing} missing value(s); drop or label those rows"
        )
    resolved: Task = task or detect_task(y)
    if resolved not in ("classification", "regression"):
        raise DataError(f"unknown task '{resolved}'; use classification or regression")
    classes: tuple[str, ...] = ()
    if resolved == "classification":
        uniq = pd.unique(y)
        if len(uniq) < 2:
            raise DataError(
                f"target column '{target}' has a single class ({uniq[0]!r}); "
                "classification needs at least two"
            )
        classes = tuple(str(c) for c in sorted(uniq, key=str))
    elif not pd.api.types.is_numeric_dtype(y) or y.dtype == bool:
        raise DataError(f"target column '{target}' is not numeric; regression needs numbers")
    elif not np.isfinite(y.to_numpy(dtype=float)).all():
        raise DataError(f"target column '{target}' has infinite values")

    numeric: list[str] = []
    categorical_cols: list[str] = []
    dropped: dict[str, str] = {name: "dropped by request" for name in drop}
    for col in df.columns:
        if col == target or col in dropped:
            continue
        if col == time_column:
            dropped[col] = "time column (used to split, not a feature)"
            continue
        s = df[col]
        if s.isna().all():
            raise DataError(
                f"column '{col}' is entirely missing (all NaN); drop it (--drop {col}) or fill it"
            )
        if col in categorical:
            categorical_cols.append(str(col))
        elif pd.api.types.is_datetime64_any_dtype(s) or _looks_like_timestamps(s):
            dropped[col] = "datetime column (not a feature; give --time-column to split by it)"
        elif pd.api.types.is_numeric_dtype(s) and s.dtype != bool:
            numeric.append(str(col))
        else:
            _check_not_mixed(s, str(col))
            categorical_cols.append(str(col))
    if not numeric and not categorical_cols:
        raise DataError("no feature columns left besides the target")
    for col, why in dropped.items():
        logger.info("column %s not used: %s", col, why)
    return DatasetSpec(
        target=target,
        task=resolved,
        numeric=tuple(numeric),
        categorical=tuple(categorical_cols),
        time_column=time_column,
        classes=classes,
        dropped=dropped,
    )


def _numeric_share_of_distinct(present: pd.Series) -> float | None:
    """The share of ``present`` (no missing values) that parses as numbers, from its distinct
    values; ``None`` when the dtype cannot say which values are the same.

    A text column of categories has a handful of distinct values among 100k+ rows; parsing
    each row failed number by number (half a second on 200k rows of three such columns).
    Only text and categorical dtypes take this path: an object column may hold ``1``,
    ``1.0`` and ``True``, which hash as one value but print differently.
    """
    if not isinstance(present.dtype, pd.StringDtype | pd.CategoricalDtype):
        return None
    counts = present.value_counts(sort=False)
    text = pd.Series(counts.index.astype(str), dtype=object).str.strip()
    parsed = pd.to_numeric(text, errors="coerce").notna().to_numpy()
    return float(counts.to_numpy()[parsed].sum() / len(present))


def _check_not_mixed(s: pd.Series, col: str) -> None:
    """Refuse a text column that is mostly numbers: its few non-numbers are data errors."""
    if s.dtype == bool:
        return
    present = s.dropna()
    if present.empty:
        return
    share = _numeric_share_of_distinct(present)
    if share is not None and share < NUMERIC_SHARE_FOR_MIXED:
        return
    as_numbers = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    numeric_share = float(as_numbers.notna().mean())
    if numeric_share < NUMERIC_SHARE_FOR_MIXED:
        return
    bad = present[as_numbers.isna()]
    examples = ", ".join(repr(str(v)) for v in pd.unique(bad.astype(str))[:3])
    raise DataError(
        f"column '{col}' is numeric except {len(bad)} value(s) such as {examples}; "
        f"fix or blank them (blank = missing), or pass --categorical {col} to treat the "
        "column as categories"
    )


def prepare_features(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The feature frame in model input order: numbers as they are, categories as strings.

    Missing values stay missing (``NaN`` for numbers, ``None`` for categories).
    """
    missing = [c for c in spec.features if c not in df.columns]
    if missing:
        raise DataError("data lacks feature column(s): " + ", ".join(missing))
    X = df[spec.features].copy()
    for col in spec.categorical:
        if isinstance(X[col].dtype, pd.StringDtype):
            # Already text: the same str objects, without a Python loop over every row.
            X[col] = X[col].astype(object).where(X[col].notna(), None)
            continue
        values = X[col].to_numpy(dtype=object)
        missing = pd.isna(values)
        X[col] = pd.Series(
            [None if m else str(v) for v, m in zip(values, missing, strict=True)],
            index=X.index,
            dtype=object,
        )
    # Numbers keep their dtype: MLflow's schema enforcement refuses int64 input for a double
    # column, so a signature of doubles would reject the integers JSON clients send.
    return X


# --------------------------------------------------------------------------- split


@dataclass(frozen=True)
class Splits:
    """Train, validation and test frames (features and target together)."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def split(
    df: pd.DataFrame,
    spec: DatasetSpec,
    seed: int = 42,
    val_size: float = 0.15,
    test_size: float = 0.15,
) -> Splits:
    """Split deterministically: by ``spec.time_column`` order when set, else shuffled by seed.

    Classification splits are stratified when every class has enough rows. The test split
    must hold at least :data:`MIN_TEST_ROWS` rows and, for classification,
    :data:`MIN_TEST_ROWS_PER_CLASS` rows of every class, so that its metrics mean something.

    Raises:
        DataError: too few rows (overall or of a class) for a meaningful test split, or bad
            fractions.
    """
    if not (0 < val_size < 1 and 0 < test_size < 1 and val_size + test_size < 1):
        raise DataError("validation and test fractions must be in (0, 1) and sum below 1")
    n = len(df)
    n_test = max(1, round(n * test_size))
    n_val = max(1, round(n * val_size))
    if n - n_test - n_val < 2 or n_test < MIN_TEST_ROWS:
        need = next(
            m
            for m in range(n + 1, n + 10_000)
            if round(m * test_size) >= MIN_TEST_ROWS
            and m - round(m * test_size) - max(1, round(m * val_size)) >= 2
        )
        raise DataError(
            f"only {n} rows: too few rows for a meaningful split; the test split "
            f"({test_size:.0%}) needs at least {MIN_TEST_ROWS} rows, so at least {need} rows "
            "are needed"
        )
    if spec.time_column:
        order = np.argsort(pd.to_datetime(df[spec.time_column]).to_numpy(), kind="stable")
        ordered = df.iloc[order]
        splits = Splits(
            train=ordered.iloc[: n - n_val - n_test],
            val=ordered.iloc[n - n_val - n_test : n - n_test],
            test=ordered.iloc[n - n_test :],
        )
        _check_test_classes(splits.test, df, spec, test_size)
        return splits
    from sklearn.model_selection import train_test_split

    stratify = None
    if spec.task == "classification":
        counts = df[spec.target].value_counts()
        if counts.min() >= 3:
            stratify = df[spec.target]
    rest, test = train_test_split(df, test_size=n_test, random_state=seed, stratify=stratify)
    strat_rest = rest[spec.target] if stratify is not None else None
    train, val = train_test_split(rest, test_size=n_val, random_state=seed, stratify=strat_rest)
    _check_test_classes(test, df, spec, test_size)
    return Splits(train=train, val=val, test=test)


def _check_test_classes(
    test: pd.DataFrame, df: pd.DataFrame, spec: DatasetSpec, test_size: float
) -> None:
    if spec.task != "classification":
        return
    in_test = test[spec.target].value_counts()
    for label, total in df[spec.target].value_counts().items():
        if int(in_test.get(label, 0)) < MIN_TEST_ROWS_PER_CLASS:
            need = math.ceil(MIN_TEST_ROWS_PER_CLASS / test_size)
            raise DataError(
                f"class {label!r} of '{spec.target}' has {total} row(s); the test split needs "
                f"at least {MIN_TEST_ROWS_PER_CLASS} of every class, so each class needs about "
                f"{need} rows"
            )
