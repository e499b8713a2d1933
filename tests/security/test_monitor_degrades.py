"""Issue 10 item 9: monitoring degrades, never dies, and never stays silent.

- one truncated and one foreign-schema Parquet file in the window's hour: each is reported
  as a finding and the rest of the window is analysed; with a file declaring more
  uncompressed bytes than mlcycle decodes at once too, under every engine (pandas, arrow,
  spark);
- a missing inference-log root is an error naming the path;
- a window run left RUNNING by a killed monitor is reported, and the CLI exits non-zero.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest

from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, infer_spec, make_scenario
from mlcycle.errors import DataError
from mlcycle.monitoring import RetrainPolicy, Window, record, reference_from_frame, run_once

NAME = "churn"
DAY = "2026-03-01"


def _setup(tmp_path: Path):
    from mlflow import MlflowClient

    from mlcycle.config import load_settings

    settings = load_settings(inference_log=str(tmp_path / "log"))
    client = MlflowClient(**settings.client_kwargs())
    ref = make_scenario(2000, "reference", seed=1)
    spec = infer_spec(ref, SCENARIO_TARGET, time_column=SCENARIO_TIME)
    ref["prediction"] = ref[SCENARIO_TARGET]
    return settings, client, reference_from_frame(ref, spec=spec)


def _write_hour(root: Path, rows: int = 600) -> Path:
    """Good rows of one hour in the serving layout; returns the partition directory."""
    frame = make_scenario(rows, "covariate", seed=2, start=DAY, days=1)
    ts = pd.Timestamp(DAY, tz="UTC") + pd.to_timedelta(np.arange(rows) % 3600, unit="s")
    out = frame.drop(columns=[SCENARIO_TIME, SCENARIO_TARGET])
    out.insert(0, "request_id", [uuid.uuid4().hex for _ in range(rows)])
    out.insert(1, "record_index", np.zeros(rows, dtype="int32"))
    out.insert(2, "timestamp", ts.astype("datetime64[us, UTC]"))
    out.insert(3, "role", "champion")
    out["prediction"] = frame[SCENARIO_TARGET].to_numpy()
    d = root / f"model={NAME}" / "version=1" / "hour=2026-03-01T00"
    d.mkdir(parents=True)
    out.to_parquet(d / "part-1-good.parquet", index=False)
    return d


@pytest.mark.parametrize(
    "engine", ["pandas", "arrow", pytest.param("spark", marks=pytest.mark.slow)]
)
def test_every_engine_reports_bad_files_as_findings_and_analyses_the_rest(
    tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch
):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcycle.inference_log import reader

    if engine == "spark":
        import shutil

        from testkit import need

        need(shutil.which("java") is not None, "Java is not installed (Spark needs Java 17+)")
        need(_has("pyspark"), "pyspark is not installed (pip install 'mlcycle[spark]')")
    settings, client, reference = _setup(tmp_path)
    d = _write_hour(tmp_path / "log")
    whole = (d / "part-1-good.parquet").read_bytes()
    (d / "part-2-truncated.parquet").write_bytes(whole[: len(whole) // 2])
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}).to_parquet(d / "part-3-foreign.parquet")
    # Log-shaped rows whose note is 2 MB each: 6 MB declared in a few KB of zstd.
    good = pq.read_table(d / "part-1-good.parquet").slice(0, 3)
    big = good.append_column("note", pa.array(["a" * (2 << 20)] * 3))
    pq.write_table(big, d / "part-4-huge.parquet", compression="zstd", use_dictionary=False)
    monkeypatch.setattr(reader, "MAX_DECLARED_BYTES", 4 << 20)
    try:
        out = run_once(
            client,
            settings,
            NAME,
            version="1",
            reference=reference,
            window=Window.of(DAY, "2026-03-02"),
            policy=RetrainPolicy(bad_windows=1, of_last=1),
            output_dir=tmp_path / "reports",
            lock_dir=tmp_path / "locks",
            engine=engine,  # type: ignore[arg-type]
        )
    finally:
        if engine == "spark":
            from pyspark.sql import SparkSession

            if (active := SparkSession.getActiveSession()) is not None:
                active.stop()
    assert out.result is not None and out.result.rows == 600
    bad = {
        Path(f.detail.split(":")[0]).name: f.detail
        for f in out.result.findings
        if f.kind == "unreadable_file"
    }
    assert set(bad) == {"part-2-truncated.parquet", "part-3-foreign.parquet", "part-4-huge.parquet"}
    assert "declares 6,29" in bad["part-4-huge.parquet"]
    assert "more than the 4,194,304" in bad["part-4-huge.parquet"]
    assert out.result.status == "drift"  # the good file was analysed
    run = client.get_run(out.run_id)
    assert "unreadable_file" in run.data.tags["mlcycle.findings"]
    assert run.info.status == "FINISHED"


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_a_missing_log_root_is_an_error_naming_the_path(tmp_path: Path):
    settings, client, reference = _setup(tmp_path)
    with pytest.raises(DataError, match=str(tmp_path / "log")):
        run_once(
            client,
            settings,
            NAME,
            version="1",
            reference=reference,
            window=Window.of(DAY, "2026-03-02"),
            output_dir=tmp_path / "reports",
            lock_dir=tmp_path / "locks",
        )


def test_a_window_left_running_by_a_killed_monitor_is_reported_with_exit_1(tmp_path: Path):
    from mlcycle.cli.monitor import _fail_on_stale
    from mlcycle.config import ensure_experiment

    settings, client, reference = _setup(tmp_path)
    _write_hour(tmp_path / "log")
    window = Window.of(DAY, "2026-03-02")
    exp = ensure_experiment(client, record.EXPERIMENT, settings)
    # What a monitor killed mid-window leaves behind: its run, RUNNING, two hours old.
    killed = client.create_run(
        exp,
        start_time=int((pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=2)).timestamp() * 1000),
        tags={
            "mlcycle.kind": record.KIND,
            "mlcycle.model": NAME,
            "mlcycle.model_version": "1",
            "mlcycle.window": window.key,
        },
    ).info.run_id
    out = run_once(
        client,
        settings,
        NAME,
        version="1",
        reference=reference,
        window=window,
        output_dir=tmp_path / "reports",
        lock_dir=tmp_path / "locks",
    )
    assert out.skipped and killed in out.skipped
    assert len(out.stale) == 1 and killed in out.stale[0] and window.key in out.stale[0]
    with pytest.raises(click.ClickException) as err:
        _fail_on_stale(out)
    assert err.value.exit_code == 1 and killed in err.value.message
