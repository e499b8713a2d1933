"""The inference-log contract (:mod:`mlcycle.inference_log`): layout, types, queue, reader."""

from __future__ import annotations

import threading
import time
import weakref
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle.inference_log import InferenceLog, LogItem, Window, read_inference_log

KINDS = (("age", "long"), ("charges", "double"), ("plan", "string"))
T0 = int(datetime(2026, 3, 1, 10, 59, 59, tzinfo=UTC).timestamp() * 1e6)


def item(
    rid: str, ts_us: int = T0, version: str = "3", n: int = 2, role: str = "champion"
) -> LogItem:
    return LogItem(
        request_id=rid,
        timestamp_us=ts_us,
        model_name="churn",
        model_version=version,
        role=role,
        columns={
            "age": np.arange(n, dtype=np.int64) + 30,
            "charges": np.array([1.5] * (n - 1) + [np.nan]),
            "plan": np.array(["basic"] * (n - 1) + [None], dtype=object),
        },
        kinds=KINDS,
        predictions=np.arange(n, dtype=np.int64) % 2,
    )


def test_files_are_hive_partitioned_by_model_version_and_hour(tmp_path: Path) -> None:
    log = InferenceLog(str(tmp_path))
    log.append(item("a"))
    log.append(item("b", T0 + 2_000_000))  # the next hour
    log.append(item("c", version="4"))
    log.close()
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert [f.rsplit("/", 1)[0] for f in files] == [
        "model=churn/version=3/hour=2026-03-01T10",
        "model=churn/version=3/hour=2026-03-01T11",
        "model=churn/version=4/hour=2026-03-01T10",
    ]
    assert all(f.rsplit("/", 1)[1].startswith("part-") for f in files)
    assert log.written == 6 and log.dropped == 0


def test_close_writes_the_whole_queue_and_a_timeout_says_what_is_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slow = InferenceLog(str(tmp_path / "slow"), chunk_records=1).start()
    write = slow._write

    def slow_write(directory: str, table: object) -> None:  # a store that takes its time
        time.sleep(0.3)
        write(directory, table)

    slow._write = slow_write  # type: ignore[method-assign]
    for i in range(3):
        slow.append(item(f"r{i}", T0 + i * 3_600_000_000))  # three hours: three files
    assert slow.close(timeout=0.05) > 0
    assert "records still being written after 0.05 s" in caplog.text
    assert slow.close() == 0  # still writing in the background: nothing is left behind
    # Without a timeout close waits: a drain writes every record it accepted.
    patient = InferenceLog(str(tmp_path / "patient"), chunk_records=1).start()
    patient._write = slow_write  # type: ignore[method-assign]
    for i in range(3):
        patient.append(item(f"r{i}", T0 + i * 3_600_000_000))
    assert patient.close() == 0
    assert patient.written == 6 and patient.dropped == 0
    assert len(list((tmp_path / "patient").rglob("*.parquet"))) == 3


def test_columns_and_types_follow_the_contract(tmp_path: Path) -> None:
    log = InferenceLog(str(tmp_path))
    log.append(item("a"))
    log.close()
    (path,) = tmp_path.rglob("*.parquet")
    schema = pq.read_schema(path)
    assert schema.names == [
        "record_id", "request_id", "record_index", "timestamp", "model_name", "model_version",
        "role", "age", "charges", "plan", "prediction",
    ]  # fmt: skip
    assert schema.field("request_id").type == pa.string()
    assert schema.field("record_id").type == pa.string()
    assert schema.field("record_index").type == pa.int32()
    assert schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert schema.field("age").type == pa.int64()
    assert schema.field("charges").type == pa.float64()
    assert schema.field("plan").type == pa.string()
    assert schema.field("prediction").type == pa.int64()
    table = pq.read_table(path).to_pylist()
    assert table[1]["plan"] is None and table[1]["charges"] is None
    assert table[0]["timestamp"] == datetime.fromtimestamp(T0 / 1e6, tz=UTC)


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    log = InferenceLog(str(tmp_path), max_pending=5)  # not started: nothing drains
    assert log.append(item("a", n=2)) and log.append(item("b", n=3))
    assert not log.append(item("c", n=1))
    assert log.dropped == 1 and log.pending == 5
    log.close()
    assert log.written == 5


