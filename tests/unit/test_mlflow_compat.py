"""The MLflow behaviour mlcycle relies on without a public API still holds.

Each test names the function of :mod:`mlcycle.mlflow_compat` to fix when it fails after an
MLflow upgrade.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.models import infer_signature

from mlcycle.mlflow_compat import preset_dataset_schema, registry_uri


def test_registry_uri_reads_the_clients_own_registry(tmp_path: Path) -> None:
    tracking = f"sqlite:///{tmp_path / 't.db'}"
    registry = f"sqlite:///{tmp_path / 'r.db'}"
    # Fails when MlflowClient stops keeping `_registry_uri`: fix mlflow_compat.registry_uri.
    assert registry_uri(MlflowClient(tracking_uri=tracking, registry_uri=registry)) == registry
    assert registry_uri(MlflowClient(tracking_uri=tracking)) == tracking


def test_pandas_dataset_schema_is_still_a_cached_property() -> None:
    # preset_dataset_schema fills the cache of this property; if it is anything else now,
    # presetting it no longer works: fix mlflow_compat.preset_dataset_schema.
    assert isinstance(inspect.getattr_static(PandasDataset, "schema"), functools.cached_property)


def test_a_preset_schema_is_the_one_the_dataset_logs() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "city": ["a", "b", "c"]})
    ds = mlflow.data.from_pandas(frame, source="t.csv", name="t")  # type: ignore[attr-defined]
    preset_dataset_schema(ds, frame, sample_rows=2)
    assert ds.schema == infer_signature(frame.head(2)).inputs
    assert ds.schema == infer_signature(frame).inputs  # same columns and types as a full pass
    assert '"name": "city"' in ds.to_dict()["schema"]


def test_a_column_missing_only_outside_the_sample_is_not_required() -> None:
    # Types come from the sample; whether a value may be missing, from every row, as MLflow's
    # own pass over the whole frame says.
    frame = pd.DataFrame(
        {"x": [1.0] * 999 + [None], "city": ["a"] * 999 + [None], "n": list(range(1000))}
    )
    ds = mlflow.data.from_pandas(frame, source="t.csv", name="t")  # type: ignore[attr-defined]
    preset_dataset_schema(ds, frame, sample_rows=10)
    assert ds.schema == infer_signature(frame).inputs
    assert [c.required for c in ds.schema.inputs] == [False, False, True]


def test_an_in_memory_sklearn_model_scores_its_own_serving_example(tmp_path: Path) -> None:
    from mlflow.models import Model
    from sklearn.linear_model import LinearRegression

    from mlcycle.mlflow_compat import parse_serving_input, sklearn_pyfunc

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 0.0]})
    model = LinearRegression().fit(frame, [1.0, 2.0, 3.0])
    path = tmp_path / "model"
    mlflow.sklearn.save_model(
        model,
        path,
        input_example=frame.head(2),
        serialization_format="skops",
        skops_trusted_types=[],
    )
    mlmodel = Model.load(str(path))
    parsed = parse_serving_input(mlmodel.get_serving_input(str(path)), mlmodel)
    assert list(parsed.data.columns) == ["a", "b"]
    preds = sklearn_pyfunc(mlmodel, model).predict(parsed.data)
    assert list(preds) == list(model.predict(frame.head(2)))


def test_no_other_module_imports_a_private_mlflow_name() -> None:
    import re

    import mlcycle

    src = Path(mlcycle.__file__).parent
    private = re.compile(r"from mlflow[\w.]* import .*\b_\w+|\._registry_uri\b|__dict__\[")
    offenders = [
        f"{path.relative_to(src)}:{n}"
        for path in sorted(src.rglob("*.py"))
        if path.name != "mlflow_compat.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if private.search(line.split("#", 1)[0])
    ]
    assert not offenders, "put it behind a function of mlcycle.mlflow_compat:\n" + "\n".join(
        offenders
    )
