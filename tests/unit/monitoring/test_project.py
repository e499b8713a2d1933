"""The project retrain action: declared as data, checked before anything runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from mlcycle.cli import cli
from mlcycle.config import load_settings
from mlcycle.data import SCENARIO_TARGET
from mlcycle.errors import ConfigError, MonitoringError
from mlcycle.monitoring.inputs import ReferenceData
from mlcycle.monitoring.project import (
    ProjectRetrain,
    _absolute_store,
    check_project,
    project_retrain,
)
from mlcycle.monitoring.trigger import retrain

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "xgboost-project"


def _project(tmp_path: Path, entry: str = "main", command: str = "python train.py") -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "MLproject").write_text(
        "name: t\n"
        "entry_points:\n"
        f"  {entry}:\n"
        "    parameters:\n"
        "      data: {type: string}\n"
        "      target: {type: string}\n"
        "      depth: {type: float, default: 3}\n"
        f'    command: "{command} {{data}} {{target}}"\n'
    )
    return root


def test_settings_without_a_project_keep_mlcycles_own_trainer() -> None:
    assert project_retrain(load_settings()) is None


def test_the_environment_declares_the_project_action(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLCYCLE_RETRAIN_PROJECT", "git@example.com:team/churn.git")
    monkeypatch.setenv("MLCYCLE_RETRAIN_ENTRY", "train")
    monkeypatch.setenv("MLCYCLE_RETRAIN_DATA_PARAM", "table")
    monkeypatch.setenv("MLCYCLE_RETRAIN_ENV_MANAGER", "uv")
    monkeypatch.setenv("MLCYCLE_RETRAIN_PARAMS", '{"target": "churned"}')
    action = project_retrain(load_settings())
    assert action == ProjectRetrain(
        "git@example.com:team/churn.git", "train", "table", "uv", {"target": "churned"}
    )
    assert action.describe() == (
        "mlflow run git@example.com:team/churn.git -e train -P table=<table> "
        "-P target=churned --env-manager uv"
    )
    check_project(action)  # a Git project is checked by mlflow run when fetched


def test_the_example_project_passes_the_check() -> None:
    check_project(ProjectRetrain(str(EXAMPLE)))


def test_a_missing_project_directory_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not a directory.*--retrain-project"):
        check_project(ProjectRetrain(str(tmp_path / "nowhere")))


def test_a_directory_without_mlproject_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no MLproject file.*--retrain-project"):
        check_project(ProjectRetrain(str(tmp_path)))


def test_an_unknown_entry_point_names_the_option_and_the_declared_ones(tmp_path: Path) -> None:
    root = _project(tmp_path, entry="fit")
    with pytest.raises(
        ConfigError, match=r"no entry point 'main' \(declared: fit\).*--retrain-entry"
    ):
        check_project(ProjectRetrain(str(root), params={"target": "y"}))


def test_a_data_parameter_the_entry_point_does_not_declare_names_the_option(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path)
    action = ProjectRetrain(str(root), data_param="table", params={"target": "y"})
    with pytest.raises(
        ConfigError,
        match=r"no parameter 'table'.*declares: data, depth, target\).*--retrain-data-param",
    ):
        check_project(action)


def test_a_required_parameter_left_unset_names_the_option(tmp_path: Path) -> None:
    root = _project(tmp_path)
    with pytest.raises(ConfigError, match=r"needs parameter 'target'.*--retrain-param"):
        check_project(ProjectRetrain(str(root)))
    check_project(ProjectRetrain(f"file://{root}", params={"target": "y"}))


def test_bad_values_of_the_action_name_their_options() -> None:
    with pytest.raises(ConfigError, match="--retrain-env-manager"):
        ProjectRetrain("p", env_manager="pip")
    with pytest.raises(ConfigError, match=r"receives the retrain table.*--retrain-param"):
        ProjectRetrain("p", params={"data": "x.csv"})
    with pytest.raises(ConfigError, match="--retrain-project"):
        ProjectRetrain("")


def test_relative_stores_become_absolute_for_the_projects_process(tmp_path: Path) -> None:
    assert _absolute_store("sqlite:///mlflow.db") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert _absolute_store(f"sqlite:///{tmp_path}/a.db") == f"sqlite:///{tmp_path}/a.db"
    assert _absolute_store("mlruns") == (tmp_path / "mlruns").as_uri()
    assert _absolute_store("http://tracking:5000") == "http://tracking:5000"


@pytest.mark.parametrize("command", ["monitor", "loop"])
def test_the_cli_refuses_a_missing_project_before_monitoring(command: str, tmp_path: Path) -> None:
    args = [command, "--model", "churn", "--retrain-project", str(tmp_path / "nowhere")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1
    assert "is not a directory or a Git URI: --retrain-project" in res.output


def test_the_cli_refuses_an_unknown_entry_point(tmp_path: Path) -> None:
    root = _project(tmp_path)
    res = CliRunner().invoke(
        cli,
        ["monitor", "--model", "churn", "--retrain-project", str(root), "--retrain-entry",
         "train", "--retrain-param", "target=y"],
    )  # fmt: skip
    assert res.exit_code == 1
    assert "declares no entry point 'train' (declared: main): --retrain-entry" in res.output


def test_the_cli_refuses_an_undeclared_data_parameter(tmp_path: Path) -> None:
    root = _project(tmp_path)
    res = CliRunner().invoke(
        cli,
        ["loop", "--once", "--model", "churn", "--retrain-project", str(root),
         "--retrain-data-param", "table", "--retrain-param", "target=y"],
    )  # fmt: skip
    assert res.exit_code == 1
    assert "declares no parameter 'table'" in res.output
    assert "--retrain-data-param" in res.output


def test_the_cli_reads_the_project_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLCYCLE_RETRAIN_PROJECT", str(tmp_path / "nowhere"))
    res = CliRunner().invoke(cli, ["loop", "--once", "--model", "churn"])
    assert res.exit_code == 1
    assert "MLCYCLE_RETRAIN_PROJECT" in res.output


@pytest.mark.parametrize(
    "option",
    [
        ["--retrain-entry", "train"],
        ["--retrain-data-param", "table"],
        ["--retrain-env-manager", "uv"],
        ["--retrain-param", "target=y"],
    ],
)
def test_project_options_without_a_project_are_usage_errors(option: list[str]) -> None:
    res = CliRunner().invoke(cli, ["monitor", "--model", "churn", *option])
    assert res.exit_code == 2
    assert f"{option[0]} needs --retrain-project" in res.output


def test_a_malformed_project_parameter_is_a_usage_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli, ["monitor", "--model", "churn", "--retrain-project", ".", "--retrain-param", "y"]
    )
    assert res.exit_code == 2
    assert "expected KEY=VALUE" in res.output


def _reference() -> ReferenceData:
    sample = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], SCENARIO_TARGET: [0, 1, 0, 1]})
    return ReferenceData(
        profile={}, sample=sample, task="classification", target=SCENARIO_TARGET,
        numeric=("x",), categorical=(), classes=("0", "1"), model_version="1",
    )  # fmt: skip


def test_a_failing_project_run_is_reported_and_the_callers_run_stays_active(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    root = _project(tmp_path, command=f"{sys.executable} -c 'raise SystemExit(3)'")
    action = ProjectRetrain(str(root), params={"target": SCENARIO_TARGET})
    client = MlflowClient()
    ref = _reference()
    with mlflow.start_run() as caller:
        with pytest.raises(MonitoringError, match="retrain project run failed"):
            retrain(
                client, "churn", ref, ref.sample.head(2), base=ref.sample, action=action,
                data_path=tmp_path / "work" / "retrain.parquet",
            )  # fmt: skip
        active = mlflow.active_run()
        assert active is not None and active.info.run_id == caller.info.run_id
    table = pd.read_parquet(tmp_path / "work" / "retrain.parquet")
    assert len(table) == 6 and list(table.columns) == ["x", SCENARIO_TARGET]
    experiment = client.get_experiment_by_name("mlcycle")
    assert experiment is not None
    failed = client.search_runs([experiment.experiment_id], "attributes.status = 'FAILED'")
    assert [r.data.tags["mlflow.project.entryPoint"] for r in failed] == ["main"]
    assert failed[0].data.params["data"] == str(tmp_path / "work" / "retrain.parquet")


def test_an_empty_project_variable_keeps_mlcycles_trainer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLCYCLE_RETRAIN_PROJECT", "")
    monkeypatch.setenv("MLCYCLE_RETRAIN_PARAMS", "")
    assert project_retrain(load_settings()) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [("target=y", "is not JSON"), ('["target"]', "must be a JSON object")],
)
def test_malformed_project_parameters_in_the_environment_name_the_variable(
    value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLCYCLE_RETRAIN_PROJECT", "https://example.com/churn.git")
    monkeypatch.setenv("MLCYCLE_RETRAIN_PARAMS", value)
    with pytest.raises(ConfigError, match=f"MLCYCLE_RETRAIN_PARAMS {message}"):
        project_retrain(load_settings())


RETRAIN_VARIABLES = {
    "MLCYCLE_RETRAIN_PROJECT",
    "MLCYCLE_RETRAIN_ENTRY",
    "MLCYCLE_RETRAIN_DATA_PARAM",
    "MLCYCLE_RETRAIN_ENV_MANAGER",
    "MLCYCLE_RETRAIN_PARAMS",
}


def test_compose_and_kubernetes_declare_the_retrain_action_with_the_trainer_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import yaml

    from mlcycle.config import Settings

    root = EXAMPLE.parents[1]
    assert {f"MLCYCLE_{f.upper()}" for f in Settings.model_fields} >= RETRAIN_VARIABLES
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    monitor_env = compose["services"]["monitor"]["environment"]
    assert set(monitor_env) >= RETRAIN_VARIABLES
    assert monitor_env["MLCYCLE_RETRAIN_PROJECT"] == "${MLCYCLE_RETRAIN_PROJECT:-}"
    config = yaml.safe_load((root / "deploy" / "k8s" / "configmap.yaml").read_text())["data"]
    assert set(config) >= RETRAIN_VARIABLES
    for key in RETRAIN_VARIABLES:
        monkeypatch.setenv(key, config[key])
    assert project_retrain(load_settings()) is None


def test_a_project_mlflow_cannot_start_leaves_no_run_running(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "MLproject").write_text(
        "python_env: python_env.yaml\n" + (root / "MLproject").read_text()
    )
    (root / "python_env.yaml").write_text('python: "3.11"\ndependencies: []\n')
    # mlflow creates the run, then refuses conda for a python_env project.
    action = ProjectRetrain(str(root), env_manager="conda", params={"target": "y"})
    client = MlflowClient()
    ref = _reference()
    with pytest.raises(ConfigError, match=r"cannot run retrain project.*conda"):
        retrain(
            client, "churn", ref, ref.sample.head(2), base=ref.sample, action=action,
            data_path=tmp_path / "retrain.parquet",
        )  # fmt: skip
    experiment = client.get_experiment_by_name("mlcycle")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
