"""Issue 10 item 10: training refuses a bad table instead of fitting what it silently became.

A numeric column with a few strings, a duplicated header and a table too small for a test
split each stop with an error naming the column or the minimum; ``--categorical`` is the
explicit way to keep a column as categories.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle.data import DataError, infer_spec, load_table, split


def _mixed_frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    age = [str(int(a)) for a in rng.integers(18, 80, n)]
    age[3] = "unknown"
    age[7] = "unknown"
    return pd.DataFrame({"age": age, "y": [i % 2 for i in range(n)]})


def test_a_numeric_column_with_a_few_strings_is_an_error_naming_it() -> None:
    with pytest.raises(DataError, match=r"column 'age' is numeric except 2 value\(s\).*'unknown'"):
        infer_spec(_mixed_frame(), "y")


def test_categorical_keeps_a_mixed_or_numeric_column_as_categories() -> None:
    df = _mixed_frame()
    df["zip"] = range(len(df))
    spec = infer_spec(df, "y", categorical=("age", "zip"))
    assert spec.categorical == ("age", "zip")
    assert spec.numeric == ()
    with pytest.raises(DataError, match="categorical column 'nope' is not in the data"):
        infer_spec(df, "y", categorical=("nope",))


def test_a_text_column_of_words_stays_categorical() -> None:
    df = pd.DataFrame({"plan": ["basic", "pro", "100", None] * 10, "y": [0, 1] * 20})
    assert infer_spec(df, "y").categorical == ("plan",)


@pytest.mark.parametrize("suffix", ["csv", "csv.gz"])
def test_a_duplicated_header_is_an_error_naming_the_column(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"d.{suffix}"
    pd.DataFrame([[1, 2, 0]] * 3, columns=["age", "x", "y"]).rename(columns={"x": "age"}).to_csv(
        path, index=False
    )
    with pytest.raises(DataError, match=r"repeats column name\(s\) 'age'"):
        load_table(path)


def test_a_header_that_only_looks_renamed_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("age,age.1,y\n1,2,0\n")
    assert list(load_table(path).columns) == ["age", "age.1", "y"]


def test_too_few_rows_for_a_meaningful_test_split_name_the_minimum() -> None:
    tiny = pd.DataFrame({"x": range(5), "y": [0, 1, 0, 1, 0]})
    with pytest.raises(DataError, match=r"test split .* needs at least 5 rows"):
        split(tiny, infer_spec(tiny, "y"))


def test_a_rare_class_that_cannot_reach_the_test_split_is_named() -> None:
    df = pd.DataFrame({"x": range(100), "y": ["a"] * 95 + ["b"] * 5})
    with pytest.raises(DataError, match=r"class 'b' of 'y' has 5 row.*at least 2 of every class"):
        split(df, infer_spec(df, "y"))
    ok = pd.DataFrame({"x": range(100), "y": ["a"] * 86 + ["b"] * 14})
    assert (split(ok, infer_spec(ok, "y")).test["y"] == "b").sum() >= 2
