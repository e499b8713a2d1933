"""Issue 12: the whole loop around the user's own MLflow project (examples/xgboost-project).

``mlflow run`` the example -> ``mlcycle register`` / ``promote`` -> a real ``mlcycle serve``
following ``@champion`` -> drifted traffic -> ``mlcycle monitor --retrain --retrain-project``
-> the policy retrains by ``mlflow run`` of the same example -> gate, promote -> the running
server swaps to the new version while a client keeps posting, with no failed request.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from mlcycle.cli import cli
from mlcycle.config import ensure_experiment, load_settings
from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from mlcycle.demo import server as demo
from mlcycle.monitoring import EXPERIMENT, Window
from testkit import CI

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "xgboost-project"
BIN = Path(sys.executable).parent
NUMERIC = ["age", "tenure_months", "monthly_charges", "data_usage_gb", "support_calls"]
NAME = "churn-xgb"
REFERENCE_ROWS = 2000
#: The window outweighs the reference, so the retrained model's random test split is mostly
#: new-rule rows and the gate can tell the better model (as with any concept change).
WINDOW_ROWS = 4000


class Client:
    """A thread posting one-record requests until stopped; every outcome is kept."""

    def __init__(self, url: str) -> None:
        records = make_scenario(20, "both", seed=99)[NUMERIC].dropna()
        self.bodies = [
            {"dataframe_split": records.iloc[[i]].to_dict(orient="split", index=False)}
            for i in range(len(records))
        ]
        self.url = url
        self.stop = threading.Event()
        self.versions: list[str] = []
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._run)

    def __enter__(self) -> Client:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)

    def _run(self) -> None:
        i = 0
        with httpx.Client(timeout=30) as http:
            while not self.stop.is_set():
                try:
                    r = http.post(self.url + "/invocations", json=self.bodies[i % len(self.bodies)])
                    if r.status_code == 200:
                        self.versions.append(r.headers["x-model-version"])
                    else:
                        self.failures.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failures.append(type(exc).__name__)
                i += 1
                time.sleep(0.05)

    def wait_for(self, version: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.versions and self.versions[-1] == version:
                return
            time.sleep(0.2)
        raise AssertionError(f"the server never answered with v{version}: {Counter(self.versions)}")


def _mlflow_run(env_manager: str, data: Path, cwd: Path) -> str:
    """``mlflow run`` the example as a user would; the id of the run it logged."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(BIN / "mlflow"), "run", str(EXAMPLE), "-P", f"data={data}",
           "-P", f"target={SCENARIO_TARGET}", "--env-manager", env_manager,
           "--experiment-name", "mlcycle"]  # fmt: skip
    res = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-4000:]
    m = re.search(r"Run \(ID '([0-9a-f]+)'\) succeeded", res.stderr)
    assert m, res.stderr[-2000:]
    return m.group(1)


