"""The lifecycle contract: written by training, by ``log_contract``, by adoption, or given."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

import mlcycle
from mlcycle import contract
from mlcycle.cli import cli
from mlcycle.data import SCENARIO_TARGET, make_scenario
from mlcycle.errors import DataError

NUMERIC = ["age", "tenure_months", "monthly_charges", "data_usage_gb", "support_calls"]


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = make_scenario(1200, "reference", seed=5)[[*NUMERIC, SCENARIO_TARGET]].dropna()
    return df.iloc[:900].reset_index(drop=True), df.iloc[900:].reset_index(drop=True)


@pytest.fixture
def client() -> Any:
    import mlflow
    from mlflow import MlflowClient

    return MlflowClient(mlflow.get_tracking_uri())


def _plain_mlflow_run(train: pd.DataFrame) -> Any:
    """A scikit-learn model logged the way plain MLflow code does (skops, no mlcycle)."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    X, y = train[NUMERIC], train[SCENARIO_TARGET]
    model = LogisticRegression(max_iter=500).fit(X, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X, model.predict(X)),
            serialization_format="skops",
            pip_requirements=["scikit-learn", "skops"],
        )
    return info


def _cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def _write(frame: pd.DataFrame, path: Path) -> str:
    frame.to_parquet(path, index=False)
    return str(path)


def test_mlcycle_train_writes_the_contract_that_read_finds(client, tmp_path):
    from mlcycle.register.core import register
    from mlcycle.train import TrainConfig, train

    cfg = TrainConfig(
        data="scenario.csv", target=SCENARIO_TARGET, model="linear", onnx=False, plots=False
    )
    run_id = train(cfg, client, frame=make_scenario(600, "reference", seed=3)).run_id
    run = client.get_run(run_id)
    terms = contract.read(run.data.tags)
    assert (terms.target, terms.task) == (SCENARIO_TARGET, "classification")
    split = contract.load_eval_split(client, run_id, "the run")
    profile, sample = contract.load_reference_files(client, run_id, "the run")
    assert SCENARIO_TARGET in split.columns and "prediction" in sample.columns
    assert profile["target"] == SCENARIO_TARGET
    mv = register(client, run_id, "trained")
    assert mv.tags[contract.TAG_TARGET] == SCENARIO_TARGET


def test_a_plain_mlflow_version_needs_target_and_each_error_names_its_option(
    client, frames, tmp_path
):
    train, test = frames
    info = _plain_mlflow_run(train)
    res = _cli("register", "--run-id", info.run_id, "--name", "plain")
    assert res.exit_code == 0, res.output

    res = _cli("promote", "plain", "--version", "1")
    assert res.exit_code == 1
    assert "does not say which column it predicts" in res.output
    assert "--target" in res.output and "log_contract" in res.output

    res = _cli("gate", "plain", "--version", "1", "--target", SCENARIO_TARGET)
    assert res.exit_code == 1
    assert "no evaluation split" in res.output and "--eval-data" in res.output

    ref = _write(train, tmp_path / "ref.parquet")
    current = _write(test[NUMERIC], tmp_path / "cur.parquet")
    res = _cli("monitor", "--model", "plain", "--version", "1", "--current", current)
    assert res.exit_code == 1
    assert "no usable reference/" in res.output and "--reference" in res.output

    res = _cli(
        "monitor", "--model", "plain", "--version", "1", "--reference", ref, "--current", current
    )
    assert res.exit_code == 1
    assert "does not say which column" in res.output and "--target" in res.output


