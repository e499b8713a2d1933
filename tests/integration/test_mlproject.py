"""`mlflow run . -e train` produces a finished, complete run with each env manager."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _mlflow_run(
    tmp_path: Path,
    env_manager: str,
    tracking_uri: str,
    *params: str,
    experiment: str | None = "project",
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_ENV_ROOT": str(tmp_path / "envs"),
        "MLCYCLE_ARTIFACT_ROOT": str(tmp_path / "mlartifacts"),
    }
    cmd = [
        str(BIN / "mlflow"),
        "run",
        str(ROOT),
        "-e",
        "train",
        "--env-manager",
        env_manager,
    ]
    if experiment is not None:
        cmd += ["--experiment-name", experiment]
    for p in params:
        cmd += ["-P", p]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)


def _assert_complete_run(tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("project")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.entryPoint"] == "train"
    assert run.data.tags["mlcycle.task"] == "classification"
    assert "test_roc_auc" in run.data.metrics
    assert run.data.tags["mlcycle.model_uri"].startswith("models:/")
    paths = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"plots", "reference", "onnx"} <= paths


@pytest.mark.slow
def test_mlflow_run_with_the_local_env_manager_trains_a_complete_run(
    tmp_path: Path, scenario_csv: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'project.db'}"
    res = _mlflow_run(
        tmp_path,
        "local",
        uri,
        f"data={scenario_csv}",
        "target=churned",
        "model=linear",
        "time_column=event_time",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    _assert_complete_run(uri)


@pytest.mark.slow
def test_mlflow_run_with_the_uv_env_manager_builds_python_env_and_trains(
    tmp_path: Path, scenario_csv: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'project.db'}"
    res = _mlflow_run(tmp_path, "uv", uri, f"data={scenario_csv}", "target=churned", "model=linear")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "using uv" in res.stderr
    _assert_complete_run(uri)


def test_a_bad_project_parameter_fails_the_run_with_the_reason(
    tmp_path: Path, scenario_csv: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'project.db'}"
    res = _mlflow_run(tmp_path, "local", uri, f"data={scenario_csv}", "target=nope")
    assert res.returncode != 0
    assert "target column 'nope' is not in the data" in res.stderr
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("project")
    assert all(r.info.status != "RUNNING" for r in client.search_runs([exp.experiment_id]))


@pytest.mark.slow
def test_mlflow_run_without_an_experiment_writes_to_mlcycle_not_default(
    tmp_path: Path, scenario_csv: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'project.db'}"
    res = _mlflow_run(
        tmp_path,
        "local",
        uri,
        f"data={scenario_csv}",
        "target=churned",
        "model=linear",
        experiment=None,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    client = MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("mlcycle").experiment_id])
    assert run.data.tags["mlflow.project.entryPoint"] == "train"
    assert run.info.run_name == "linear scenario"
    assert client.search_runs(["0"]) == []
    assert not (tmp_path / "mlruns").exists()
    assert (
        not (ROOT / "mlruns").exists()
        or (ROOT / "mlruns").stat().st_mtime < run.info.start_time / 1000
    )
