"""Loading, validation, splitting and the demo scenario."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle.data import (
    SCENARIO_DRIFT,
    DataError,
    digest,
    infer_spec,
    load_table,
    make_scenario,
    prepare_features,
    split,
    write_table,
)


def test_csv_and_parquet_load_to_the_same_frame(tmp_path: Path) -> None:
    df = make_scenario(200, seed=3)
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet", index=False)
    a = load_table(tmp_path / "d.csv")
    b = load_table(tmp_path / "d.parquet")
    assert list(a.columns) == list(b.columns) == list(df.columns)
    assert len(a) == len(b) == 200
    np.testing.assert_allclose(a["data_usage_gb"], b["data_usage_gb"])


def test_parquet_loads_from_s3(s3_bucket: str) -> None:
    import io

    import boto3

    df = make_scenario(100)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="data/ref.parquet", Body=buf.getvalue())
    loaded = load_table(f"s3://{s3_bucket}/data/ref.parquet")
    assert len(loaded) == 100 and "churned" in loaded.columns


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"a,b\n", "has no rows"),
        (b"PAR1garbage", "cannot read"),
    ],
)
def test_unusable_files_are_refused_with_the_reason(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "x.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_table(path)


def test_missing_s3_object_names_the_uri(s3_bucket: str) -> None:
    with pytest.raises(DataError, match=f"s3://{s3_bucket}/nope.csv"):
        load_table(f"s3://{s3_bucket}/nope.csv")


def test_task_and_columns_are_detected() -> None:
    df = make_scenario(500)
    spec = infer_spec(df, "churned")
    assert spec.task == "classification"
    assert spec.classes == ("0", "1")
    assert set(spec.numeric) == {
        "age",
        "tenure_months",
        "monthly_charges",
        "data_usage_gb",
        "support_calls",
    }
    assert set(spec.categorical) == {"contract", "region", "payment_method"}
    assert "event_time" in spec.dropped
    assert (
        infer_spec(df, "monthly_charges".replace("monthly_charges", "data_usage_gb")).task
        == "regression"
    )


def test_timestamps_read_from_csv_are_not_features(tmp_path: Path) -> None:
    make_scenario(100).to_csv(tmp_path / "d.csv", index=False)
    spec = infer_spec(load_table(tmp_path / "d.csv"), "churned")
    assert "event_time" not in spec.features
    assert "event_time" in spec.dropped


@pytest.mark.parametrize(
    ("frame", "target", "message"),
    [
        (pd.DataFrame({"a": [1, 2, 3]}), "y", "target column 'y' is not in the data"),
        (pd.DataFrame({"a": [1, 2, 3], "y": ["x", "x", "x"]}), "y", "single class"),
        (
            pd.DataFrame({"a": [np.nan] * 4, "b": [1, 2, 3, 4], "y": [0, 1, 0, 1]}),
            "y",
            "column 'a' is entirely missing",
        ),
        (pd.DataFrame({"a": [1, 2, 3], "y": [0, None, 1]}), "y", "missing value"),
        (pd.DataFrame({"y": [0, 1, 0]}), "y", "no feature columns"),
        (pd.DataFrame(columns=["a", "y"]), "y", "no rows"),
    ],
)
def test_bad_data_fails_fast_with_a_message_naming_the_problem(
    frame: pd.DataFrame, target: str, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        infer_spec(frame, target)


def test_regression_on_text_target_is_refused() -> None:
    with pytest.raises(DataError, match="not numeric"):
        infer_spec(pd.DataFrame({"a": [1, 2], "y": ["p", "q"]}), "y", task="regression")


def test_split_is_deterministic_by_seed_and_stratified() -> None:
    df = make_scenario(2000)
    spec = infer_spec(df, "churned")
    a, b, c = split(df, spec, seed=1), split(df, spec, seed=1), split(df, spec, seed=2)
    assert a.test.index.equals(b.test.index)
    assert not a.test.index.equals(c.test.index)
    assert len(a.train) + len(a.val) + len(a.test) == 2000
    assert set(a.train.index).isdisjoint(a.test.index)
    assert abs(a.test["churned"].mean() - df["churned"].mean()) < 0.02


def test_time_split_puts_the_latest_rows_in_test() -> None:
    df = make_scenario(1000).sample(frac=1, random_state=0)
    spec = infer_spec(df, "churned", time_column="event_time")
    s = split(df, spec)
    assert s.train["event_time"].max() <= s.val["event_time"].min()
    assert s.val["event_time"].max() <= s.test["event_time"].min()


def test_too_few_rows_to_split_is_an_error() -> None:
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    with pytest.raises(DataError, match="too few"):
        split(df, infer_spec(df, "y"))


def test_scenario_is_deterministic_and_drifts_only_the_documented_columns() -> None:
    ref = make_scenario(20_000, "reference", seed=5)
    assert digest(ref) == digest(make_scenario(20_000, "reference", seed=5))
    cov = make_scenario(20_000, "covariate", seed=5)
    assert cov["monthly_charges"].mean() - ref["monthly_charges"].mean() > 20
    assert cov["data_usage_gb"].median() > 1.6 * ref["data_usage_gb"].median()
    assert cov["region"].value_counts(normalize=True)["east"] > 0.4
    for col in ("age", "tenure_months", "support_calls"):
        assert abs(cov[col].mean() - ref[col].mean()) < 0.05 * ref[col].std() + 0.05, col
    assert set(SCENARIO_DRIFT["covariate"]) == {"monthly_charges", "data_usage_gb", "region"}


def test_concept_drift_changes_the_label_rule_not_the_features() -> None:
    ref = make_scenario(20_000, "reference", seed=5)
    con = make_scenario(20_000, "concept", seed=5)
    assert abs(con["monthly_charges"].mean() - ref["monthly_charges"].mean()) < 1
    by_calls_ref = ref.groupby(ref["support_calls"] >= 3)["churned"].mean()
    by_calls_con = con.groupby(con["support_calls"] >= 3)["churned"].mean()
    assert (by_calls_con[True] - by_calls_con[False]) > (
        by_calls_ref[True] - by_calls_ref[False]
    ) + 0.2


def test_prepared_categoricals_are_strings_with_missing_kept() -> None:
    df = pd.DataFrame(
        {"c": ["x", None, "z"], "b": [True, False, True], "n": [1.0, 2.0, 3.0], "y": [0, 1, 0]}
    )
    spec = infer_spec(df, "y")
    assert spec.categorical == ("c", "b")
    X = prepare_features(df, spec)
    assert list(X.columns) == spec.features
    assert X["c"].tolist() == ["x", None, "z"]
    assert X["b"].tolist() == ["True", "False", "True"]


def test_write_table_writes_parquet_or_csv_by_suffix_and_makes_the_directory(
    tmp_path: Path,
) -> None:
    df = make_scenario(50, seed=4)
    pq = write_table(df, tmp_path / "new" / "d.PQ")
    csv = write_table(df, tmp_path / "new" / "d.csv")
    assert pq.read_bytes()[:4] == b"PAR1"
    assert csv.read_text().startswith(",".join(df.columns))
    assert len(load_table(pq)) == len(load_table(csv)) == 50


def _pandas_default_digest(df: pd.DataFrame) -> str:
    """The digest as first published: pandas' row hashes with its default settings."""
    import hashlib

    h = hashlib.sha256()
    h.update(",".join(f"{c}:{t}" for c, t in df.dtypes.astype(str).items()).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def test_the_digest_is_the_published_one_with_and_without_missing_text() -> None:
    df = make_scenario(500, seed=3)
    with_missing = df.copy()
    with_missing.loc[3, "contract"] = None
    as_objects = df.astype({"contract": object, "region": "category", "event_time": str})
    for frame in (df, with_missing, as_objects):
        assert digest(frame) == _pandas_default_digest(frame)
    assert digest(with_missing) != digest(df)


@pytest.mark.parametrize(
    "column",
    [
        pd.Series([f"id-{i}" for i in range(3000)], dtype="str"),  # unique text
        pd.Series([f"id-{i}" if i % 7 else None for i in range(3000)], dtype="str"),
        pd.Series([None] * 3000, dtype="str"),
        pd.Series([1, "a", None, 2.5, b"x"] * 600, dtype=object),  # mixed objects
        pd.Series(["a", "b", None] * 1000, dtype="category"),
        pd.Series([1, None, 3] * 1000, dtype="Int64"),
        pd.Series([True, False, None] * 1000, dtype="boolean"),
        pd.Series(pd.date_range("2026-01-01", periods=3000, freq="h")),
        pd.Series(["é", "日本", ""] * 1000, dtype=object),
    ],
    ids=[
        "unique", "unique-missing", "all-missing", "mixed", "category", "Int64", "boolean",
        "datetime", "non-ascii",
    ],
)  # fmt: skip
def test_the_digest_equals_pandas_row_hashes_for_every_kind_of_column(column: pd.Series) -> None:
    frame = pd.DataFrame({"x": column, "n": np.arange(len(column))})
    assert digest(frame) == _pandas_default_digest(frame)
    assert digest(frame.iloc[:0]) == _pandas_default_digest(frame.iloc[:0])


def test_the_digest_of_duplicate_column_names_is_pandas() -> None:
    twice = pd.DataFrame([["a", 1], ["b", 2]], columns=["c", "c"])
    assert digest(twice) == _pandas_default_digest(twice)


def _row_by_row_numeric_share(s: pd.Series) -> float:
    present = s.dropna()
    return float(pd.to_numeric(present.astype(str).str.strip(), errors="coerce").notna().mean())


@pytest.mark.parametrize(
    "values, dtype",
    [
        ([" 12", "7 ", "x", None, "3.5e2", "nan?"] * 500, "str"),
        (["1", "2", "three"] * 400, "category"),
        (["a", "b", "1"] * 400, "str"),
        (["", " ", "-0", "+4"] * 300, "str"),
    ],
    ids=["padded-numbers", "category", "mostly-text", "blank-and-signed"],
)
def test_the_numeric_share_from_distinct_values_equals_the_row_by_row_share(
    values: list, dtype: str
) -> None:
    from mlcycle.data import _numeric_share_of_distinct

    s = pd.Series(values, dtype=dtype)
    assert _numeric_share_of_distinct(s.dropna()) == pytest.approx(_row_by_row_numeric_share(s))


def test_an_object_column_is_not_judged_by_its_distinct_values() -> None:
    # 1, 1.0 and True hash as one value but print differently: object columns go row by row.
    from mlcycle.data import _numeric_share_of_distinct

    assert _numeric_share_of_distinct(pd.Series([1, True, 1.0], dtype=object)) is None


def test_a_text_column_mostly_of_numbers_is_refused_with_its_count_of_bad_values() -> None:
    df = pd.DataFrame({"age": pd.Series(["41", " 38", "unknown", "52"] * 50, dtype="str")})
    df["y"] = [0, 1] * 100
    with pytest.raises(DataError, match=r"column 'age' is numeric except 50 value\(s\)"):
        infer_spec(df, "y")


def test_text_categoricals_prepare_as_the_same_python_strings_as_other_dtypes() -> None:
    values = ["x", None, "z", "é"] * 10
    frames = [
        pd.DataFrame({"c": pd.Series(values, dtype=dt), "y": [0, 1] * 20})
        for dt in ("str", object, "category")
    ]
    prepared = [prepare_features(f, infer_spec(f, "y"))["c"] for f in frames]
    for X in prepared:
        assert X.dtype == object and X.tolist() == values
        assert X.map(type).tolist() == [str, type(None), str, str] * 10
