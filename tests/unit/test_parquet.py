"""Core Parquet I/O: fastparquet (the core install) and pyarrow (the extras) read back alike.

Both engines are installed here; ``pd.options.io.parquet.engine`` picks one, the way a user
would, and :func:`mlcycle.parquet.engine` follows it.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient

from mlcycle import contract, parquet
from mlcycle.errors import DataError
from mlcycle.tables import load_table, write_table

ENGINES = ["pyarrow", "fastparquet"]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ints": np.array([3, -1, 7, 0], dtype="int64"),
            "floats": [1.5, np.nan, -2.25, 0.0],
            "strings": ["a", None, "ç", "d"],
            "bools": [True, False, True, False],
            "when": pd.to_datetime(
                ["2026-01-01T10:00:00.123456", "2026-02-01", "2026-03-01", "2026-04-01"],
                format="ISO8601",
            ).tz_localize("Europe/Paris"),
            "plan": pd.Categorical(["basic", "pro", None, "basic"]),
            "tier": pd.Categorical([10, 20, 10, 30]),
            # fastparquet stores a categorical of booleans so that it reads back all True.
            "flag": pd.Categorical([True, False, False, True]),
            "count": pd.array([1, None, 3, 4], dtype="Int64"),
            "maybe": pd.array([True, None, False, True], dtype="boolean"),
            "label": pd.array(["x", None, "y", "x"], dtype="string"),
        }
    )


#: What every engine pair reads back: categoricals as their values, pandas' string dtype.
EXPECTED_DTYPES = {
    "ints": "int64",
    "floats": "float64",
    "strings": str(pd.Series(["a"]).dtype),
    "bools": "bool",
    "when": "datetime64[us, Europe/Paris]",
    "plan": str(pd.Series(["a"]).dtype),
    "tier": "int64",
    "flag": "bool",
    "count": "Int64",
    "maybe": "boolean",
    "label": str(pd.Series(["a"]).dtype),
}


def _round_trip(frame: pd.DataFrame, writer: str, reader: str) -> pd.DataFrame:
    buf = io.BytesIO()
    with pd.option_context("io.parquet.engine", writer):
        assert parquet.engine() == writer
        parquet.write_parquet(frame, buf)
    with pd.option_context("io.parquet.engine", reader):
        return parquet.read_parquet(buf.getvalue())


@pytest.mark.parametrize("reader", ENGINES)
@pytest.mark.parametrize("writer", ENGINES)
def test_a_file_written_by_either_engine_reads_back_the_same_under_either(
    writer: str, reader: str
) -> None:
    original = _frame()
    back = _round_trip(original, writer, reader)
    assert {c: str(t) for c, t in back.dtypes.items()} == EXPECTED_DTYPES
    # The pyarrow round trip is the reference; each pair gives exactly that frame.
    pd.testing.assert_frame_equal(back, _round_trip(original, "pyarrow", "pyarrow"))
    assert back["strings"].isna().tolist() == [False, True, False, False]
    assert back["strings"].dropna().tolist() == ["a", "ç", "d"]
    assert np.isnan(back["floats"][1]) and back["floats"][2] == -2.25
    assert back["plan"].tolist()[:2] == ["basic", "pro"] and pd.isna(back["plan"][2])
    assert back["tier"].tolist() == [10, 20, 10, 30]
    assert back["flag"].tolist() == [True, False, False, True]
    assert back["count"].isna().tolist() == [False, True, False, False]
    assert back["count"].dropna().tolist() == [1, 3, 4]
    assert back["maybe"].isna().tolist() == [False, True, False, False]
    pd.testing.assert_series_equal(back["when"], original["when"])


@pytest.mark.parametrize("writer", ENGINES)
def test_categoricals_with_missing_values_keep_their_values(writer: str) -> None:
    frame = pd.DataFrame(
        {
            "ints": pd.Categorical([10, None, 10]),
            "bools": pd.Categorical([True, None, False]),
            "loose": pd.Series([True, None, False], dtype=object),
        }
    )
    for reader in ENGINES:
        back = _round_trip(frame, writer, reader)
        assert back["ints"].dtype == "float64"
        assert back["ints"].isna().tolist() == [False, True, False]
        assert back["bools"].dtype == "boolean" and back["loose"].dtype == "boolean"
        assert back["bools"].tolist()[::2] == [True, False] and pd.isna(back["bools"][1])


def test_the_engine_follows_pandas_option_and_prefers_pyarrow_when_auto() -> None:
    with pd.option_context("io.parquet.engine", "auto"):
        assert parquet.engine() == "pyarrow"  # installed in this venv, as pandas would pick
    with pd.option_context("io.parquet.engine", "fastparquet"):
        assert parquet.engine() == "fastparquet"


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Any:
    with pd.option_context("io.parquet.engine", request.param):
        yield request.param


def test_user_tables_round_trip_through_load_and_write_table(engine: str, tmp_path: Path) -> None:
    path = write_table(_frame(), tmp_path / "t.parquet")
    back = load_table(path)
    assert {c: str(t) for c, t in back.dtypes.items()} == EXPECTED_DTYPES
    # A table some other tool wrote with pyarrow (categoricals and all) reads under either.
    _frame().to_parquet(tmp_path / "foreign.parquet", engine="pyarrow", index=False)
    foreign = load_table(tmp_path / "foreign.parquet")
    assert foreign["flag"].astype(bool).tolist() == [True, False, False, True]
    assert foreign["count"].dtype == "Int64"
    assert str(foreign["strings"].dtype) == EXPECTED_DTYPES["strings"]


@pytest.fixture
def client_and_run() -> tuple[MlflowClient, str]:
    """A client of the test's store and an empty run to hold contract files."""
    import mlflow

    with mlflow.start_run() as run:
        pass
    return MlflowClient(mlflow.get_tracking_uri()), run.info.run_id


