"""Issue 13: the demo runs the same every time (a fresh store of its own) and says what happened."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from mlcycle.cli import cli
from mlcycle.config import load_settings
from mlcycle.demo import MARKER, fresh_store
from mlcycle.demo.server import probe_summary
from mlcycle.errors import ConfigError


def test_each_demo_starts_on_an_empty_store_inside_its_workdir(tmp_path: Path) -> None:
    workdir = tmp_path / "demo-output"
    settings = load_settings(**fresh_store(workdir))
    root = workdir.resolve()
    assert settings.tracking_uri == settings.registry_uri == f"sqlite:///{root / 'mlflow.db'}"
    assert settings.artifact_root == str(root / "mlartifacts")
    assert settings.inference_log == str(root / "inference-log")

    # What a first demo leaves: a champion in its registry, files in its directory.
    client = MlflowClient(settings.tracking_uri, settings.registry_uri)
    client.create_registered_model(settings.model_name)
    (workdir / "labels.csv").write_text("request_id\n")
    assert [m.name for m in client.search_registered_models()] == [settings.model_name]
    assert (workdir / "mlflow.db").is_file()

    again = load_settings(**fresh_store(workdir))
    assert again.tracking_uri == settings.tracking_uri
    # The store is gone with everything else: the next run's gate meets no champion. (Checked
    # on the files: this process's MLflow keeps its engine on the deleted file, a new one not.)
    assert sorted(p.name for p in workdir.iterdir()) == [MARKER]


def test_the_demo_store_wins_over_the_users_tracking_uri(
    tmp_path: Path, own_mlflow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", own_mlflow)
    settings = load_settings(**fresh_store(tmp_path / "d"))
    assert settings.tracking_uri != own_mlflow
    assert settings.registry_uri == settings.tracking_uri


def test_a_directory_the_demo_did_not_make_is_left_alone(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not made by mlcycle demo"):
        fresh_store(mine)
    assert (mine / "thesis.tex").read_text() == "precious"
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        fresh_store(a_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    fresh_store(empty)  # an empty directory is fine
    assert (empty / MARKER).exists()


def test_the_demo_command_refuses_a_foreign_workdir_with_exit_1(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    result = CliRunner().invoke(cli, ["demo", "--workdir", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "not made by mlcycle demo" in result.output
    assert (tmp_path / "notes.txt").exists()


def test_the_swap_line_counts_the_answers_per_version() -> None:
    # The old line said "6 requests, none failed ... answers with v2" when five came from v1.
    text = probe_summary(Counter({"1": 5, "2": 1}))
    assert text == "6 probe requests, none failed: answered 5 by v1, 1 by v2"
    assert probe_summary(Counter({"2": 1})) == "1 probe request, none failed: answered 1 by v2"
    assert probe_summary(Counter({"10": 1, "9": 2})).endswith("2 by v9, 1 by v10")
