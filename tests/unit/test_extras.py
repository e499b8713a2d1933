"""Optional extras: a feature whose extra is missing names the ``pip install`` to run.

The CLI cases run in a subprocess that blocks the extra's modules (``sys.modules[name] =
None``), so the shared venv keeps every extra installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer

from mlcycle import storage
from mlcycle.extras import MissingExtra, available, require
from mlcycle.serve.model import load_predictor, resolve
from mlcycle.train import TrainConfig, train
from mlcycle.train.onnx_export import NOT_INSTALLED


def _cli_without(blocked: list[str], args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        f"""
        import sys
        for name in {blocked!r}:
            sys.modules[name] = None
        from mlcycle.cli import cli
        cli({args!r}, prog_name="mlcycle")
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_serve_without_the_serve_extra_names_the_install_and_exits_1(tmp_path: Path) -> None:
    res = _cli_without(["uvicorn"], ["serve", "--model", "models:/churn@champion"], tmp_path)
    assert res.returncode == 1, res.stderr
    assert "pip install 'mlcycle[serve]'" in res.stderr
    assert "uvicorn" in res.stderr and "Traceback" not in res.stderr


def test_monitor_without_the_monitoring_extra_stops_before_reading_anything(
    tmp_path: Path,
) -> None:
    # The window file does not exist: the extra is checked before any input is read.
    missing = tmp_path / "no-such-window.parquet"
    res = _cli_without(
        ["evidently"], ["monitor", "--model", "churn", "--current", str(missing)], tmp_path
    )
    assert res.returncode == 1, res.stderr
    assert "pip install 'mlcycle[monitoring]'" in res.stderr
    assert "no-such-window" not in res.stderr and "Traceback" not in res.stderr


def test_loop_without_the_monitoring_extra_names_the_install(tmp_path: Path) -> None:
    res = _cli_without(["evidently"], ["loop", "--model", "churn", "--once"], tmp_path)
    assert res.returncode == 1, res.stderr
    assert "pip install 'mlcycle[monitoring]'" in res.stderr


def test_require_passes_when_the_modules_are_installed_and_names_the_missing_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require("monitoring")
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    assert not available("prometheus_client")
    with pytest.raises(MissingExtra, match=r"prometheus_client.*pip install 'mlcycle\[serve\]'"):
        require("serve", feature="mlcycle serve")


def test_s3_paths_without_boto3_name_the_s3_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(MissingExtra, match=r"s3:// paths.*pip install 'mlcycle\[s3\]'"):
        storage.s3_client()


def test_pyarrow_datasets_without_pyarrow_name_the_monitoring_or_s3_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The core install reads and writes its Parquet with fastparquet (mlcycle.parquet);
    # the inference log and monitoring's readers use pyarrow datasets.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtra, match=r"pyarrow.*pip install 'mlcycle\[monitoring\]'"):
        storage.filesystem("inference-log")
    with pytest.raises(MissingExtra, match=r"pyarrow.*pip install 'mlcycle\[s3\]'"):
        storage.filesystem("s3://bucket/inference-log")


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        (["pyarrow"], ["predict", "--model", "models:/churn@champion", "--input", "in.csv",
                       "--output", "out", "--to-inference-log"], "monitoring"),
        (["pyarrow"], ["monitor", "--model", "churn", "--current", "no-such.parquet"],
         "monitoring"),
        (["pyarrow"], ["serve", "--model", "models:/churn@champion"], "serve"),
    ],
    ids=["predict-to-inference-log", "monitor", "serve"],
)  # fmt: skip
def test_a_command_that_needs_pyarrow_names_its_extra_before_reading_anything(
    tmp_path: Path, blocked: list[str], args: list[str], extra: str
) -> None:
    res = _cli_without(blocked, args, tmp_path)
    assert res.returncode == 1, res.stderr
    assert f"pip install 'mlcycle[{extra}]'" in res.stderr and "pyarrow" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()


def test_training_without_the_onnx_extra_skips_the_copy_and_notes_why_on_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(data, index=False)
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    client = MlflowClient()
    result = train(TrainConfig(data=str(data), target="target", model="linear"), client)
    assert not result.onnx_exact
    assert client.get_run(result.run_id).data.tags["mlcycle.onnx"] == "none"
    check = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=result.run_id, artifact_path="onnx/check.json"
            )
        ).read_text()
    )
    assert check["reason"] == NOT_INSTALLED and "mlcycle[onnx]" in check["reason"]


def test_serving_without_onnxruntime_uses_sklearn_for_a_model_with_an_onnx_copy(
    scenario_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = MlflowClient()
    result = train(TrainConfig(data=str(scenario_csv), target="churned", model="linear"), client)
    assert result.onnx_exact
    ref = resolve(result.model_uri, client)
    assert load_predictor(ref).backend == "onnx"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert load_predictor(ref).backend == "sklearn"


def test_the_mlflow_ui_hint_names_the_ui_extra_only_when_flask_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlcycle.cli._common import ui_hint

    settings = SimpleNamespace(tracking_uri="sqlite:///mlflow.db")
    assert ui_hint(settings) == "mlflow ui --backend-store-uri sqlite:///mlflow.db"
    # The core install (mlflow-skinny) has no Flask, so its `mlflow ui` would stop on it.
    monkeypatch.setitem(sys.modules, "flask", None)
    assert ui_hint(settings) == (
        "pip install 'mlcycle[ui]', then mlflow ui --backend-store-uri sqlite:///mlflow.db"
    )