def test_the_contract_eval_split_and_sample_read_back_as_written(
    engine: str, tmp_path: Path, client_and_run: tuple[MlflowClient, str]
) -> None:
    client, run_id = client_and_run
    frame = _frame()
    X, y = frame.drop(columns=["bools"]), frame["bools"]
    contract.write_eval_split(client, run_id, X, y, "bools", tmp_path)
    back = contract.load_eval_split(client, run_id, "the test run")
    assert {c: str(t) for c, t in back.dtypes.items()} == {
        **{c: t for c, t in EXPECTED_DTYPES.items() if c != "bools"},
        "bools": "bool",
    }
    assert back["flag"].tolist() == [True, False, False, True]
    # Written here, read by the other engine (a core install trains, a full one monitors).
    other = "fastparquet" if engine == "pyarrow" else "pyarrow"
    with pd.option_context("io.parquet.engine", other):
        pd.testing.assert_frame_equal(
            contract.load_eval_split(client, run_id, "the test run"), back
        )


def test_durations_under_fastparquet_are_refused_by_name_and_kept_under_pyarrow() -> None:
    frame = pd.DataFrame({"wait": pd.to_timedelta([1, None], unit="s"), "n": [1, 2]})
    with pytest.raises(DataError, match=r"wait hold durations.*pip install pyarrow"):
        _round_trip(frame, "fastparquet", "fastparquet")
    for reader in ENGINES:  # pyarrow's durations read back under either engine
        back = _round_trip(frame, "pyarrow", reader)
        pd.testing.assert_series_equal(back["wait"], frame["wait"])