def test_the_writer_flushes_every_n_records(tmp_path: Path) -> None:
    log = InferenceLog(str(tmp_path), flush_records=4, flush_seconds=60).start()
    for i in range(3):
        log.append(item(str(i)))
    deadline = time.monotonic() + 10
    while log.written < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log.written >= 4
    log.close()
    assert log.written == 6


def test_the_reader_filters_by_time_window(tmp_path: Path) -> None:
    log = InferenceLog(str(tmp_path))
    log.append(item("early"))
    log.append(item("late", T0 + 3_600_000_000))
    log.close()
    every = read_inference_log(str(tmp_path), "churn", role=None)
    assert every["request_id"].tolist() == ["early", "early", "late", "late"]
    start = datetime(2026, 3, 1, 11, tzinfo=UTC)
    later = Window.of(start, datetime(2027, 1, 1))
    earlier = Window.of(datetime(2000, 1, 1), start)
    assert set(read_inference_log(str(tmp_path), "churn", later)["request_id"]) == {"late"}
    assert set(read_inference_log(str(tmp_path), "churn", earlier)["request_id"]) == {"early"}
    assert read_inference_log(str(tmp_path), "other", role=None).empty


@pytest.mark.s3
def test_the_log_writes_to_and_reads_from_s3(s3_bucket: str) -> None:
    root = f"s3://{s3_bucket}/inference-log"
    log = InferenceLog(root)
    log.append(item("s3"))
    log.close()
    df = read_inference_log(root, "churn", role=None)
    assert df["request_id"].tolist() == ["s3", "s3"] and log.write_errors == 0


def test_probabilities_are_float_columns_per_class_null_where_predict_was_used(
    tmp_path: Path,
) -> None:
    import dataclasses

    log = InferenceLog(str(tmp_path))
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    log.append(dataclasses.replace(item("a"), proba=proba, classes=("0", "1")))
    log.append(item("b"))
    log.close()
    (path,) = tmp_path.rglob("*.parquet")
    schema = pq.read_schema(path)
    assert schema.names[-3:] == ["prediction", "proba_0", "proba_1"]
    assert schema.field("proba_1").type == pa.float64()
    df = read_inference_log(str(tmp_path), "churn", role=None)
    assert df["proba_1"].tolist()[:2] == [0.1, 0.8]
    assert df["proba_1"].isna().tolist() == [False, False, True, True]


def test_no_record_is_lost_when_closed_while_clients_append(tmp_path: Path) -> None:
    # Small chunks and flushes: conversion, staging and writing all run while appends go on.
    log = InferenceLog(
        str(tmp_path),
        max_pending=2_000,
        flush_records=50,
        flush_seconds=0.01,
        chunk_records=7,
        chunk_seconds=0.001,
    ).start()
    accepted: list[int] = []
    stop = threading.Event()

    def client(k: int) -> None:
        ok = 0
        i = 0
        while not stop.is_set():
            if log.append(item(f"{k}-{i}", n=3)):
                ok += 3
            i += 1
        accepted.append(ok)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        while log.written < 300:
            time.sleep(0.005)
        log.close()  # while the clients still append: later appends are refused and counted
    finally:
        stop.set()
        for t in threads:
            t.join()
    df = read_inference_log(str(tmp_path), "churn", role=None)
    assert log.written == sum(accepted) == len(df) and log.pending == 0
    assert len(list(tmp_path.rglob("*.parquet"))) > 1
    assert df.groupby("request_id").size().eq(3).all()


def test_appended_items_leave_the_python_heap_before_the_flush(tmp_path: Path) -> None:
    # Items held until a flush would age into the collector's oldest generation.
    log = InferenceLog(str(tmp_path), flush_seconds=3600, chunk_seconds=0.01).start()
    it = item("held")
    ref = weakref.ref(it)
    assert log.append(it)
    del it
    deadline = time.monotonic() + 10
    while ref() is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ref() is None
    assert list(tmp_path.rglob("*.parquet")) == [] and log.pending == 2
    log.close()
    assert read_inference_log(str(tmp_path), "churn", role=None)["request_id"].tolist() == [
        "held",
        "held",
    ]
