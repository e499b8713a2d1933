"""XGBoost, LightGBM and the user's own estimator after mlcycle's preprocessing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer, load_diabetes

from mlcycle import trust
from mlcycle.cli import cli
from mlcycle.errors import ConfigError, UntrustedModel
from mlcycle.serve.model import load_predictor, resolve
from mlcycle.train import TrainConfig, pipelines, train

USER_MODULE = '''
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.linear_model import LogisticRegression


def extra_trees():
    return ExtraTreesClassifier(n_estimators=20, random_state=0)


extra_trees.search_space = {"n_estimators": [10, 20], "max_depth": [None, 4]}


class Centroid(ClassifierMixin, BaseEstimator):
    """A class skops has never reviewed."""

    def __init__(self, scale=1.0):
        self.scale = scale

    def fit(self, X, y):
        X = np.asarray(X, dtype=float)
        self.classes_ = np.unique(y)
        self.centres_ = np.stack([X[np.asarray(y) == c].mean(axis=0) for c in self.classes_])
        return self

    def predict_proba(self, X):
        d = -((np.asarray(X, dtype=float)[:, None, :] - self.centres_) ** 2).sum(axis=2)
        e = np.exp((d - d.max(axis=1, keepdims=True)) * self.scale)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def centroid():
    return Centroid()


def not_an_estimator():
    return "a string"


def raises():
    raise RuntimeError("no licence server")


def fitted():
    return LogisticRegression().fit([[0.0], [1.0]], [0, 1])


NOT_CALLABLE = 3
'''


@pytest.fixture
def user_module(tmp_path: Path) -> str:
    # The working directory is tmp_path (conftest): `mlcycle train` imports from there.
    (tmp_path / "user_estimators.py").write_text(USER_MODULE)
    sys.modules.pop("user_estimators", None)
    return "user_estimators"


@pytest.fixture
def cancer_csv(tmp_path: Path) -> str:
    path = tmp_path / "cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(path, index=False)
    return str(path)


def _features(csv: str, target: str) -> pd.DataFrame:
    return pd.read_csv(csv).drop(columns=[target]).head(20)


def _requirements(model_uri: str) -> str:
    return Path(mlflow.artifacts.download_artifacts(model_uri + "/requirements.txt")).read_text()


def _artifacts(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    out: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return out


@pytest.mark.parametrize("model", ["xgboost", "lightgbm"])
def test_a_boosted_classifier_is_tracked_like_any_model_and_loads_under_the_trust_policy(
    model: str, cancer_csv: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip(model)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    client = MlflowClient()
    result = train(TrainConfig(data=cancer_csv, target="target", model=model), client)
    run = client.get_run(result.run_id)
    assert run.data.params["model"] == model
    assert result.metrics["test_roc_auc"] > 0.95
    files = _artifacts(client, result.run_id)
    assert {"plots/roc_curve.svg", "reference/profile.json", "onnx/check.json"} <= files
    assert f"{model}==" in _requirements(result.runs_uri)
    info = mlflow.models.get_model_info(result.runs_uri)
    assert info.signature is not None
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    # The default policy (no --allow-pickle) loads it: its skops types are reviewed.
    loaded = trust.load_pyfunc(result.model_uri, "the model")
    X = _features(cancer_csv, "target")
    assert len(loaded.predict(X)) == len(X)


@pytest.mark.parametrize("model", ["xgboost", "lightgbm"])
def test_a_boosted_classifier_gets_an_exact_onnx_copy_that_the_fast_path_serves(
    model: str, tmp_path: Path
) -> None:
    pytest.importorskip(model)
    pytest.importorskip("onnxmltools")
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    path = tmp_path / "cancer.csv"
    frame.to_csv(path, index=False)
    client = MlflowClient()
    result = train(TrainConfig(data=str(path), target="target", model=model), client)
    assert result.onnx_exact and result.onnx_note == "exact copy logged"
    assert "onnx/model.onnx" in _artifacts(client, result.run_id)
    predictor = load_predictor(resolve(result.model_uri, client))
    assert predictor.backend == "onnx"
    X = _features(str(path), "target")
    onnx_labels = predictor.predict({c: X[c].to_numpy() for c in X.columns})
    sklearn_labels = trust.load_pyfunc(result.model_uri, "the model").predict(X)
    assert list(onnx_labels) == list(sklearn_labels)


def test_lightgbm_regression_and_an_xgboost_search_run(tmp_path: Path) -> None:
    pytest.importorskip("lightgbm")
    pytest.importorskip("xgboost")
    path = tmp_path / "diabetes.csv"
    load_diabetes(as_frame=True).frame.to_csv(path, index=False)
    reg = train(
        TrainConfig(data=str(path), target="target", model="lgbm", plots=False),
        MlflowClient(),
    )
    assert reg.task == "regression" and "test_rmse" in reg.metrics
    search = train(
        TrainConfig(
            data=str(path), target="target", model="xgb", trials=2, onnx=False, plots=False
        ),
        MlflowClient(),
    )
    assert len(search.child_run_ids) == 2
    child = MlflowClient().get_run(search.child_run_ids[0]).data.params
    assert {"model__learning_rate", "model__max_depth", "model__n_estimators"} <= set(child)


def test_xgboost_refuses_labels_other_than_0_to_n_before_any_run(tmp_path: Path) -> None:
    pytest.importorskip("xgboost")
    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    path = tmp_path / "labels.csv"
    frame.to_csv(path, index=False)
    res = CliRunner().invoke(
        cli, ["train", "--data", str(path), "--target", "target", "--model", "xgboost"]
    )
    assert res.exit_code == 1
    assert "--model xgboost needs class labels 0..1" in res.output
    assert "--model lightgbm" in res.output
    assert mlflow.search_runs(search_all_experiments=True).empty


@pytest.mark.parametrize("extra", ["xgboost", "lightgbm"])
def test_a_boosted_model_without_its_extra_names_the_install_and_exits_1(
    extra: str, cancer_csv: str, tmp_path: Path
) -> None:
    args = ["train", "--data", cancer_csv, "--target", "target", "--model", extra]
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules[{extra!r}] = None
        from mlcycle.cli import cli
        cli({args!r}, prog_name="mlcycle")
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert res.returncode == 1, res.stderr
    assert f"pip install 'mlcycle[{extra}]'" in res.stderr
    assert f"--model {extra}" in res.stderr and "Traceback" not in res.stderr


def test_a_user_estimator_is_fitted_after_the_preprocessing_and_saved_with_skops(
    user_module: str, cancer_csv: str
) -> None:
    res = CliRunner().invoke(
        cli,
        [
            *("train", "--data", cancer_csv, "--target", "target"),
            *("--estimator", f"{user_module}:extra_trees", "--param", "n_estimators=7", "--json"),
        ],
    )
    assert res.exit_code == 0, res.output
    run_id = json.loads(res.stdout)["run_id"]
    run = MlflowClient().get_run(run_id)
    assert run.data.params["model"] == f"{user_module}:extra_trees"
    assert run.data.params["model__n_estimators"] == "7"
    uri = f"runs:/{run_id}/model"
    loaded = trust.load_sklearn(*trust.fetch_model(uri, uri))
    assert [name for name, _ in loaded.steps] == ["preprocess", "model"]
    assert type(loaded.named_steps["model"]).__name__ == "ExtraTreesClassifier"
    assert loaded.named_steps["model"].n_estimators == 7


def test_a_user_estimator_is_searched_over_its_own_search_space(
    user_module: str, cancer_csv: str
) -> None:
    result = train(
        TrainConfig(
            data=cancer_csv,
            target="target",
            model=f"{user_module}:extra_trees",
            trials=2,
            plots=False,
            onnx=False,
        ),
        MlflowClient(),
    )
    params = [MlflowClient().get_run(r).data.params for r in result.child_run_ids]
    assert all(p["model__n_estimators"] in ("10", "20") for p in params)
    assert all(p["model__max_depth"] in ("None", "4") for p in params)


def test_a_user_estimator_without_a_search_space_cannot_be_searched(
    user_module: str, cancer_csv: str
) -> None:
    with pytest.raises(ConfigError, match=r"--estimator .* cannot be searched .*search_space"):
        train(
            TrainConfig(
                data=cancer_csv,
                target="target",
                model=f"{user_module}:centroid",
                trials=2,
                allow_pickle=True,
            ),
            MlflowClient(),
        )


def test_an_unreviewed_user_class_needs_allow_pickle_and_then_loads_only_with_it(
    user_module: str, cancer_csv: str
) -> None:
    base = ["train", "--data", cancer_csv, "--target", "target"]
    refused = CliRunner().invoke(cli, [*base, "--estimator", f"{user_module}:centroid"])
    assert refused.exit_code == 1
    assert "user_estimators.Centroid" in refused.output and "--allow-pickle" in refused.output
    assert mlflow.search_runs(search_all_experiments=True).empty
    ok = CliRunner().invoke(
        cli, [*base, "--estimator", f"{user_module}:centroid", "--allow-pickle", "--json"]
    )
    assert ok.exit_code == 0, ok.output
    run_id = json.loads(ok.stdout)["run_id"]
    uri = f"runs:/{run_id}/model"
    info = mlflow.models.get_model_info(uri)
    assert info.flavors["sklearn"]["serialization_format"] == "cloudpickle"
    assert "cloudpickle==" in _requirements(uri)
    with pytest.raises(UntrustedModel, match="cloudpickle"):
        trust.load_pyfunc(uri, uri)
    loaded = trust.load_pyfunc(uri, uri, allow_pickle=True)
    assert set(loaded.predict(_features(cancer_csv, "target"))) <= {0, 1}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:make", "cannot import module 'no_such_module_xyz'"),
        ("user_estimators:missing", "module 'user_estimators' has no 'missing'"),
        ("user_estimators:NOT_CALLABLE", "'NOT_CALLABLE' is not callable"),
        ("user_estimators:not_an_estimator", "returned str, not a scikit-learn classifier"),
        ("user_estimators:raises", "calling it raised RuntimeError: no licence server"),
        ("user_estimators:fitted", "returned a fitted LogisticRegression"),
    ],
)
def test_a_bad_estimator_exits_1_naming_the_option_and_leaves_no_run(
    user_module: str, cancer_csv: str, spec: str, message: str
) -> None:
    res = CliRunner().invoke(
        cli, ["train", "--data", cancer_csv, "--target", "target", "--estimator", spec]
    )
    assert res.exit_code == 1, res.output
    assert f"--estimator '{spec}'" in res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert mlflow.search_runs(search_all_experiments=True).empty


@pytest.mark.parametrize(
    "spec", ["os:abort", "posix:system", "subprocess:getoutput", "builtins:exit"]
)
def test_an_estimator_from_the_standard_library_is_refused_without_calling_it(
    cancer_csv: str, spec: str
) -> None:
    # A subprocess: before, os:abort was called and killed the process (SIGABRT).
    res = subprocess.run(
        [sys.executable, "-m", "mlcycle", "train", "--data", cancer_csv, "--target", "target",
         "--estimator", spec],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "is Python's standard library, not your estimator module" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--estimator", "nocolon"], "no ':' between the module and the callable"),
        (["--estimator", "a:b:c"], "more than one ':'"),
        (["--estimator", ":make"], "the module before ':' is empty"),
        (["--estimator", "user_estimators:"], "the callable after ':' is empty"),
        (["--estimator", "os:system"], "'os' is Python's standard library"),
        (["--estimator", "a:b", "--model", "rf"], "give --model or --estimator, not both"),
    ],
)
def test_a_malformed_estimator_is_a_usage_error_exiting_2_and_naming_the_problem(
    cancer_csv: str, args: list[str], message: str
) -> None:
    res = CliRunner().invoke(cli, ["train", "--data", cancer_csv, "--target", "target", *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
    if "--model" not in args:
        assert f"Invalid value for '--estimator': '{args[1]}'" in res.output
    assert mlflow.search_runs(search_all_experiments=True).empty


def test_a_malformed_estimator_stored_on_a_run_is_refused_by_the_stage_too() -> None:
    """The spec also comes back from a run's 'model' param, past the CLI's check."""
    with pytest.raises(ConfigError, match=r"--estimator 'a:b:c' is not MODULE:CALLABLE"):
        pipelines.resolve_estimator("a:b:c")
