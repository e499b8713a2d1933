"""Crafted models never run code at any site that loads a model, unless explicitly allowed.

Each test is an attack from issue 10: a model directory whose loading writes a marker file,
given to ``mlcycle serve`` (the app factory's first load), ``mlcycle gate`` and
``mlcycle predict``. The ``code/`` loader attack runs with MLflow's own
``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`` (the image's setting), which it got past before
mlcycle's policy existed; the pickle attacks with MLflow's default, as a plain install runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from crafted_models import ATTACKS, Crafted, craft, legit_model, register_dir, skops_bomb

from mlcycle.cli import cli
from mlcycle.errors import UntrustedModel


@pytest.fixture
def crafted(tmp_path: Path) -> Callable[[str], Crafted]:
    """``crafted(kind)`` → a fresh crafted model directory and the marker it would write."""

    def make(kind: str) -> Crafted:
        return craft(kind, tmp_path / "crafted", tmp_path / f"MARKER-{kind}")

    return make


def _mlflow_pickle_setting(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The code/ loader ran even with MLflow's switch off (the image's setting); the pickle
    # attacks ran with MLflow's default. Each attack is tested where it worked.
    if kind == "code_loader":
        monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def _data(tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    pd.DataFrame(
        {"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "y": [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]}
    ).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("kind", ATTACKS)
def test_serve_refuses_a_crafted_model_directory_and_runs_nothing(
    kind, crafted, monkeypatch
) -> None:
    from mlcycle.serve.server import ServerConfig, build_app

    _mlflow_pickle_setting(kind, monkeypatch)
    model = crafted(kind)
    app = build_app(ServerConfig(model_uri=str(model.path), inference_log=None), _client())
    with pytest.raises(UntrustedModel, match=r"refused: .*--allow-pickle"):
        app.source.load()  # what the server's startup does
    assert not model.marker.exists()
    assert app.source.refused == 1


@pytest.mark.parametrize("kind", ATTACKS)
def test_serve_command_refuses_before_binding_a_port(kind, crafted, monkeypatch) -> None:
    _mlflow_pickle_setting(kind, monkeypatch)
    model = crafted(kind)
    result = CliRunner().invoke(cli, ["serve", "--model", str(model.path), "--port", "0"])
    assert result.exit_code == 1, result.output
    assert "refused" in result.output and "--allow-pickle" in result.output
    assert len(result.output.strip().splitlines()[-1]) < 400  # one line
    assert "serving " not in result.output  # no "serving … on http://…" before the refusal
    assert not model.marker.exists()


@pytest.mark.parametrize("kind", ATTACKS)
def test_gate_refuses_a_crafted_challenger_and_runs_nothing(
    kind, crafted, tmp_path, monkeypatch
) -> None:
    _mlflow_pickle_setting(kind, monkeypatch)
    model = crafted(kind)
    version = register_dir(_client(), "victim", model.path)
    result = CliRunner().invoke(
        cli, ["gate", "victim", "--version", version, "--eval-data", str(_data(tmp_path))]
    )
    assert result.exit_code == 1, result.output
    assert "refused" in result.output
    assert not model.marker.exists()


@pytest.mark.parametrize("kind", ATTACKS)
@pytest.mark.parametrize("engine", ["pandas", "spark"])
def test_batch_predict_refuses_a_crafted_model_and_runs_nothing(
    kind, engine, crafted, tmp_path, monkeypatch
) -> None:
    _mlflow_pickle_setting(kind, monkeypatch)
    model = crafted(kind)
    version = register_dir(_client(), "victim", model.path)
    result = CliRunner().invoke(
        cli,
        [
            "predict",
            "--model",
            f"models:/victim/{version}",
            "--input",
            str(_data(tmp_path)),
            "--output",
            str(tmp_path / "out"),
            "--engine",
            engine,
        ],
    )
    assert result.exit_code == 1, result.output
    assert "refused" in result.output
    assert not model.marker.exists()
    assert not (tmp_path / "out").exists()


def test_a_refused_remote_model_is_decided_from_its_mlmodel_file_alone(crafted, tmp_path) -> None:
    from mlcycle import trust

    model = crafted("sklearn_loader_pickle")
    version = register_dir(_client(), "victim", model.path)
    dst = tmp_path / "dst"
    dst.mkdir()
    with pytest.raises(UntrustedModel):
        trust.fetch_model(f"models:/victim/{version}", "victim", dst=str(dst))
    assert list(dst.iterdir()) == []  # model.pkl was never downloaded


def test_a_pickle_file_beside_a_safe_mlmodel_is_refused(tmp_path) -> None:
    from mlcycle import trust

    path = legit_model(tmp_path)
    (path / "extra.joblib").write_bytes(b"\x80\x04N.")
    with pytest.raises(UntrustedModel, match=r"extra\.joblib"):
        trust.fetch_model(str(path), "model")


def test_the_switch_loads_a_legit_pickled_model(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    version = register_dir(_client(), "pickled", legit_model(tmp_path, "cloudpickle"))
    args = ["predict", "--model", f"models:/pickled/{version}", "--input", str(_data(tmp_path))]
    refused = CliRunner().invoke(cli, [*args, "--output", str(tmp_path / "a")])
    assert refused.exit_code == 1 and "cloudpickle" in refused.output
    flag = CliRunner().invoke(cli, [*args, "--output", str(tmp_path / "b"), "--allow-pickle"])
    assert flag.exit_code == 0, flag.output
    monkeypatch.setenv("MLCYCLE_ALLOW_PICKLE", "true")
    env = CliRunner().invoke(cli, [*args, "--output", str(tmp_path / "c")])
    assert env.exit_code == 0, env.output
    out = pd.read_parquet(tmp_path / "c")
    assert out["prediction"].round(6).tolist() == [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]


def test_skops_models_still_load_by_default(tmp_path) -> None:
    from mlcycle.serve.model import load_predictor, resolve

    pred = load_predictor(resolve(str(legit_model(tmp_path)), _client()))
    import numpy as np

    assert pred.predict({"x": np.array([10.0])}).round(6).tolist() == [21.0]


@pytest.mark.parametrize("mode", ["canary", "shadow"])
@pytest.mark.parametrize("kind", ATTACKS)
def test_a_canary_or_shadow_refuses_a_crafted_challenger_and_keeps_serving_the_champion(
    kind, mode, crafted, tmp_path, monkeypatch
) -> None:
    """Both ways of loading @challenger beside the champion (``--canary``, ``--shadow``)."""
    from mlcycle.serve.options import ServeOptions
    from mlcycle.serve.server import ServerConfig, build_app

    _mlflow_pickle_setting(kind, monkeypatch)
    client = _client()
    champion = register_dir(client, "canaried", legit_model(tmp_path))
    client.set_registered_model_alias("canaried", "champion", champion)
    model = crafted(kind)
    client.set_registered_model_alias(
        "canaried", "challenger", register_dir(client, "canaried", model.path)
    )
    options = ServeOptions(canary=0.5) if mode == "canary" else ServeOptions(shadow=True)
    config = ServerConfig(
        model_uri="models:/canaried@champion", inference_log=None, options=options
    )
    app = build_app(config, client)
    assert app.source.poll_challenger is not None
    assert str(app.source.load().version) == champion  # what the server's startup does
    assert app.source.poll_challenger(None) is None  # refused: no canary, logged and counted
    assert app.source.poll_challenger(None) is None  # remembered, not downloaded again
    assert app.source.refused == 1
    assert not model.marker.exists()


@pytest.fixture
def small_skops_allowance(monkeypatch: pytest.MonkeyPatch) -> int:
    """The skops bound at 4 MB (it is 256 MB): a bomb above it stays quick to build."""
    from mlcycle import trust

    monkeypatch.setattr(trust, "SKOPS_MIN_ALLOWANCE", 4 * 2**20)
    return 4 * 2**20


def test_a_skops_decompression_bomb_is_refused_before_it_is_inflated(
    tmp_path, small_skops_allowance
) -> None:
    from mlcycle import trust
    from mlcycle.serve.model import load_predictor, resolve

    bomb = legit_model(tmp_path)
    skops_file = skops_bomb(bomb, 16 * 2**20)
    assert skops_file.stat().st_size < 100_000  # 16 MB declared in a few KB
    message = r"model\.skops declares 16,7\d\d,\d{3} bytes once inflated .* exhaust memory"
    with pytest.raises(UntrustedModel, match=message):
        trust.fetch_model(str(bomb), "model")
    with pytest.raises(UntrustedModel, match=message):
        load_predictor(resolve(str(bomb), _client()))
    args = ["predict", "--model", str(bomb), "--input", str(_data(tmp_path))]
    refused = CliRunner().invoke(cli, [*args, "--output", str(tmp_path / "out")])
    assert refused.exit_code == 1 and "exhaust memory" in refused.output
    assert not (tmp_path / "out").exists()


def test_a_compressed_skops_file_within_its_allowance_still_loads(
    tmp_path, small_skops_allowance
) -> None:
    import zipfile

    from mlcycle.serve.model import load_predictor, resolve

    model = legit_model(tmp_path)
    path = model / "model.skops"
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    pred = load_predictor(resolve(str(model), _client()))
    assert pred.predict({"x": np.array([10.0])}).round(6).tolist() == [21.0]
