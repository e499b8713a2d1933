"""Hot reload meets a crafted ``@champion``: refused once, never downloaded again, nothing runs.

A real ``mlcycle serve`` process follows ``@champion`` of a private SQLite store, with its
temporary directory under the test's, so the disk it uses can be measured and its cleanup
after SIGTERM checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from crafted_models import ATTACKS, craft, legit_model, register_dir

from testkit import free_port, stop_group, wait_for_port

pytestmark = pytest.mark.slow


def _metric(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values = [float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
    return sum(values)


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _score(port: int) -> str:
    r = httpx.post(
        f"http://127.0.0.1:{port}/invocations",
        json={"dataframe_records": [{"x": 1.0}]},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.headers["x-model-version"]


def _wait(cond, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("kind", ATTACKS)
def test_a_crafted_champion_is_refused_once_and_the_old_one_keeps_serving(
    kind, tmp_path, own_mlflow
) -> None:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    good = register_dir(client, "victim", legit_model(tmp_path))
    client.set_registered_model_alias("victim", "champion", good)
    marker = tmp_path / "MARKER"
    bad = register_dir(client, "victim", craft(kind, tmp_path / "crafted", marker).path)
    # Make the download worth measuring: a refused copy that were kept would show.
    run_id = client.get_model_version("victim", bad).run_id
    ballast = tmp_path / "ballast"
    ballast.mkdir()
    (ballast / "weights.bin").write_bytes(os.urandom(2_000_000))
    with mlflow.start_run(run_id=run_id):
        mlflow.log_artifacts(str(ballast), "model/extra_files")

    tmp = tmp_path / "server-tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    env.update(TMPDIR=str(tmp), MLFLOW_TRACKING_URI=own_mlflow)
    if kind == "code_loader":  # it ran even with MLflow's switch off (the image's setting)
        env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    port = free_port()
    cmd = [sys.executable, "-m", "mlcycle", "serve", "--model", "models:/victim@champion"]
    cmd += ["--port", str(port), "--reload-interval", "0.3", "--no-inference-log"]
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_for_port(port, 120, proc)
        _wait(lambda: httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200)
        assert _score(port) == good
        client.set_registered_model_alias("victim", "champion", bad)
        _wait(lambda: _metric(port, "mlcycle_model_refused_total") == 1)
        disk = _du(tmp)
        time.sleep(3)  # ten more polls of the same refused version
        assert _du(tmp) <= disk
        assert _metric(port, "mlcycle_model_refused_total") == 1
        assert _score(port) == good
        assert not marker.exists()
        downloads = (tmp_path / "serve.log").read_text().count("refused")
        assert downloads == 1  # logged (and downloaded) once, not on every poll
    finally:
        proc.send_signal(15)
        try:
            proc.wait(30)
        finally:
            stop_group(proc)
            log.close()
    assert not marker.exists()
    leftovers = [p for p in tmp.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers  # downloads and temp dirs removed on SIGTERM