def test_use_time_options_take_a_plain_mlflow_model_through_gate_promote_and_monitor(
    client, frames, tmp_path
):
    train, test = frames
    info = _plain_mlflow_run(train)
    assert _cli("register", "--run-id", info.run_id, "--name", "plain").exit_code == 0
    eval_path = _write(test, tmp_path / "eval.parquet")
    res = _cli(
        "promote", "plain", "--target", SCENARIO_TARGET, "--eval-data", eval_path,
        "--min-score", "0.5",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output and "@champion" in res.output

    ref = _write(train, tmp_path / "ref.parquet")
    drifted = test[NUMERIC].assign(monthly_charges=test["monthly_charges"] * 3)
    current = _write(drifted, tmp_path / "cur.parquet")
    res = _cli(
        "monitor", "--model", "plain", "--reference", ref, "--target", SCENARIO_TARGET,
        "--current", current, "--output", str(tmp_path / "rep"),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "monthly_charges" in res.output and "DRIFT" in res.output
    # Used as given: the target is no feature of the reference.
    assert SCENARIO_TARGET not in [line.split()[0] for line in res.output.splitlines()[1:6]]


def test_log_contract_after_log_model_makes_the_version_need_no_options(client, frames, tmp_path):
    train, test = frames
    info = _plain_mlflow_run(train)
    written = mlcycle.log_contract(info, train, test, target=SCENARIO_TARGET, pos_label=1)
    assert written == contract.Contract(SCENARIO_TARGET, "classification", "1")
    tags = client.get_run(info.run_id).data.tags
    assert tags[contract.TAG_TARGET] == SCENARIO_TARGET
    assert tags[contract.TAG_POS_LABEL] == "1"
    _, sample = contract.load_reference_files(client, info.run_id, "the run")
    # The model was loaded through the trust policy and scored for prediction drift.
    assert set(sample["prediction"].unique()) <= {0, 1} and len(sample) == len(train)

    assert _cli("register", "--run-id", info.run_id, "--name", "own").exit_code == 0
    res = _cli("promote", "own", "--min-score", "0.5")
    assert res.exit_code == 0, res.output
    current = _write(test[NUMERIC], tmp_path / "cur.parquet")
    res = _cli("monitor", "--model", "own", "--current", current, "--output", str(tmp_path / "r"))
    assert res.exit_code == 0, res.output
    assert "status=" in res.output


def test_log_contract_refuses_what_it_cannot_use(frames):
    train, test = frames
    info = _plain_mlflow_run(train)
    with pytest.raises(DataError, match="log_contract needs the ModelInfo"):
        mlcycle.log_contract(42, train, test, target=SCENARIO_TARGET)
    with pytest.raises(DataError, match="pos_label 'yes' is not a class"):
        mlcycle.log_contract(info, train, test, target=SCENARIO_TARGET, pos_label="yes")
    with pytest.raises(DataError, match="lack the target column 'churned'"):
        mlcycle.log_contract(info, train, test[NUMERIC], target=SCENARIO_TARGET)


AUTOLOG_SCRIPT = textwrap.dedent(
    """
    import sys

    import mlflow
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    train = pd.read_parquet(sys.argv[1])
    mlflow.sklearn.autolog(log_input_examples=True, log_datasets=False)
    with mlflow.start_run() as run:
        LogisticRegression(max_iter=500).fit(train.drop(columns=["churned"]), train["churned"])
    print(run.info.run_id)
    """
)


@pytest.mark.slow
def test_register_adopts_an_autolog_run_logged_by_code_that_never_imports_mlcycle(
    client, frames, tmp_path
):
    train, test = frames
    ref = _write(train, tmp_path / "ref.parquet")
    eval_path = _write(test, tmp_path / "eval.parquet")
    script = tmp_path / "autolog_train.py"
    script.write_text(AUTOLOG_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), ref], capture_output=True, text=True, check=True
    )
    run_id = out.stdout.strip().splitlines()[-1]

    res = _cli("register", "--run-id", run_id, "--name", "auto", "--target", SCENARIO_TARGET)
    assert res.exit_code == 2 and "--reference is missing" in res.output
    res = _cli(
        "register", "--run-id", run_id, "--name", "auto", "--target", SCENARIO_TARGET,
        "--reference", ref, "--eval-data", eval_path,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    tags = client.get_model_version("auto", "1").tags
    assert tags[contract.TAG_TARGET] == SCENARIO_TARGET
    assert tags[contract.TAG_TASK] == "classification"

    # autolog pickles the model: the gate loads it only under the trust switch.
    res = _cli("promote", "auto")
    assert res.exit_code == 1 and "--allow-pickle" in res.output
    res = _cli("promote", "auto", "--allow-pickle", "--min-score", "0.5")
    assert res.exit_code == 0, res.output
    current = _write(test[NUMERIC], tmp_path / "cur.parquet")
    res = _cli("monitor", "--model", "auto", "--current", current, "--output", str(tmp_path / "r"))
    assert res.exit_code == 0, res.output


def test_monitor_target_without_reference_is_a_usage_error():
    res = _cli("monitor", "--model", "m", "--target", "y", "--current", "x.csv")
    assert res.exit_code == 2 and "give --reference" in res.output


def test_a_custom_python_model_goes_through_the_gate_only_under_allow_pickle(
    client, frames, tmp_path
):
    import mlflow
    from mlflow.models import infer_signature

    class Threshold(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return (model_input["support_calls"] > 2).astype(int)

    train, test = frames
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=Threshold(),
            signature=infer_signature(train[NUMERIC], train[SCENARIO_TARGET]),
            pip_requirements=["mlflow"],
        )
    # Without the switch the sample keeps no predictions (the model is not loaded)...
    mlcycle.log_contract(info, train, test, target=SCENARIO_TARGET)
    _, sample = contract.load_reference_files(client, info.run_id, "the run")
    assert "prediction" not in sample.columns
    assert _cli("register", "--run-id", info.run_id, "--name", "custom").exit_code == 0
    res = _cli("promote", "custom")
    assert res.exit_code == 1 and "--allow-pickle" in res.output
    assert client.get_registered_model("custom").aliases == {"challenger": 1}
    res = _cli("promote", "custom", "--allow-pickle", "--metric", "accuracy", "--min-score", "0.0")
    assert res.exit_code == 0, res.output
