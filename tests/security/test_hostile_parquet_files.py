"""Parquet files an attacker wrote: what they declare is checked before any page is decoded.

A model version's contract files (``reference/test.parquet``, ``reference/sample.parquet``)
come from whoever may log to its run, the inference log's files from whoever may write to
the log. A few KB of zstd can hold gigabytes of strings: a 78 KB file of six 400 MB strings
cost the contract read 3.4 GB and the log's readers 6.3 GB before the check.

Memory is checked by where the refusal comes from, never by time: the crafted files have
their pages destroyed, so a reader that decoded them would fail on the garbage; only a check
of the footer's totals can answer with the limit's message. A forged footer that declares
little over big pages is refused from the page headers.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient
from test_parquet_forged_footer import forged

from mlcycle import contract, parquet
from mlcycle.errors import DataError
from mlcycle.inference_log import reader
from mlcycle.inference_log.reader import LogFile, read_inference_log
from mlcycle.monitoring.inputs import stream_inference_log

NAME = "churn"
HOUR = "2026-03-01T00"
#: The limit the tests set: honest test files are far below, the crafted ones far above.
LIMIT = 4 << 20


def _destroy_pages(path: Path) -> None:
    """Overwrite everything between the leading magic and the footer with garbage."""
    body = path.read_bytes()
    end = len(body) - 8 - int.from_bytes(body[-8:-4], "little")
    path.write_bytes(body[:4] + b"\xff" * (end - 4) + body[end:])


def _strings(rows: int, size: int) -> pa.Array:
    return pa.array(["a" * size] * rows)


def _write(table: pa.Table, path: Path, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", use_dictionary=False, **kw)  # type: ignore[arg-type]
    return path


# --------------------------------------------------------------------------- contract files


@pytest.fixture(params=["pyarrow", "fastparquet"])
def engine(request: pytest.FixtureRequest):
    with pd.option_context("io.parquet.engine", request.param):
        yield request.param


@pytest.fixture
def client_and_run(tmp_path: Path) -> tuple[MlflowClient, str]:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with mlflow.start_run() as run:
        pass
    return MlflowClient(mlflow.get_tracking_uri()), run.info.run_id


def test_a_contract_file_of_huge_compressed_strings_is_refused_from_its_footer(
    engine: str,
    tmp_path: Path,
    client_and_run: tuple[MlflowClient, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, run_id = client_and_run
    monkeypatch.setattr(contract, "MAX_DECLARED_BYTES", LIMIT)
    # Three rows, under any cell bound, each a 2 MB string: 6 MB declared in a few KB.
    bomb = tmp_path / contract.REFERENCE_DIR / contract.EVAL_FILE
    _write(pa.table({"x": [1.0, 2.0, 3.0], "y": _strings(3, 2 << 20)}), bomb)
    assert bomb.stat().st_size < 5_000
    _destroy_pages(bomb)
    client.log_artifact(run_id, str(bomb), contract.REFERENCE_DIR)
    with pytest.raises(
        DataError,
        match=rf"reference/test.parquet of run {run_id} \(the test run\) declares "
        rf"6,29\d,\d+ bytes of uncompressed data, more than the {LIMIT:,}",
    ):
        contract.load_eval_split(client, run_id, "the test run")


def test_a_contract_file_whose_footer_understates_its_pages_is_refused_from_the_headers(
    engine: str, tmp_path: Path
) -> None:
    # 400 KB of doubles in pages whose footer declares 10 rows and 1 KB.
    path = tmp_path / "sample.parquet"
    path.write_bytes(forged(50_000, 10, 1000, dictionary=False))
    assert pq.ParquetFile(path).metadata.row_group(0).total_byte_size == 1000
    with pytest.raises(DataError, match=r"sample.parquet declares 4\d\d,\d+ bytes of uncompressed"):
        parquet.read_parquet(path, max_bytes=100_000)


def test_a_contract_file_whose_pages_hold_more_values_than_its_footer_says_is_refused(
    engine: str, tmp_path: Path
) -> None:
    # 2M dictionary-encoded zeros (a few KB of pages) declared as 10 rows: the cell bound
    # on the footer alone lets it through.
    path = tmp_path / "test.parquet"
    path.write_bytes(forged(2_000_000, 10, 1000))
    with pytest.raises(DataError, match=r"pages declaring 2,000,000 values, more than the"):
        parquet.read_parquet(path, max_cells=100_000)


def _dictionary_bomb(path: Path, rows: int, size: int) -> Path:
    """One ``size``-byte value every row refers to, stored once in a dictionary page (and no
    Arrow schema saying so: a reader decodes it as plain strings, one copy per row)."""
    value = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["a" * size]))
    pq.write_table(
        pa.table({"s": value, "x": np.arange(rows, dtype="float64")}),
        path,
        compression="zstd",
        store_schema=False,
    )
    return path


def test_a_contract_file_of_one_long_value_on_every_row_is_refused_before_per_row_copies(
    engine: str, tmp_path: Path
) -> None:
    _refuse_dictionary_bomb(tmp_path)


def test_under_the_core_install_a_long_value_on_every_row_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fastparquet alone holds a dictionary value once, as one Python object; it is counted
    # from the frame before anything copies it per row.
    monkeypatch.setattr(parquet, "available", lambda name: name != "pyarrow")
    with pd.option_context("io.parquet.engine", "fastparquet"):
        _refuse_dictionary_bomb(tmp_path)


def _refuse_dictionary_bomb(tmp_path: Path) -> None:
    # 10 MB across its rows, 1 MB declared: the footer and pages are honest.
    path = _dictionary_bomb(tmp_path / "sample.parquet", 10, 1 << 20)
    assert path.stat().st_size < 2_000
    with pytest.raises(
        DataError,
        match=r"sample.parquet holds 10,485,760 bytes of string values across its rows \(a "
        rf"dictionary value counted once per row that uses it\), more than the {LIMIT:,}",
    ):
        parquet.read_parquet(path, max_bytes=LIMIT)
    assert len(parquet.read_parquet(path, max_bytes=11 << 20)) == 10


def test_an_honest_contract_file_reads_under_the_real_limits(engine: str, tmp_path: Path) -> None:
    rows = 100_000
    frame = pd.DataFrame(
        {"x": np.arange(rows, dtype="float64"), "s": [f"customer-{i}" for i in range(rows)]}
    )
    path = tmp_path / "test.parquet"
    parquet.write_parquet(frame, path, row_group_rows=30_000)
    back = parquet.read_parquet(
        path, max_cells=contract.MAX_CELLS, max_bytes=parquet.MAX_DECLARED_BYTES
    )
    pd.testing.assert_frame_equal(back, frame)


# --------------------------------------------------------------------------- inference log


def _log_table(rows: int, first: int = 0, size: int = 8) -> pa.Table:
    ts = pd.Timestamp(HOUR + ":00:00", tz="UTC") + pd.to_timedelta(np.arange(rows), unit="s")
    return pa.table(
        {
            "request_id": [uuid.uuid4().hex for _ in range(rows)],
            "record_index": pa.array(np.zeros(rows, dtype="int32")),
            "timestamp": pa.array(ts.astype("datetime64[us, UTC]")),
            "role": ["champion"] * rows,
            "note": _strings(rows, size),
            "x": np.arange(first, first + rows, dtype="float64"),
            "prediction": np.zeros(rows),
        }
    )


def _hour(root: Path) -> Path:
    return root / f"model={NAME}" / "version=1" / f"hour={HOUR}"


def _log_with_a_bomb(root: Path) -> Path:
    """One honest file and one whose three rows each hold a 2 MB string (pages destroyed)."""
    _write(_log_table(500), _hour(root) / "part-1-good.parquet")
    bomb = _write(_log_table(3, size=2 << 20), _hour(root) / "part-2-bomb.parquet")
    assert bomb.stat().st_size < 5_000
    _destroy_pages(bomb)
    return bomb


def _summary():
    from mlcycle.data import DatasetSpec
    from mlcycle.monitoring.drift import DriftConfig, new_summary
    from mlcycle.monitoring.reference import reference_from_frame

    ref = pd.DataFrame({"x": np.arange(500.0), "y": np.arange(500) % 2})
    ref["prediction"] = ref["y"]
    spec = DatasetSpec(target="y", task="classification", numeric=("x",), categorical=())
    return new_summary(reference_from_frame(ref, spec=spec), DriftConfig())


def test_the_pandas_engine_skips_a_log_file_declaring_too_much_and_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "MAX_DECLARED_BYTES", LIMIT)
    bomb = _log_with_a_bomb(tmp_path)
    problems: list[str] = []
    frame = read_inference_log(str(tmp_path), NAME, problems=problems)
    assert len(frame) == 500
    assert len(problems) == 1 and problems[0].startswith(f"{bomb}: the file declares 6,29")
    assert f"more than the {LIMIT:,}" in problems[0]
    with pytest.raises(DataError, match=r"part-2-bomb.parquet: the file declares"):
        read_inference_log(str(tmp_path), NAME)


def test_the_arrow_engine_skips_a_log_file_whose_row_group_declares_too_much(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "MAX_DECLARED_BYTES", LIMIT)
    bomb = _log_with_a_bomb(tmp_path)
    problems: list[str] = []
    summary = stream_inference_log(str(tmp_path), NAME, _summary(), problems=problems)
    assert summary.rows == 500
    assert len(problems) == 1 and "declares 6,29" in problems[0]
    assert "in row group 0" in problems[0] and problems[0].startswith(str(bomb))


def test_the_arrow_engine_holds_each_row_group_to_the_limit_not_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Four row groups of 3 MB each: 12 MB in all, over the limit only for a whole-file read.
    monkeypatch.setattr(reader, "MAX_DECLARED_BYTES", LIMIT)
    path = _hour(tmp_path) / "part-1-large.parquet"
    path.parent.mkdir(parents=True)
    schema = _log_table(1).schema
    with pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=False) as writer:
        for g in range(4):
            writer.write_table(_log_table(3, first=3 * g, size=1 << 20))
    file = LogFile(str(path), pa.fs.LocalFileSystem(), role=None)
    assert sum(b.num_rows for b in file.batches()) == 12
    with pytest.raises(DataError, match=r"declares 12,\d+,\d+ bytes .* more than the"):
        file.table()


def test_log_readers_count_a_long_value_on_every_row_before_copying_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A request id of 1 MB on each of 10 rows, stored once: 1 MB declared, 10 MB of rows.
    monkeypatch.setattr(reader, "MAX_DECLARED_BYTES", LIMIT)
    _write(_log_table(500), _hour(tmp_path) / "part-1-good.parquet")
    table = _log_table(10)
    long_id = pa.DictionaryArray.from_arrays(
        pa.array([0] * 10, pa.int32()), pa.array(["a" * (1 << 20)])
    )
    bomb = _hour(tmp_path) / "part-2-bomb.parquet"
    pq.write_table(
        table.set_column(0, "request_id", long_id),
        bomb,
        compression="zstd",
        store_schema=False,
        write_statistics=False,
    )
    assert bomb.stat().st_size < 5_000
    problems: list[str] = []
    assert len(read_inference_log(str(tmp_path), NAME, problems=problems)) == 500
    summary = stream_inference_log(str(tmp_path), NAME, _summary(), problems=problems)
    assert summary.rows == 500
    assert len(problems) == 2 and all(p.startswith(f"{bomb}: ") for p in problems)
    for p in problems:  # the ten long ids and the other string columns' few bytes
        assert re.search(r"the file holds 10,48\d,\d{3} bytes of string values across", p)
        assert f"more than the {LIMIT:,}" in p
    assert "rows of the file" in problems[0] and "rows of one batch" in problems[1]


def test_an_honest_log_reads_under_the_real_limit(tmp_path: Path) -> None:
    # Five 20,000-row row groups: what the server's writer flushes, in one file.
    path = _hour(tmp_path) / "part-1.parquet"
    path.parent.mkdir(parents=True)
    with pq.ParquetWriter(path, _log_table(1).schema, compression="zstd") as writer:
        for g in range(5):
            writer.write_table(_log_table(20_000, first=20_000 * g, size=40))
    problems: list[str] = []
    assert len(read_inference_log(str(tmp_path), NAME, problems=problems)) == 100_000
    summary = stream_inference_log(str(tmp_path), NAME, _summary(), problems=problems)
    assert summary.rows == 100_000 and problems == []


@pytest.mark.slow
def test_the_spark_engine_skips_a_truncated_foreign_or_too_large_file_and_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from testkit import need

    need(shutil.which("java") is not None, "Java is not installed (Spark needs Java 17+)")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        need(False, "pyspark is not installed (pip install 'mlcycle[spark]')")
    from mlcycle.batch import spark_session
    from mlcycle.monitoring.spark import spark_summary

    monkeypatch.setattr(reader, "MAX_DECLARED_BYTES", LIMIT)
    bomb = _log_with_a_bomb(tmp_path)
    good = (_hour(tmp_path) / "part-1-good.parquet").read_bytes()
    (_hour(tmp_path) / "part-3-truncated.parquet").write_bytes(good[: len(good) // 2])
    pd.DataFrame({"a": [1, 2]}).to_parquet(_hour(tmp_path) / "part-4-foreign.parquet")
    session = spark_session("local[2]", app_name="mlcycle-tests")
    session.sparkContext.setLogLevel("ERROR")
    problems: list[str] = []
    try:
        summary = spark_summary(str(tmp_path), NAME, _summary(), problems=problems)
        with pytest.raises(DataError, match=r"part-2-bomb.parquet: the file declares"):
            spark_summary(str(tmp_path), NAME, _summary())
    finally:
        session.stop()
    assert summary.rows == 500
    assert [Path(p.split(":")[0]).name for p in problems] == [
        bomb.name,
        "part-3-truncated.parquet",
        "part-4-foreign.parquet",
    ]
    assert "declares 6,29" in problems[0] and "not an inference-log file" in problems[2]
