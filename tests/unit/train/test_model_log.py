"""The faster model logging: the same guarantees as mlflow.sklearn.log_model, locally and on S3."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlcycle import trust
from mlcycle.errors import TrainingError
from mlcycle.train import pip_requirements, pipelines
from mlcycle.train.model_log import log_sklearn_model


@pytest.fixture(scope="module")
def fitted() -> tuple[Pipeline, pd.DataFrame]:
    frame = load_breast_cancer(as_frame=True).frame
    X, y = frame.drop(columns="target"), frame["target"]
    pipe = Pipeline(
        [("scale", StandardScaler()), ("model", RandomForestClassifier(10, random_state=0))]
    )
    return pipe.fit(X, y), X


def _log(
    pipe: Pipeline,
    X: pd.DataFrame,
    tmp_path: Path,
    example: pd.DataFrame | None = None,
    experiment_id: str | None = None,
):
    client = MlflowClient()
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = log_sklearn_model(
            client,
            run.info.run_id,
            pipe,
            name="model",
            signature=infer_signature(X.head(5), pipe.predict(X.head(5))),
            input_example=X.head(5) if example is None else example,
            pip_requirements=pip_requirements(),
            trusted_types=pipelines.trusted_types(pipe),
            metadata={"mlcycle": {"target": "target"}},
            extra_files=None,
            workdir=tmp_path,
        )
    return client, run.info.run_id, info


def _check_the_logged_model(client: MlflowClient, run_id: str, info, X: pd.DataFrame) -> None:
    logged = client.get_logged_model(info.model_id)
    assert logged.status == LoggedModelStatus.READY
    assert logged.source_run_id == run_id
    assert logged.name == "model"
    outputs = client.get_run(run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [info.model_id]
    expected = np.asarray(mlflow.pyfunc.load_model(info.model_uri).predict(X.head(20)), dtype=float)
    # The run's URI (what `mlcycle register`/`serve` and users of MLflow 2 write) works too.
    by_run = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(X.head(20))
    assert np.array_equal(np.asarray(by_run, dtype=float), expected)
    model_info = mlflow.models.get_model_info(info.model_uri)
    assert [c.name for c in model_info.signature.inputs.inputs] == list(X.columns)
    assert model_info.metadata == {"mlcycle": {"target": "target"}}
    local = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    assert (local / "input_example.json").exists()
    assert (local / "serving_input_example.json").exists()
    assert (local / "requirements.txt").read_text().split() == pip_requirements()
    # mlcycle's trust policy loads it: skops with reviewed types only.
    checked, mlmodel = trust.fetch_model(str(local), info.model_uri)
    sk = trust.load_sklearn(checked, mlmodel)
    assert np.array_equal(np.asarray(sk.predict(X.head(20)), dtype=float), expected)


def test_a_model_logged_to_a_local_store_loads_by_model_id_and_by_run(
    fitted: tuple[Pipeline, pd.DataFrame], tmp_path: Path
) -> None:
    pipe, X = fitted
    client, run_id, info = _log(pipe, X, tmp_path)
    _check_the_logged_model(client, run_id, info, X)
    # Saved in place in the artifact store: nothing left in the private work directory.
    assert not (tmp_path / "model-upload").exists()


def test_a_forest_is_saved_whole_though_only_a_one_tree_copy_is_loaded_back(
    fitted: tuple[Pipeline, pd.DataFrame], tmp_path: Path
) -> None:
    pipe, X = fitted
    _, _, info = _log(pipe, X, tmp_path)
    local = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    checked, mlmodel = trust.fetch_model(str(local), info.model_uri)
    sk = trust.load_sklearn(checked, mlmodel)
    assert len(sk.steps[-1][1].estimators_) == 10
    assert np.array_equal(sk.predict(X), pipe.predict(X))
    # The MLmodel's size counts the whole forest's file, not the one-tree copy's.
    skops_bytes = (local / "model.skops").stat().st_size
    assert mlflow.models.Model.load(str(local)).model_size_bytes >= skops_bytes
    one_tree = len(sio.dumps(pipe.steps[-1][1].estimators_[0]))
    assert skops_bytes > 5 * one_tree


def test_a_model_logged_to_s3_is_uploaded_and_loads(
    fitted: tuple[Pipeline, pd.DataFrame], tmp_path: Path, s3_bucket: str
) -> None:
    pipe, X = fitted
    exp = mlflow.create_experiment("on-s3", artifact_location=f"s3://{s3_bucket}/artifacts")
    client, run_id, info = _log(pipe, X, tmp_path, experiment_id=exp)
    assert info.artifact_location.startswith(f"s3://{s3_bucket}/")
    _check_the_logged_model(client, run_id, info, X)


def test_an_input_example_that_cannot_serve_fails_the_model_not_the_check(
    fitted: tuple[Pipeline, pd.DataFrame], tmp_path: Path
) -> None:
    pipe, X = fitted
    bad = X.head(5).drop(columns=["mean radius"])
    with pytest.raises(TrainingError, match="input example does not serve"):
        _log(pipe, X, tmp_path, example=bad)
    client = MlflowClient()
    [logged] = client.search_logged_models(
        experiment_ids=[mlflow.get_experiment_by_name("Default").experiment_id]
    )
    assert logged.status == LoggedModelStatus.FAILED


def test_only_ensembles_of_one_estimator_class_are_cut_to_one_member() -> None:
    from sklearn.ensemble import GradientBoostingClassifier, VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    from mlcycle.train.persist import type_proxy

    frame = load_breast_cancer(as_frame=True).frame
    X, y = frame.drop(columns="target"), frame["target"]

    def fit(model) -> Pipeline:
        return Pipeline([("scale", StandardScaler()), ("model", model)]).fit(X, y)

    boosted = fit(GradientBoostingClassifier(n_estimators=3))  # a 2-D array of trees
    assert type_proxy(boosted).steps[-1][1].estimators_.shape == (1, 1)
    mixed = fit(
        VotingClassifier([("a", LogisticRegression(max_iter=50)), ("b", DecisionTreeClassifier())])
    )
    # One member's types would not show the other's: the whole model is saved and loaded.
    assert type_proxy(mixed) is mixed


def test_dump_skops_writes_skops_own_archive_and_skops_loads_it(
    fitted: tuple[Pipeline, pd.DataFrame], tmp_path: Path
) -> None:
    import hashlib
    import json
    import zipfile

    from mlcycle.train.persist import dump_skops

    pipe, X = fitted
    ours, theirs = tmp_path / "ours.skops", tmp_path / "theirs.skops"
    dump_skops(pipe, ours)
    sio.dump(pipe, theirs)
    def content(path: Path) -> object:
        # Arrays are stored under the id() of objects alive while saving, and nodes carry
        # such ids (``__id__``), which differ between two dumps: name each entry by its
        # bytes instead, in the schema too, and leave the node ids out.
        with zipfile.ZipFile(path) as z:
            digests = {n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist()}
            schema = json.loads(z.read("schema.json"))

        def rename(node: object) -> object:
            if isinstance(node, dict):
                return {k: rename(v) for k, v in node.items() if k != "__id__"}
            if isinstance(node, list):
                return [rename(v) for v in node]
            return digests.get(node, node) if isinstance(node, str) else node

        return rename(schema), sorted(d for n, d in digests.items() if n != "schema.json")

    assert content(ours) == content(theirs)
    types = sio.get_untrusted_types(file=ours)
    assert types == sio.get_untrusted_types(file=theirs)
    loaded = sio.load(ours, trusted=types)
    assert (loaded.predict_proba(X) == pipe.predict_proba(X)).all()
