"""Bad input gives a clear error, a non-zero CLI exit, and an unchanged registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from registry_helpers import assert_one_champion, state

from mlcycle import register as reg
from mlcycle.cli import cli
from mlcycle.errors import (
    ConfigError,
    DataError,
    ModelNotFound,
    RegistryConflict,
    SchemaMismatch,
)

NAME = "churn"
OFF = reg.GatePolicy(mode="disabled")


@pytest.fixture
def champion(client: Any, train_run: Callable[..., str]) -> str:
    """A model whose version 1 is the champion (promoted without evaluation)."""
    reg.register(client, train_run(), NAME)
    reg.promote(client, NAME, policy=OFF)
    return "1"


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_unknown_model_is_a_clear_error_in_every_command(client: Any) -> None:
    for call in (
        lambda: reg.gate(client, "nope"),
        lambda: reg.promote(client, "nope"),
        lambda: reg.rollback(client, "nope", reason="x"),
        lambda: reg.history(client, "nope"),
        lambda: reg.champion_version(client, "nope"),
    ):
        with pytest.raises(ModelNotFound, match="no registered model named 'nope'"):
            call()
    for args in (
        ["gate", "nope"],
        ["promote", "nope"],
        ["rollback", "nope", "--reason", "x"],
        ["history", "nope"],
    ):
        result = run_cli(*args)
        assert result.exit_code == 1, args
        assert "no registered model named 'nope'" in result.output


def test_unknown_version_is_refused_and_the_registry_is_unchanged(
    client: Any, champion: str
) -> None:
    before = state(client, NAME)
    with pytest.raises(ModelNotFound, match="no version '99'"):
        reg.promote(client, NAME, "99")
    result = run_cli("promote", NAME, "--version", "99", "--force", "--reason", "x")
    assert result.exit_code == 1 and "no version '99'" in result.output
    assert state(client, NAME) == before


def test_a_run_without_a_model_or_an_unknown_run_cannot_be_registered(client: Any) -> None:
    exp = client.create_experiment("bare")
    run = client.create_run(exp)
    client.set_terminated(run.info.run_id)
    with pytest.raises(ModelNotFound, match="has no logged model"):
        reg.register(client, run.info.run_id, NAME)
    result = run_cli("register", "--run-id", "0" * 32, "--name", NAME)
    assert result.exit_code == 1 and "no MLflow run" in result.output
    assert client.search_registered_models() == []


def test_evaluation_data_missing_columns_is_refused_before_anything_changes(
    client: Any, champion: str, train_run: Callable[..., str], tmp_path: Path
) -> None:
    reg.register(client, train_run(), NAME)
    before = state(client, NAME)
    frame = client.download_artifacts(
        client.get_model_version(NAME, "2").run_id, "reference/test.parquet", str(tmp_path)
    )
    bad = pd.read_parquet(frame).drop(columns=["age", "churned"])
    with pytest.raises(DataError, match="lacks columns: age, churned"):
        reg.promote(client, NAME, eval_data=bad)
    bad_path = tmp_path / "bad.csv"
    bad.to_csv(bad_path, index=False)
    result = run_cli("gate", NAME, "--eval-data", str(bad_path))
    assert result.exit_code == 1 and "lacks columns" in result.output
    assert state(client, NAME) == before


def test_forcing_needs_a_reason_and_rollback_needs_a_previous_champion(
    client: Any, champion: str
) -> None:
    with pytest.raises(ConfigError, match="--reason"):
        reg.promote(client, NAME, "1", force=True)
    assert run_cli("promote", NAME, "--version", "1", "--force").exit_code == 1
    before = state(client, NAME)
    with pytest.raises(RegistryConflict, match="no previous champion"):
        reg.rollback(client, NAME, reason="nothing before v1")
    assert run_cli("rollback", NAME, "--reason", "x").exit_code == 1
    assert run_cli("rollback", NAME).exit_code == 2  # usage error: --reason is required
    assert state(client, NAME) == before


def test_a_challenger_with_an_incompatible_input_schema_needs_force(
    client: Any, champion: str, train_run: Callable[..., str], scenario_frame: pd.DataFrame
) -> None:
    wider = scenario_frame.assign(
        loyalty_points=np.random.default_rng(0).integers(0, 500, len(scenario_frame))
    )
    reg.register(client, train_run(frame=wider), NAME)
    before = state(client, NAME)
    with pytest.raises(SchemaMismatch, match="loyalty_points"):
        reg.promote(client, NAME, policy=OFF)
    assert state(client, NAME) == before
    reg.promote(client, NAME, force=True, reason="new feature ships with the new client")
    assert assert_one_champion(client, NAME) == "2"


def test_a_challenger_of_another_task_needs_force(
    client: Any, champion: str, tmp_path: Path, scenario_frame: pd.DataFrame
) -> None:
    # A retrain through a project once registered a 0/1 classifier as a regression and the
    # gate promoted it over the classification champion.
    import mlflow
    from mlflow import MlflowClient

    from mlcycle.train import TrainConfig, train

    cfg = TrainConfig(
        data=str(tmp_path / "s.csv"), target="churned", model="linear", task="regression",
        onnx=False, plots=False,
    )  # fmt: skip
    run_id = train(cfg, MlflowClient(mlflow.get_tracking_uri()), frame=scenario_frame).run_id
    reg.register(client, run_id, NAME)
    before = state(client, NAME)
    with pytest.raises(SchemaMismatch, match="is a regression model, champion is a classif"):
        reg.promote(client, NAME, policy=OFF)
    assert state(client, NAME) == before


def test_the_cli_registers_promotes_and_prints_the_history(
    client: Any, train_run: Callable[..., str]
) -> None:
    run_id = train_run()
    out = run_cli("register", "--run-id", run_id, "--name", NAME)
    assert out.exit_code == 0, out.output
    assert "version 1 (Staging, @challenger)" in out.output
    out = run_cli("promote", NAME, "--mode", "disabled")
    assert out.exit_code == 0, out.output
    assert "version 1 → Production (@champion)" in out.output
    assert "models:/churn@champion" in out.output
    assert_one_champion(client, NAME)
    out = run_cli("history", NAME, "--json")
    assert out.exit_code == 0, out.output
    [entry] = json.loads(out.output)
    assert (entry["action"], entry["from"], entry["to"]) == ("promote", None, "1")
    text = run_cli("history", NAME).output
    assert "promote" in text and "v- → v1" in text


def test_promoting_the_champion_again_changes_nothing_and_says_so(
    client: Any, train_run: Callable[..., str]
) -> None:
    run_cli("register", "--run-id", train_run(), "--name", NAME)
    assert run_cli("promote", NAME, "--version", "1").exit_code == 0
    again = run_cli("promote", NAME, "--version", "1")
    assert again.exit_code == 0, again.output
    assert "version 1 is already the champion" in again.output
    assert "no champion" not in again.output and "gate" not in again.output
    assert assert_one_champion(client, NAME) == "1"
    [entry] = json.loads(run_cli("history", NAME, "--json").output)
    assert (entry["action"], entry["to"]) == ("promote", "1"), "a no-op must not be audited"


def test_a_challenger_whose_evaluation_split_declares_gigabytes_is_refused_by_name(
    client: Any,
    champion: str,
    train_run: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcycle import contract

    run_id = train_run()
    reg.register(client, run_id, NAME)
    before = state(client, NAME)
    # What a user with EDIT on the run can log: three 2 MB strings in a few KB of zstd, its
    # pages destroyed so that only the footer check can answer.
    bomb = tmp_path / "reference" / "test.parquet"
    bomb.parent.mkdir()
    table = pa.table({"age": [1.0, 2.0, 3.0], "churned": pa.array(["a" * (2 << 20)] * 3)})
    pq.write_table(table, bomb, compression="zstd", use_dictionary=False)
    body = bomb.read_bytes()
    end = len(body) - 8 - int.from_bytes(body[-8:-4], "little")
    bomb.write_bytes(body[:4] + b"\xff" * (end - 4) + body[end:])
    client.log_artifact(run_id, str(bomb), "reference")
    monkeypatch.setattr(contract, "MAX_DECLARED_BYTES", 4 << 20)
    result = run_cli("gate", NAME, "--version", "2")
    assert result.exit_code == 1, result.output
    assert f"reference/test.parquet of run {run_id}" in result.output
    assert "bytes of uncompressed data, more than the 4,194,304" in result.output
    assert state(client, NAME) == before
