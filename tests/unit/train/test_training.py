"""Tracked training: what a run logs, determinism, searches, and failures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from mlcycle.cli import cli
from mlcycle.errors import ConfigError, TrainingError
from mlcycle.train import TrainConfig, pip_requirements, train


def _csv(frame: pd.DataFrame, path: Path) -> str:
    frame.to_csv(path, index=False)
    return str(path)


@pytest.fixture
def cancer_csv(tmp_path: Path) -> str:
    return _csv(load_breast_cancer(as_frame=True).frame, tmp_path / "cancer.csv")


@pytest.fixture
def diabetes_csv(tmp_path: Path) -> str:
    return _csv(load_diabetes(as_frame=True).frame, tmp_path / "diabetes.csv")


def _artifacts(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    out: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            out |= _artifacts(client, run_id, item.path)
        else:
            out.add(item.path)
    return out


def test_a_classification_run_logs_everything_a_user_compares(cancer_csv: str) -> None:
    client = MlflowClient()
    result = train(TrainConfig(data=cancer_csv, target="target", model="linear"), client)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    for split in ("train", "val", "test"):
        for metric in ("accuracy", "f1", "roc_auc", "log_loss"):
            assert f"{split}_{metric}" in run.data.metrics
    assert run.data.metrics["test_roc_auc"] > 0.95
    assert run.data.params["model"] == "linear"
    assert run.data.params["model__C"] == "1.0"
    tags = run.data.tags
    assert tags["mlcycle.task"] == "classification"
    assert tags["mlcycle.target"] == "target"
    assert len(tags["mlcycle.data_digest"]) == 16
    assert tags["mlcycle.version"]
    files = _artifacts(client, result.run_id)
    assert {
        "plots/confusion_matrix.svg",
        "plots/roc_curve.svg",
        "plots/feature_importance.svg",
    } <= files
    assert {"reference/sample.parquet", "reference/profile.json", "reference/test.parquet"} <= files
    assert "onnx/check.json" in files
    # Dataset lineage: the training table with its digest.
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.digest
    assert inputs[0].tags[0].value == "training"


def test_the_logged_model_has_signature_example_requirements_and_predicts(cancer_csv: str) -> None:
    client = MlflowClient()
    result = train(
        TrainConfig(
            data=cancer_csv, target="target", model="random_forest", params={"n_estimators": 20}
        ),
        client,
    )
    info = mlflow.models.get_model_info(result.runs_uri)
    assert info.signature is not None
    assert [c.name for c in info.signature.inputs.inputs][:2] == ["mean radius", "mean texture"]
    local = Path(mlflow.artifacts.download_artifacts(result.model_uri))
    assert (local / "input_example.json").exists()
    reqs = (local / "requirements.txt").read_text().split()
    assert reqs == pip_requirements()
    assert (local / "model.skops").exists()
    model = mlflow.pyfunc.load_model(result.runs_uri)
    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(20)
    assert set(np.unique(model.predict(frame))) <= {0, 1}


def test_a_regression_run_on_diabetes_logs_rmse_mae_r2_and_residuals(diabetes_csv: str) -> None:
    client = MlflowClient()
    result = train(
        TrainConfig(
            data=diabetes_csv,
            target="target",
            model="hist_gradient_boosting",
            params={"max_iter": 50},
        ),
        client,
    )
    assert result.task == "regression"
    for metric in ("test_rmse", "test_mae", "test_r2"):
        assert metric in result.metrics
    assert result.metrics["test_r2"] > 0.2
    files = _artifacts(client, result.run_id)
    assert {"plots/residuals.svg", "plots/predicted_vs_actual.svg"} <= files


def test_the_scenario_trains_with_a_time_split_and_an_exact_onnx_copy(scenario_csv: Path) -> None:
    client = MlflowClient()
    result = train(
        TrainConfig(
            data=str(scenario_csv), target="churned", time_column="event_time", model="linear"
        ),
        client,
    )
    assert result.onnx_exact
    local = Path(mlflow.artifacts.download_artifacts(result.model_uri))
    assert (local / "extra_files" / "model.onnx").exists()
    meta = mlflow.models.Model.load(local).metadata["mlcycle"]
    assert meta["onnx"] == "model.onnx" and meta["time_column"] == "event_time"
    check = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=result.run_id, artifact_path="onnx/check.json"
            )
        ).read_text()
    )
    assert check["exact"] and check["rows_checked"] > 0 and check["label_mismatches"] == 0
    profile = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=result.run_id, artifact_path="reference/profile.json"
            )
        ).read_text()
    )
    assert profile["columns"]["region"]["type"] == "categorical"
    assert sum(profile["columns"]["age"]["bin_counts"]) > 0


def test_the_same_seed_and_data_give_the_same_metrics(scenario_csv: Path) -> None:
    client = MlflowClient()
    cfg = TrainConfig(
        data=str(scenario_csv),
        target="churned",
        model="random_forest",
        params={"n_estimators": 15},
        seed=7,
        onnx=False,
        plots=False,
    )
    a, b = train(cfg, client), train(cfg, client)
    assert a.metrics == b.metrics
    c = train(TrainConfig(**{**cfg.__dict__, "seed": 8}), client)
    assert c.metrics != a.metrics


def test_a_search_logs_each_trial_as_a_nested_run_and_keeps_the_best(tmp_path: Path) -> None:
    client = MlflowClient()
    data = _csv(load_iris(as_frame=True).frame, tmp_path / "iris.csv")
    seen: list[int] = []
    result = train(
        TrainConfig(data=data, target="target", model="linear", trials=3, plots=False),
        client,
        on_trial=lambda i, n, m: seen.append(i),
    )
    assert seen == [1, 2, 3]
    assert len(result.child_run_ids) == 3
    children = [client.get_run(r) for r in result.child_run_ids]
    assert all(c.data.tags["mlflow.parentRunId"] == result.run_id for c in children)
    best = client.get_run(result.run_id).data.tags["mlcycle.best_trial_run_id"]
    best_auc = max(c.data.metrics["val_roc_auc"] for c in children)
    assert client.get_run(best).data.metrics["val_roc_auc"] == best_auc
    assert client.get_run(result.run_id).data.metrics["best_val_roc_auc"] == best_auc
    assert "test_roc_auc" in result.metrics  # the test split is scored once, for the best


def test_unknown_estimator_parameters_are_refused_before_any_run(scenario_csv: Path) -> None:
    with pytest.raises(ConfigError, match="no parameter 'depth'"):
        train(
            TrainConfig(
                data=str(scenario_csv), target="churned", model="rf", params={"depth": "3"}
            ),
            MlflowClient(),
        )
    assert mlflow.search_runs(search_all_experiments=True).empty


def test_a_fit_that_fails_ends_the_run_failed_not_running(scenario_csv: Path) -> None:
    with pytest.raises(TrainingError):
        train(
            TrainConfig(
                data=str(scenario_csv), target="churned", model="linear", params={"max_iter": "-3"}
            ),
            MlflowClient(),
        )
    runs = mlflow.search_runs(search_all_experiments=True)
    assert list(runs["status"]) == ["FAILED"]


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("a,b\n1,2\n3,4\n", ["--target", "y"], "target column 'y' is not in the data"),
        ("", ["--target", "y"], "is empty"),
        ("a,y\n1,k\n2,k\n3,k\n", ["--target", "y"], "single class"),
        ("a,b,y\n,1,0\n,2,1\n,3,0\n", ["--target", "y"], "column 'a' is entirely missing"),
        ("a,y\n1,0\n", ["--target", "y", "--model", "catboost"], "unknown model 'catboost'"),
        (
            "age,y\n" + "".join(f"{20 + i},{i % 2}\n" for i in range(40)) + "unknown,1\n",
            ["--target", "y"],
            "column 'age' is numeric except 1 value(s) such as 'unknown'",
        ),
        ("age,age,y\n1,2,0\n3,4,1\n", ["--target", "y"], "repeats column name(s) 'age'"),
        (
            "a,y\n1,0\n2,1\n3,0\n4,1\n5,0\n",
            ["--target", "y"],
            "the test split (15%) needs at least 5 rows, so at least 31 rows",
        ),
    ],
)
def test_bad_data_exits_non_zero_with_the_reason_and_leaves_no_run(
    tmp_path: Path, content: str, args: list[str], message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    res = CliRunner().invoke(cli, ["train", "--data", str(path), *args])
    assert res.exit_code == 1, res.output
    assert message in res.output
    assert mlflow.search_runs(
        search_all_experiments=True, filter_string="attributes.status = 'RUNNING'"
    ).empty


def test_categorical_option_trains_on_a_column_with_placeholders(tmp_path: Path) -> None:
    rows = [f"{'unknown' if i % 9 == 0 else 20 + i % 50},{i % 2}" for i in range(120)]
    path = tmp_path / "mixed.csv"
    path.write_text("age,y\n" + "\n".join(rows) + "\n")
    res = CliRunner().invoke(
        cli,
        [
            *("train", "--data", str(path), "--target", "y"),
            *("--model", "linear", "--categorical", "age"),
        ],
    )
    assert res.exit_code == 0, res.output
    run_id = re.search(r"run\s+([0-9a-f]{32})", res.output).group(1)  # type: ignore[union-attr]
    assert MlflowClient().get_run(run_id).data.tags["mlcycle.target"] == "y"


def test_an_unreadable_file_exits_non_zero(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli, ["train", "--data", str(tmp_path / "missing.parquet"), "--target", "y"]
    )
    assert res.exit_code == 1
    assert "does not exist" in res.output


def test_usage_errors_exit_2() -> None:
    res = CliRunner().invoke(cli, ["train", "--data", "x.csv"])
    assert res.exit_code == 2
    assert "--target" in res.output


def test_the_cli_prints_a_summary_with_run_model_and_ui(scenario_csv: Path) -> None:
    res = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(scenario_csv),
            "--target",
            "churned",
            "--model",
            "linear",
            "--trials",
            "2",
            "--param",
            "max_iter=300",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert "search     2 trials" in res.output
    assert "test_roc_auc=" in res.output
    assert "mlflow ui --backend-store-uri sqlite:///" in res.output
    run_id = re.search(r"run\s+([0-9a-f]{32})", res.output).group(1)  # type: ignore[union-attr]
    assert MlflowClient().get_run(run_id).data.params["model__max_iter"] == "300"


def test_saved_models_load_with_only_reviewed_skops_types(
    scenario_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlcycle.train.pipelines import load_reviewed_skops

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    result = train(
        TrainConfig(
            data=str(scenario_csv),
            target="churned",
            model="rf",
            params={"n_estimators": 5},
            plots=False,
        ),
        MlflowClient(),
    )
    local = Path(mlflow.artifacts.download_artifacts(result.model_uri))
    model = load_reviewed_skops(str(local / "model.skops"))
    X = pd.read_csv(scenario_csv).drop(columns=["churned", "event_time"]).head(5)
    assert len(model.predict(X)) == 5
    with pytest.raises(Exception, match="MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        mlflow.sklearn.load_model(str(local))


def test_a_model_needing_an_unreviewed_type_is_refused(tmp_path: Path) -> None:
    import os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from mlcycle.train.pipelines import load_reviewed_skops

    path = tmp_path / "m.skops"
    sio.dump(FunctionTransformer(func=os.getcwd), path)  # needs 'posix.getcwd': never reviewed
    with pytest.raises(TrainingError, match="not reviewed as safe"):
        load_reviewed_skops(str(path))


def test_onnx_is_reported_as_it_happened(scenario_csv: Path) -> None:
    base = ["train", "--data", str(scenario_csv), "--target", "churned"]
    hgb = CliRunner().invoke(cli, [*base, "--model", "hgb"])
    assert hgb.exit_code == 0, hgb.output
    assert "onnx       not attempted: skl2onnx cannot convert" in hgb.output
    run_id = re.search(r"run\s+([0-9a-f]{32})", hgb.output).group(1)  # type: ignore[union-attr]
    assert "onnx_max_abs_diff" not in MlflowClient().get_run(run_id).data.metrics

    linear = CliRunner().invoke(cli, [*base, "--model", "linear"])
    assert "onnx       exact copy logged" in linear.output
    run_id = re.search(r"run\s+([0-9a-f]{32})", linear.output).group(1)  # type: ignore[union-attr]
    assert MlflowClient().get_run(run_id).data.metrics["onnx_max_abs_diff"] < 1e-4


def test_an_onnx_check_of_no_rows_claims_nothing(tmp_path: Path) -> None:
    from mlcycle.data import infer_spec, prepare_features
    from mlcycle.train import onnx_export, pipelines

    frame = load_iris(as_frame=True).frame
    spec = infer_spec(frame, "target", task="classification")
    X = prepare_features(frame, spec)
    pipe = pipelines.build_pipeline(spec, "linear", {}).fit(X, frame["target"])
    blob, check = onnx_export.convert(pipe, spec, X.head(0))
    assert blob is None and not check.exact and check.rows_checked == 0


def test_train_register_as_prints_the_version_as_register_does(cancer_csv: str) -> None:
    from click.testing import CliRunner

    from mlcycle.cli import cli

    result = CliRunner().invoke(
        cli,
        ["train", "--data", cancer_csv, "--target", "target", "--model", "linear",
         "--no-onnx", "--register-as", "cancer"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # The same words and order as `mlcycle register`.
    assert "registered cancer version 1 (Staging, @challenger)" in result.output


def test_the_modules_the_model_logging_needs_can_be_imported_ahead_in_a_cold_process() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from mlcycle.train import record\n"
        "ahead = [m for m in record.AFTER_FIT_MODULES if m not in sys.modules]\n"
        "assert ahead, 'nothing left to import ahead'\n"
        "record.import_after_fit_modules(onnx=True)\n"
        "from mlcycle.extras import MODULES, available\n"
        "onnx = MODULES['onnx'] if available(*MODULES['onnx']) else ()\n"
        "missing = [m for m in (*ahead, *onnx) if m not in sys.modules]\n"
        "assert not missing, missing\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=0)


def test_the_fit_leaves_one_core_of_blas_to_the_data_side_and_restores_it(
    cancer_csv: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The data side runs in a thread beside the fit; BLAS on every core too oversubscribes
    # them (docs/benchmarks.md). One thread fewer during the fit, the user's count after.
    from threadpoolctl import threadpool_limits

    from mlcycle.train import trial

    seen: list[int] = []
    fit = trial.fit

    def watching(*args, **kwargs):
        seen.append(_blas_threads())
        return fit(*args, **kwargs)

    monkeypatch.setattr(trial, "fit", watching)
    before = _blas_threads()
    cfg = TrainConfig(data=cancer_csv, target="target", model="linear", onnx=False, plots=False)
    train(cfg, MlflowClient())
    assert seen == [max(1, before - 1)] and _blas_threads() == before
    with threadpool_limits(1, user_api="blas"):  # a user's own limit stays
        train(cfg, MlflowClient())
        assert seen[-1] == 1 and _blas_threads() == 1
