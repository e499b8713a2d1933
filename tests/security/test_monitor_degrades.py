"""Issue 10 item 9: monitoring degrades, never dies, and never stays silent.

- one truncated and one foreign-schema Parquet file in the window's hour: each is reported
  as a finding and the rest of the window is analysed;
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


def test_a_truncated_and_a_foreign_file_are_findings_and_the_rest_is_analysed(tmp_path: Path):
    settings, client, reference = _setup(tmp_path)
    d = _write_hour(tmp_path / "log")
    whole = (d / "part-1-good.parquet").read_bytes()
    (d / "part-2-truncated.parquet").write_bytes(whole[: len(whole) // 2])
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}).to_parquet(d / "part-3-foreign.parquet")
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
    )
    assert out.result is not None and out.result.rows == 600
    assert out.result.status == "drift"  # the good file was analysed
    bad = [f for f in out.result.findings if f.kind == "unreadable_file"]
    assert {"part-2-truncated.parquet", "part-3-foreign.parquet"} == {
        Path(f.detail.split(":")[0]).name for f in bad
    }
    tags = client.get_run(out.run_id).data.tags
    assert "unreadable_file" in tags["mlcycle.findings"]
    assert client.get_run(out.run_id).info.status == "FINISHED"


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
