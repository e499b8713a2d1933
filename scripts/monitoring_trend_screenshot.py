"""Take docs/img/monitoring-trend.png: the MLflow UI drawing a monitoring trend as lines.

Builds a throwaway store, logs eight daily windows whose traffic drifts a little more each
day, monitors each window (one trend run per model version and month collects their metrics),
then opens the trend run's metrics in the MLflow UI with headless Chromium.

Usage: ``.venv/bin/python scripts/monitoring_trend_screenshot.py [OUTPUT.png]``
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _log_day(root: Path, day: pd.Timestamp, share: float, seed: int) -> None:
    from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario

    rows = 800
    n_drift = int(rows * share)
    parts = [make_scenario(rows - n_drift, "reference", seed=seed, start=str(day.date()), days=1)]
    if n_drift:
        parts.append(
            make_scenario(n_drift, "covariate", seed=seed + 1, start=str(day.date()), days=1)
        )
    frame = pd.concat(parts, ignore_index=True)
    ts = day + pd.to_timedelta(np.arange(len(frame)) * 60, unit="s")
    out = frame.drop(columns=[SCENARIO_TIME, SCENARIO_TARGET])
    out.insert(0, "record_id", [f"{uuid.uuid4().hex}-0" for _ in range(len(out))])
    out.insert(1, "request_id", out["record_id"].str[:-2])
    out.insert(2, "record_index", np.zeros(len(out), dtype="int32"))
    out.insert(3, "timestamp", ts.astype("datetime64[us, UTC]"))
    out.insert(4, "role", "champion")
    out["prediction"] = frame[SCENARIO_TARGET].to_numpy()
    for hour, part in out.groupby(out["timestamp"].dt.strftime("%Y-%m-%dT%H")):
        d = root / "model=churn" / "version=1" / f"hour={hour}"
        d.mkdir(parents=True, exist_ok=True)
        part.to_parquet(d / f"part-{uuid.uuid4().hex[:8]}.parquet", index=False)


def main(output: Path) -> None:
    from mlflow import MlflowClient

    from mlcycle.config import load_settings
    from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, infer_spec, make_scenario
    from mlcycle.monitoring import Window, reference_from_frame, run_once
    from mlcycle.monitoring.record import EXPERIMENT

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("needs Debian's chromium")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        os.chdir(tmp)
        store = f"sqlite:///{tmp / 'mlflow.db'}"
        os.environ["MLFLOW_TRACKING_URI"] = store
        os.environ["MLCYCLE_ARTIFACT_ROOT"] = str(tmp / "mlartifacts")
        settings = load_settings(inference_log=str(tmp / "log"))
        client = MlflowClient(**settings.client_kwargs())
        ref = make_scenario(3000, "reference", seed=1)
        spec = infer_spec(ref, SCENARIO_TARGET, time_column=SCENARIO_TIME)
        ref["prediction"] = ref[SCENARIO_TARGET]
        reference = reference_from_frame(ref, spec=spec)
        start = pd.Timestamp("2026-03-01", tz="UTC")
        for i, share in enumerate([0.0, 0.0, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9]):
            day = start + pd.Timedelta(days=i)
            _log_day(tmp / "log", day, share, seed=10 + 2 * i)
            run_once(
                client, settings, "churn", version="1", reference=reference,
                window=Window.of(day, day + pd.Timedelta(days=1)), allow_retrain=False,
                output_dir=tmp / "reports",
            )  # fmt: skip
        exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
        (trend,) = client.search_runs([exp], "tags.`mlcycle.kind` = 'monitor-trend'")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ui = subprocess.Popen(
            [str(BIN / "mlflow"), "ui", "--backend-store-uri", store,
             "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
            stdout=subprocess.DEVNULL, stderr=(tmp / "ui.log").open("wb"), start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or ui.poll() is not None:
                        log = (tmp / "ui.log").read_text()[-2000:]
                        raise SystemExit(f"mlflow ui did not start:\n{log}") from None
                    time.sleep(0.5)
            run = trend.info.run_id
            # The run's "Model metrics" tab: one chart per metric, each a line over the windows.
            pages = {
                output: f"http://127.0.0.1:{port}/#/experiments/{exp}/runs/{run}/model-metrics"
            }
            output.parent.mkdir(parents=True, exist_ok=True)
            for target, page in pages.items():
                subprocess.run(
                    [exe, "--headless", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
                     f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=120000",
                     "--window-size=1400,900", f"--screenshot={target}", page],
                    capture_output=True, text=True, timeout=300, check=True,
                )  # fmt: skip
        finally:
            os.killpg(ui.pid, signal.SIGTERM)
            ui.wait(30)
    print(f"wrote {output}")


if __name__ == "__main__":
    main(
        Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "docs/img/monitoring-trend.png"
    )
