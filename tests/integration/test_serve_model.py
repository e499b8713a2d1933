"""Loading real mlcycle models for serving: URI forms, the ONNX fast path, pickle refusal."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from serving_support import Registered, Store, train_and_register

from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from mlcycle.errors import ServingError
from mlcycle.serve import protocol
from mlcycle.serve.model import Predictor, load_predictor, resolve

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve_model")]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("serve-model"))


@pytest.fixture(scope="module")
def models(store: Store) -> dict[str, Registered]:
    frame = make_scenario(2000, period="reference", seed=3)
    return {
        "rf": train_and_register(
            store, "serve_rf", frame, SCENARIO_TARGET, "random_forest",
            time_column=SCENARIO_TIME, params={"n_estimators": "20"},
        ),
        "reg": train_and_register(
            store, "serve_reg", frame.drop(columns=[SCENARIO_TARGET]), "data_usage_gb", "linear",
            time_column=SCENARIO_TIME,
        ),
    }  # fmt: skip


def _columns(pred: Predictor, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    doc = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    body = json.dumps({"dataframe_records": doc}).encode()
    return protocol.parse_request(body, "application/json", pred.schema).columns


def _load(store: Store, uri: str, **kw: Any) -> Predictor:
    from mlflow import MlflowClient

    with store.active():
        return load_predictor(resolve(uri, MlflowClient(tracking_uri=store.uri)), **kw)


def _pyfunc(store: Store, uri: str, frame: pd.DataFrame) -> np.ndarray:
    import mlflow

    with store.active():
        return np.asarray(mlflow.pyfunc.load_model(uri).predict(frame))


@pytest.fixture(scope="module")
def drifted(models: dict[str, Registered]) -> pd.DataFrame:
    # Drifted rows (new prices, region mix) and missing charges: not what training checked.
    frame = make_scenario(600, period="both", seed=11).drop(columns=[SCENARIO_TIME])
    return frame


def test_a_verified_classifier_runs_on_onnx_with_sklearn_labels(store, models, drifted) -> None:
    pred = _load(store, "models:/serve_rf@champion")
    assert pred.backend == "onnx"
    X = drifted[list(pred.schema.names)]
    cols = _columns(pred, X)
    got = pred.predict(cols)
    want = _pyfunc(store, "models:/serve_rf@champion", pred.frame(cols))
    assert got.dtype == want.dtype and np.array_equal(got, want)
    assert X["monthly_charges"].isna().any()


def test_the_sklearn_path_matches_too_and_runs_forests_single_threaded(store, models, drifted):
    pred = _load(store, "models:/serve_rf@champion", use_onnx=False)
    assert pred.backend == "sklearn"
    assert pred.sk_model.named_steps["model"].n_jobs == 1
    X = drifted[list(pred.schema.names)]
    cols = _columns(pred, X)
    want = _pyfunc(store, "models:/serve_rf@champion", pred.frame(cols))
    assert np.array_equal(pred.predict(cols), want)


def test_regression_floats_equal_mlflow_exactly(store, models, drifted) -> None:
    pred = _load(store, "models:/serve_reg@champion")
    assert pred.backend == "sklearn" and not pred.is_classifier
    X = drifted[list(pred.schema.names)]
    cols = _columns(pred, X)
    got = pred.predict(cols)
    want = _pyfunc(store, "models:/serve_reg@champion", pred.frame(cols))
    assert got.dtype == np.float64 and np.array_equal(got, want)
    body = json.loads(protocol.predictions_body(got))
    assert all(isinstance(v, float) for v in body["predictions"])


def test_every_uri_form_resolves_to_the_same_model(store, models) -> None:
    from mlflow import MlflowClient

    with store.active():
        client = MlflowClient(tracking_uri=store.uri)
        mv = client.get_model_version("serve_rf", models["rf"].version)
        run_uri = f"runs:/{mv.run_id}/model"
        alias = resolve("models:/serve_rf@champion", client)
        stage = resolve("models:/serve_rf/Production", client)
        number = resolve(f"models:/serve_rf/{mv.version}", client)
        run = resolve(run_uri, client)
    assert (alias.name, alias.version, alias.follow, alias.follow_kind) == (
        "serve_rf",
        str(mv.version),
        "champion",
        "alias",
    )
    assert (stage.version, stage.follow, stage.follow_kind) == (
        str(mv.version),
        "Production",
        "stage",
    )
    assert number.version == str(mv.version) and number.follow is None
    assert run.version == mv.run_id
    X = models["rf"].features
    preds = [
        _load(store, uri).predict(_columns(_load(store, uri), X))
        for uri in ("models:/serve_rf@champion", "models:/serve_rf/Production", run_uri)
    ]
    assert all(np.array_equal(p, preds[0]) for p in preds)


def test_a_local_model_directory_is_served(store, models, tmp_path) -> None:
    import mlflow

    with store.active():
        local = mlflow.artifacts.download_artifacts(
            "models:/serve_rf@champion", dst_path=str(tmp_path)
        )
    pred = _load(store, local)
    assert pred.version == "local" and pred.backend == "onnx"


def test_unknown_models_are_model_not_found(store, models) -> None:
    from mlflow import MlflowClient

    from mlcycle.errors import ModelNotFound

    with store.active(), pytest.raises(ModelNotFound):
        resolve("models:/serve_rf@nobody", MlflowClient(tracking_uri=store.uri))


@pytest.fixture(scope="module")
def pickled_uri(store: Store, models) -> str:
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    with store.active():
        X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
        y = [0, 0, 1, 1]
        model = LogisticRegression().fit(X, y)
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model, name="model", signature=infer_signature(X, model.predict(X)),
                serialization_format="cloudpickle",
            )  # fmt: skip
    return info.model_uri


def test_a_pickled_model_is_refused_unless_allowed(store, pickled_uri) -> None:
    with pytest.raises(ServingError, match="allow-pickle"):
        _load(store, pickled_uri)
    pred = _load(store, pickled_uri, allow_pickle=True)
    X = pd.DataFrame({"a": [0.0, 3.0], "b": [1.0, 0.0]})
    assert pred.predict(_columns(pred, X)).tolist() == [0, 1]


def test_mlcycle_serve_refuses_a_pickled_model_with_exit_1(store, pickled_uri) -> None:
    from mlcycle.cli import cli

    with store.active():
        result = CliRunner().invoke(cli, ["serve", "--model", pickled_uri, "--port", "0"])
    assert result.exit_code == 1
    assert "--allow-pickle" in result.output


def test_a_version_registered_from_a_runs_uri_of_a_logged_model_is_served(tmp_path) -> None:
    """MLflow 3 keeps a logged model outside the run's artifacts: registering it from
    ``runs:/RUN/model`` (as many users' scripts do) must still serve."""
    import mlflow
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"a": np.arange(40, dtype=float), "b": np.arange(40, dtype=float) % 7})
    y = (frame["a"] > 20).astype(int)
    model = LogisticRegression().fit(frame, y)
    mlflow.set_experiment("byo-runs-uri")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="skops",
            input_example=frame.head(2),
            pip_requirements=["scikit-learn"],
        )
    client = MlflowClient()
    client.create_registered_model("byo_runs")
    client.create_model_version("byo_runs", f"runs:/{run.info.run_id}/model", run.info.run_id)
    pred = load_predictor(resolve("models:/byo_runs/1", client), dst=str(tmp_path / "dl"))
    parsed = protocol.parse_request(
        json.dumps(
            {"dataframe_split": {"columns": ["a", "b"], "data": [[30.0, 2.0], [1.0, 1.0]]}}
        ).encode(),
        "application/json",
        pred.schema,
    )
    assert list(pred.predict(parsed.columns)) == [1, 0]
