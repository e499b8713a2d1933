"""The MLflow UI shows mlcycle's training runs and their datasets (headless Chromium)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlcycle.train import TrainConfig, train
from testkit import free_port, need, stop_group, wait_for_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]
BIN = Path(sys.executable).parent


def test_the_mlflow_ui_lists_the_training_runs_with_their_dataset(
    tmp_path: Path, scenario_csv: Path, own_mlflow: str
) -> None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    need(exe is not None, "Debian's chromium is not installed (apt-get install chromium)")
    client = MlflowClient()
    cfg = TrainConfig(
        data=str(scenario_csv), target="churned", model="linear", trials=2, run_name="ui-search"
    )
    result = train(
        cfg,
        client,
    )
    port = free_port()
    ui = subprocess.Popen(
        [str(BIN / "mlflow"), "ui", "--backend-store-uri", own_mlflow,
         "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, 60, ui)
        page = f"http://127.0.0.1:{port}/#/experiments/{result.experiment_id}/runs"
        dom = subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000",
             "--dump-dom", page],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        stop_group(ui)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "ui-search" in dom.stdout  # the parent run of the search
    assert scenario_csv.name in dom.stdout  # its training dataset, logged with mlflow.log_input