def _cli(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def _uv_can_build(tmp_path: Path) -> str | None:
    """Why ``--env-manager uv`` cannot build the example's environment here, or ``None``.

    uv resolves the example's requirements from a package index: without one reachable
    (no internet, no proxy) it cannot build the environment.
    """
    uv = shutil.which("uv", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if uv is None:
        return "uv is not installed"
    (tmp_path / "probe.txt").write_text(f"{ROOT}[xgboost]\n")
    try:
        res = subprocess.run(
            [uv, "pip", "compile", "--quiet", str(tmp_path / "probe.txt")],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "uv could not resolve the example's requirements within 300 s (no index?)"
    if res.returncode != 0:
        tail = res.stderr.strip().splitlines()[-1:] or ["no output"]
        return f"uv cannot resolve the example's requirements from a package index: {tail[0]}"
    return None


def _loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_manager: str) -> None:
    monkeypatch.setenv("MLCYCLE_INFERENCE_LOG", str(tmp_path / "inference-log"))
    monkeypatch.setenv("MLFLOW_ENV_ROOT", str(tmp_path / "envs"))
    monkeypatch.setenv("MLCYCLE_SOURCE", str(ROOT))  # python_env.yaml installs mlcycle from it
    settings = load_settings()
    client = MlflowClient(**settings.client_kwargs())
    ensure_experiment(client, settings.experiment, settings)

    # 1. The user's own project trains v1; 2. register and promote it.
    data = tmp_path / "churn.parquet"
    make_scenario(REFERENCE_ROWS, "reference", seed=1)[[*NUMERIC, SCENARIO_TARGET]].to_parquet(data)
    first_run = _mlflow_run(env_manager, data, tmp_path)
    assert "registered" in _cli("register", "--run-id", first_run, "--name", NAME)
    _cli("gate", NAME)
    _cli("promote", NAME)
    assert client.get_model_version_by_alias(NAME, "champion").run_id == first_run

    # 3. A real server following @champion, hot reload every second.
    server = demo.start_server(settings, f"models:/{NAME}@champion", tmp_path / "serve.log")
    try:
        demo.wait_ready(server, tmp_path / "serve.log")
        url = f"http://127.0.0.1:{server.port}"

        # 4. Drifted traffic (price rise + new churn rule), labels kept by request id.
        traffic = make_scenario(WINDOW_ROWS, "both", seed=7, days=1)[
            [*NUMERIC, SCENARIO_TARGET, SCENARIO_TIME]
        ]
        sent = demo.send(server.port, traffic)
        window = Window.of(sent.start.floor("s"), demo.window_end(sent.end))
        demo.wait_for_log(settings.inference_log, NAME, "1", [window], WINDOW_ROWS)
        labels = tmp_path / "labels.csv"
        sent.labels.to_csv(labels, index=False)

        with Client(url) as load:
            # 5. Monitor; 6. the policy retrains by `mlflow run` of the example; 7. gate.
            out = _cli(
                "monitor", "--model", NAME, "--since", window.start.isoformat(),
                "--until", window.end.isoformat(), "--labels", str(labels),
                "--bad-windows", "1", "--of-last", "1", "--output", str(tmp_path / "reports"),
                "--retrain", "--retrain-project", str(EXAMPLE), "--retrain-entry", "main",
                "--retrain-data-param", "data", "--retrain-param", f"target={SCENARIO_TARGET}",
                "--retrain-env-manager", env_manager,
            )  # fmt: skip
            assert "decision=retrain" in out, out
            assert "v2 promoted to @champion" in out, out
            # 8. The running server swaps with the client still posting.
            load.wait_for("2")
            time.sleep(1.0)
    finally:
        demo.stop(server)

    assert load.failures == []
    seen = Counter(load.versions)
    assert seen["1"] > 0 and seen["2"] > 0, seen

    # The links: monitoring run -> project run -> version 2, and the table it trained on.
    monitoring = client.search_runs(
        [client.get_experiment_by_name(EXPERIMENT).experiment_id],
        "tags.`mlcycle.decision` = 'retrain'",
    )
    assert len(monitoring) == 1
    mon = monitoring[0]
    champion = client.get_model_version_by_alias(NAME, "champion")
    assert str(champion.version) == "2"
    assert champion.tags["mlcycle.monitoring_run_id"] == mon.info.run_id
    assert champion.tags["mlcycle.project_run_id"] == champion.run_id
    assert champion.tags["mlcycle.gate.passed"] == "true"
    assert mon.data.tags["mlcycle.retrain.run_id"] == champion.run_id
    project_run = client.get_run(champion.run_id)
    assert project_run.info.status == "FINISHED"
    assert project_run.data.tags["mlflow.project.entryPoint"] == "main"
    if env_manager != "local":
        assert project_run.data.tags["mlflow.project.env"] == env_manager
    assert project_run.data.tags["mlcycle.monitoring_run_id"] == mon.info.run_id
    table = Path(project_run.data.params["data"])
    assert table == tmp_path / "reports" / mon.info.run_id / "retrain.parquet"
    # The champion's reference (its sample and test split) + the labelled window.
    assert len(pd.read_parquet(table)) == REFERENCE_ROWS + WINDOW_ROWS


def test_drift_retrains_through_the_users_mlflow_project_and_the_server_swaps_without_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _loop(tmp_path, monkeypatch, "local")


@pytest.mark.slow
def test_the_same_loop_builds_the_projects_environment_with_uv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = _uv_can_build(tmp_path)
    if reason:
        assert not CI, reason
        pytest.skip(reason)
    _loop(tmp_path, monkeypatch, "uv")
