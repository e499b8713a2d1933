"""Reading the inference log by window, role and version, and joining late labels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlcycle.data import make_scenario
from mlcycle.monitoring import Window, join_labels, read_inference_log


def _frame(rows: int, start: str, seed: int = 0) -> pd.DataFrame:
    df = make_scenario(rows, "reference", seed=seed, start=start, days=1)
    df["prediction"] = df["churned"]
    return df


def test_only_champion_rows_of_the_window_are_read(tmp_path: Path, log_writer):
    log_writer(tmp_path, "m", "1", _frame(300, "2026-03-01"))
    log_writer(tmp_path, "m", "1", _frame(100, "2026-03-01", seed=1), role="shadow")
    log_writer(tmp_path, "m", "1", _frame(200, "2026-03-02", seed=2))
    log_writer(tmp_path, "m", "2", _frame(50, "2026-03-01", seed=3))
    day = Window.of("2026-03-01", "2026-03-02")
    assert len(read_inference_log(str(tmp_path), "m", day)) == 350
    assert len(read_inference_log(str(tmp_path), "m", day, version="1")) == 300
    assert len(read_inference_log(str(tmp_path), "m")) == 550
    noon = Window.of("2026-03-01T12:00", "2026-03-01T13:00")
    rows = read_inference_log(str(tmp_path), "m", noon, version="1")
    assert 0 < len(rows) < 300
    assert rows["timestamp"].min() >= noon.start and rows["timestamp"].max() < noon.end


def test_a_model_without_traffic_is_an_empty_window(tmp_path: Path):
    assert read_inference_log(str(tmp_path), "m").empty


def test_labels_join_by_request_id_and_record_index(tmp_path: Path, log_writer):
    logged = log_writer(tmp_path, "m", "1", _frame(20, "2026-03-01"))
    labels = pd.DataFrame({"request_id": logged["request_id"].iloc[:10], "churned": 1})
    joined = join_labels(read_inference_log(str(tmp_path), "m"), labels, "churned")
    assert joined["churned"].notna().sum() == 10 and len(joined) == 20


def test_windows_align_to_the_period():
    w = Window.latest(
        pd.Timedelta(minutes=10).to_pytimedelta(), pd.Timestamp("2026-03-01T12:34:56Z")
    )
    assert w.key == "2026-03-01T12:20:00Z/2026-03-01T12:30:00Z"
