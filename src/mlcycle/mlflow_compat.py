"""Where mlcycle relies on MLflow behaviour that is not public API: one function each.

API: :func:`registry_uri`, :func:`preset_dataset_schema`, :func:`sklearn_pyfunc`,
:func:`parse_serving_input`.

``tests/unit/test_mlflow_compat.py`` checks each against the installed MLflow, so an MLflow
upgrade that changes one fails there, by name, rather than somewhere downstream.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def registry_uri(client: Any) -> str:
    """The store URI the client's registry writes to (its tracking store when unset).

    ``MlflowClient`` resolves it in ``__init__`` but keeps it only as ``_registry_uri``; MLflow
    has no public accessor on the client (``mlflow.get_registry_uri()`` is the process-global
    one, which need not be the client's).
    """
    return str(getattr(client, "_registry_uri", None) or client.tracking_uri)


def preset_dataset_schema(ds: Any, frame: pd.DataFrame, sample_rows: int | None = None) -> None:
    """Give an MLflow ``PandasDataset`` the schema of ``frame`` without MLflow walking its rows.

    ``PandasDataset.schema`` is a ``functools.cached_property`` inferred from the whole frame
    (seconds on 200k rows with text columns); a cached property is filled by setting the
    instance attribute of the same name, which is what this does. The column types are
    inferred with the public ``mlflow.models.infer_signature`` on at most ``sample_rows``
    seeded rows (all of them when ``None``); whether a column is required (has no missing
    value) is read from every row, which MLflow checks value by value in Python.
    """
    from mlflow.models import infer_signature
    from mlflow.types.schema import ColSpec, Schema

    sample = frame
    if sample_rows is not None and len(frame) > sample_rows:
        sample = frame.sample(sample_rows, random_state=0)
    inferred = infer_signature(sample).inputs
    missing = frame.isna().any().to_numpy()
    if len(inferred.inputs) == len(missing) and all(
        isinstance(c, ColSpec) for c in inferred.inputs
    ):
        inferred = Schema(
            [
                ColSpec(c.type, c.name, required=not bool(m))
                for c, m in zip(inferred.inputs, missing, strict=True)
            ]
        )
    ds.__dict__["schema"] = inferred


def sklearn_pyfunc(mlmodel: Any, sk_model: Any) -> Any:
    """A ``PyFuncModel`` over an sklearn model already in memory, as ``mlflow.sklearn`` builds
    it on load (``_SklearnModelWrapper``), so nothing is loaded from disk a second time."""
    from mlflow.pyfunc import PyFuncModel
    from mlflow.sklearn import _SklearnModelWrapper

    return PyFuncModel(model_meta=mlmodel, model_impl=_SklearnModelWrapper(sk_model))


def parse_serving_input(serving_input: Any, mlmodel: Any) -> Any:
    """Parse a ``serving_input_example`` as MLflow's scoring server does (``_parse_json_data``);
    the result has ``.data`` and ``.params``."""
    from mlflow.pyfunc.scoring_server import _parse_json_data

    return _parse_json_data(serving_input, mlmodel, mlmodel.get_input_schema())