def test_a_contract_file_declaring_too_many_cells_is_refused_from_its_footer(
    engine: str, tmp_path: Path, client_and_run: tuple[MlflowClient, str]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # A crafted evaluation split: zeros compress to a few KB whatever the row count, and
    # decoding them all took the gate 21 GB at 30M rows. Small bound here, same mechanism.
    client, run_id = client_and_run
    rows = 200_000
    bomb = tmp_path / contract.REFERENCE_DIR / contract.EVAL_FILE
    bomb.parent.mkdir()
    pq.write_table(pa.table({"x": np.zeros(rows), "y": np.zeros(rows)}), bomb, compression="zstd")
    assert bomb.stat().st_size < 20_000
    client.log_artifact(run_id, str(bomb), contract.REFERENCE_DIR)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(contract, "MAX_CELLS", 2 * rows - 1)
        with pytest.raises(
            DataError,
            match=r"reference/test.parquet of run \w+ \(the test run\) declares "
            r"200,000 rows x 2 columns, more than",
        ):
            contract.load_eval_split(client, run_id, "the test run")
        mp.setattr(contract, "MAX_CELLS", 2 * rows)
        assert len(contract.load_eval_split(client, run_id, "the test run")) == rows


def test_a_file_fastparquet_cannot_read_names_the_install_that_brings_pyarrow(
    tmp_path: Path,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Strings in the DELTA_BYTE_ARRAY encoding, as Spark's and pyarrow's v2 writers store them.
    path = tmp_path / "spark-v2.parquet"
    table = pa.table({"plan": ["basic", "pro", "basic"] * 100, "churned": [0, 1, 0] * 100})
    pq.write_table(table, path, use_dictionary=False, column_encoding={"plan": "DELTA_BYTE_ARRAY"})
    assert load_table(path)["plan"].tolist() == table["plan"].to_pylist()  # pyarrow reads it
    with pytest.raises(NotImplementedError):  # the premise: fastparquet does not
        pd.read_parquet(path, engine="fastparquet")

    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["pyarrow"] = None  # the core install: no pyarrow
        from mlcycle.cli import cli
        cli(["train", "--data", {str(path)!r}, "--target", "churned"], prog_name="mlcycle")
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert res.returncode == 1, res.stderr
    assert "spark-v2.parquet" in res.stderr and "fastparquet" in res.stderr
    assert "pip install 'mlcycle[monitoring]'" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "column",
    [
        pa.array([{"a": 1, "b": "x"}, None, {"a": 3, "b": "z"}]),  # read as a's floats
        pa.array([[[1, 2], [3]], [[4]], None]),  # read as None
        pa.array([[{"a": 1}], [{"a": 2}, {"a": 3}], None]),  # read as None
        pa.array([[("a", 1)], [("b", 2)], None], type=pa.map_(pa.string(), pa.int64())),
        pa.array(np.array([1.5, 2.0, 3.25], dtype=np.float16)),  # read as raw bytes
    ],
    ids=["struct", "list-of-lists", "list-of-structs", "map", "float16"],
)
def test_columns_fastparquet_would_misread_are_refused_with_the_pyarrow_hint(
    column: Any, tmp_path: Path
) -> None:
    path = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": column, "n": [1, 2, 3]}), path)
    with (
        pd.option_context("io.parquet.engine", "fastparquet"),
        pytest.raises(DataError, match=r"column 'x' of .*foreign\.parquet .*mlcycle\[monitoring\]"),
    ):
        parquet.read_parquet(path)
    with pd.option_context("io.parquet.engine", "pyarrow"):
        assert len(parquet.read_parquet(path)) == 3


def test_booleans_with_missing_values_read_as_booleans_not_floats_under_fastparquet(
    tmp_path: Path,
) -> None:
    path = tmp_path / "foreign.parquet"  # no pandas metadata, as Spark or pyarrow write it
    pq.write_table(pa.table({"b": [True, False, None], "l": [[1], [], None]}), path)
    with pd.option_context("io.parquet.engine", "fastparquet"):
        frame = parquet.read_parquet(path)
    assert frame["b"].dtype == "boolean"
    assert frame["b"].tolist()[:2] == [True, False] and frame["b"].isna().tolist()[2]
    assert frame["l"].tolist()[:2] == [[1], []]  # a list of plain values reads as lists
