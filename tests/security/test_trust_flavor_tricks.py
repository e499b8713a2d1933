"""MLmodel tricks that pass the flavor checks and still reach code at load time.

Each crafted directory uses only loaders the policy allows (``mlflow.xgboost``,
``mlflow.lightgbm``, ``mlflow.onnx``), yet MLflow's loaders take their instructions from
places the policy did not read:

- the XGBoost loader calls ``model_class()`` for whatever dotted name the flavor gives,
  importing its module first (``os.abort`` kills the server; a class of any installed
  package runs its constructor);
- ``python_function``'s ``data`` may point into a sub-directory holding a *second* MLmodel
  file, which the LightGBM and XGBoost loaders read instead of the checked one: there a
  LightGBM ``model_class`` other than ``Booster`` means pickle, under any file name;
- ``data`` may also leave the model directory (``../`` or an absolute path).

The marker module is put on ``sys.path`` by the test to stand in for any importable callable.
"""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path

import pytest
from crafted_models import _SIGNATURE, _Payload, _write_marker

from mlcycle import trust
from mlcycle.errors import UntrustedModel


def _marker_module(tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable module whose class ``Pwn()`` writes ``marker`` when constructed."""
    name = f"pwn_{uuid.uuid4().hex[:8]}"
    mods = tmp_path / "mods"
    mods.mkdir(exist_ok=True)
    (mods / f"{name}.py").write_text(
        f"class Pwn:\n    def __init__(self):\n        {_write_marker(marker)}\n"
    )
    monkeypatch.syspath_prepend(str(mods))
    return f"{name}.Pwn"


def _write(d: Path, flavors: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "MLmodel").write_text(f"artifact_path: model\nflavors:\n{flavors}{_SIGNATURE}")
    return d


def _xgb_flavors(data: str, model_class: str) -> str:
    return (
        f"  python_function:\n    loader_module: mlflow.xgboost\n    data: {data}\n"
        f"  xgboost:\n    data: {data}\n    model_class: {model_class}\n"
        "    model_format: json\n    xgb_version: 2.1.0\n"
    )


def _load_is_refused(path: Path, marker: Path) -> None:
    with pytest.raises(UntrustedModel, match="refused"):
        trust.load_pyfunc(str(path), str(path))
    assert not marker.exists(), "the crafted model ran code"


def test_an_xgboost_model_class_outside_xgboost_is_refused(tmp_path, monkeypatch) -> None:
    marker = tmp_path / "MARKER"
    d = _write(
        tmp_path / "m", _xgb_flavors("model.json", _marker_module(tmp_path, marker, monkeypatch))
    )
    (d / "model.json").write_text("{}")
    _load_is_refused(d, marker)


def test_a_second_mlmodel_reached_through_pyfunc_data_is_refused(tmp_path, monkeypatch) -> None:
    """LightGBM: the checked MLmodel says Booster; the one the loader reads says pickle."""
    marker = tmp_path / "MARKER"
    d = _write(
        tmp_path / "m",
        "  python_function:\n    loader_module: mlflow.lightgbm\n    data: sub\n"
        "  lightgbm:\n    data: model.lgb\n    model_class: lightgbm.basic.Booster\n",
    )
    (d / "model.lgb").write_text("tree\n")
    sub = _write(
        d / "sub",
        "  lightgbm:\n    data: weights.bin\n    model_class: lightgbm.sklearn.LGBMRegressor\n"
        "    serialization_format: pickle\n",
    )
    # A pickle under a name with no pickle suffix.
    (sub / "weights.bin").write_bytes(pickle.dumps(_Payload(_write_marker(marker))))
    _load_is_refused(d, marker)


def test_a_second_mlmodel_for_xgboost_is_refused(tmp_path, monkeypatch) -> None:
    marker = tmp_path / "MARKER"
    d = _write(tmp_path / "m", _xgb_flavors("model.json", "xgboost.core.Booster"))
    (d / "model.json").write_text("{}")
    text = (
        (d / "MLmodel")
        .read_text()
        .replace("    data: model.json\n  xgboost", "    data: sub\n  xgboost", 1)
    )
    (d / "MLmodel").write_text(text)
    sub = _write(
        d / "sub", _xgb_flavors("model.json", _marker_module(tmp_path, marker, monkeypatch))
    )
    (sub / "model.json").write_text("{}")
    _load_is_refused(d, marker)


@pytest.mark.parametrize("data", ["../outside", "/tmp/outside"])
def test_data_paths_outside_the_model_directory_are_refused(tmp_path, data) -> None:
    d = _write(tmp_path / "m", _xgb_flavors(data, "xgboost.core.Booster"))
    with pytest.raises(UntrustedModel, match="outside"):
        trust.check_files(d, trust.read_mlmodel(str(d))[0], "m")


def test_an_onnx_copy_outside_the_model_directory_is_refused(tmp_path) -> None:
    """The server serves a classifier's ``metadata.mlcycle.onnx`` file instead of sklearn."""
    from crafted_models import legit_model

    d = legit_model(tmp_path)
    text = (
        (d / "MLmodel").read_text().replace("mlcycle:\n", "mlcycle:\n    onnx: ../../../x.onnx\n")
    )
    (d / "MLmodel").write_text(text)
    assert trust.read_mlmodel(str(d))[0].metadata["mlcycle"]["onnx"] == "../../../x.onnx"
    with pytest.raises(UntrustedModel, match="outside"):
        trust.fetch_model(str(d), "m")


def test_an_sklearn_flavor_beside_another_pyfunc_loader_is_refused(tmp_path) -> None:
    """Serve scores the sklearn flavor; gate and predict would score the ONNX one.

    A good ONNX model could then pass the gate for a different sklearn model that is served.
    """
    from crafted_models import legit_model

    d = legit_model(tmp_path)
    text = (d / "MLmodel").read_text()
    text = text.replace("loader_module: mlflow.sklearn", "loader_module: mlflow.onnx")
    text = text.replace("flavors:\n", "flavors:\n  onnx:\n    data: model.onnx\n", 1)
    text = text.replace(
        "    model_path: model.skops\n", "    model_path: model.skops\n    data: model.onnx\n"
    )
    (d / "MLmodel").write_text(text)
    (d / "model.onnx").write_bytes(b"")
    mlmodel = trust.read_mlmodel(str(d))[0]
    assert mlmodel.flavors["python_function"]["loader_module"] == "mlflow.onnx"
    with pytest.raises(UntrustedModel, match="sklearn flavor"):
        trust.fetch_model(str(d), "m")
