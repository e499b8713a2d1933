"""Class probabilities from a pyfunc: one function for the gate, batch scoring and serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcycle.batch.pandas_engine import _proba_frame
from mlcycle.errors import DataError, ServingError
from mlcycle.proba import class_probabilities

X = pd.DataFrame({"calls": [0.0, 1.0, 3.0, 6.0]})
Y = pd.Series([0, 0, 1, 1])


def _python_model(tmp_path: Path, proba: bool) -> Any:
    import mlflow
    from mlflow.models import infer_signature

    class Calls(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            score = np.clip(model_input["calls"].to_numpy() / 6.0, 0.0, 1.0)
            if (params or {}).get("predict_method") == "predict_proba":
                return pd.DataFrame({"no": 1.0 - score, "yes": score})
            return pd.Series(np.where(score > 0.5, "yes", "no"))

    params = {"predict_method": "predict"} if proba else None
    path = tmp_path / ("proba" if proba else "labels")
    mlflow.pyfunc.save_model(
        path, python_model=Calls(), signature=infer_signature(X, Y, params=params)
    )
    return mlflow.pyfunc.load_model(str(path))


def test_an_sklearn_pyfunc_answers_with_predict_proba_and_its_classes(tmp_path: Path) -> None:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    sk = LogisticRegression().fit(X, Y)
    mlflow.sklearn.save_model(sk, tmp_path / "sk", serialization_format="skops")
    found = class_probabilities(mlflow.pyfunc.load_model(str(tmp_path / "sk")), X)
    assert found is not None
    np.testing.assert_allclose(found[0], sk.predict_proba(X))
    assert found[1].tolist() == [0, 1]


def test_a_python_model_answers_the_predict_method_param_or_gives_none(tmp_path: Path) -> None:
    found = class_probabilities(_python_model(tmp_path, proba=True), X)
    assert found is not None
    np.testing.assert_allclose(found[0][:, 1], [0.0, 1 / 6, 0.5, 1.0])
    assert found[1].tolist() == ["no", "yes"]
    assert class_probabilities(_python_model(tmp_path, proba=False), X) is None


def test_batch_scoring_asks_the_same_way_and_refuses_a_model_without_probabilities(
    tmp_path: Path,
) -> None:
    frame = _proba_frame(_python_model(tmp_path, proba=True), X, "t.csv")
    assert list(frame.columns) == ["proba_no", "proba_yes"]
    with pytest.raises(DataError, match="has no predict_proba"):
        _proba_frame(_python_model(tmp_path, proba=False), X, "t.csv")


def test_the_server_asks_a_pyfunc_the_same_way(tmp_path: Path) -> None:
    from mlcycle.serve.model import ModelRef, Predictor
    from mlcycle.serve.protocol import Column, InputSchema

    ref = ModelRef("m", "m", "1", "m")
    schema = InputSchema((Column("calls", "double", False),))
    columns = {"calls": X["calls"].to_numpy()}
    pred = Predictor(ref, schema, None, pyfunc=_python_model(tmp_path, proba=True))
    np.testing.assert_allclose(pred.predict_proba(columns)[:, 1], [0.0, 1 / 6, 0.5, 1.0])
    assert pred.proba_classes == ["no", "yes"]
    labels_only = Predictor(ref, schema, None, pyfunc=_python_model(tmp_path, proba=False))
    with pytest.raises(ServingError, match="gives no class probabilities"):
        labels_only.predict_proba(columns)
