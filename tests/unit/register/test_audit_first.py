"""Audit-first promotions (issue 10 item 6) and gate runs where MLflow users look (issue 13
item 4)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient
from registry_helpers import state

from mlcycle import register as reg
from mlcycle.register.types import AUDIT_EXPERIMENT

NAME = "churn"


class _FailingTagClient(MlflowClient):
    """A real client on the real store whose version-tag write fails: a fault injected
    between the stage change and the end of a promotion, as a dropped connection would."""

    def set_model_version_tag(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("connection lost")


def test_a_change_that_fails_half_way_is_undone_and_audited_as_failed(
    client: Any, train_run: Callable[..., str]
) -> None:
    reg.register(client, train_run(), NAME)
    reg.promote(client, NAME, policy=reg.GatePolicy(mode="disabled"))
    v2 = str(reg.register(client, train_run(), NAME).version)
    before = state(client, NAME)

    broken = _FailingTagClient(client.tracking_uri)
    with pytest.raises(RuntimeError, match="connection lost"):
        reg.promote(broken, NAME, v2, force=True, reason="hotfix")
    assert state(client, NAME) == before
    assert client.get_model_version(NAME, v2).current_stage == "Staging"

    trail = reg.history(client, NAME)
    assert [(e.action, e.to_version, e.outcome) for e in trail] == [
        ("promote", "1", "done"),
        ("promote", v2, "failed"),
    ]
    assert trail[1].error == "RuntimeError: connection lost"
    assert client.get_run(trail[1].run_id).info.status == "FAILED"


def test_gate_runs_nest_under_their_parent_and_nothing_lands_in_default(
    client: Any, train_run: Callable[..., str], tmp_path: Path
) -> None:
    reg.register(client, train_run(), NAME)
    reg.promote(client, NAME)
    reg.register(client, train_run(), NAME)
    decision = reg.gate(client, NAME, policy=reg.GatePolicy(min_improvement=-1.0))

    audit = client.get_experiment_by_name(AUDIT_EXPERIMENT).experiment_id
    runs = client.search_runs([audit], "tags.`mlcycle.gate.role` = 'challenger'")
    assert runs, "the challenger's evaluation run is in the audit experiment"
    parents = {r.data.tags["mlflow.parentRunId"] for r in runs}
    assert all(client.get_run(p).info.experiment_id == audit for p in parents)
    assert client.search_runs(["0"]) == []
    assert not (tmp_path / "mlruns").exists()
    # A passing gate shows its numbers too, not only a failing one.
    assert decision.passed
    assert (
        f"roc_auc {decision.challenger_metrics['roc_auc']:.4f} vs champion" in (decision.reasons[0])
    )


def test_history_names_metrics_as_the_cli_does(
    client: Any, train_run: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from mlcycle.cli import cli

    reg.register(client, train_run(), NAME)
    reg.promote(client, NAME)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow.get_tracking_uri())
    res = CliRunner().invoke(cli, ["history", NAME])
    assert res.exit_code == 0, res.output
    assert " roc_auc=" in res.output
    assert "challenger_" not in res.output


def test_registry_rows_carry_only_what_users_filter_on(
    client: Any, train_run: Callable[..., str]
) -> None:
    run_id = train_run()
    v1 = reg.register(client, run_id, NAME, description="baseline")
    reg.promote(client, NAME)
    v2 = reg.register(client, train_run(), NAME)
    reg.gate(client, NAME, str(v2.version), policy=reg.GatePolicy(min_improvement=-1.0))
    for version in (v1.version, v2.version):
        tags = client.get_model_version(NAME, version).tags
        mine = {k: v for k, v in tags.items() if k.startswith("mlcycle.")}
        assert len(mine) <= 12, sorted(mine)
        assert max(len(v) for v in mine.values()) <= 64, mine
    tags = client.get_model_version(NAME, v2.version).tags
    assert {"mlcycle.task", "mlcycle.target", "mlcycle.data_digest", "mlcycle.gate.passed"} <= (
        tags.keys()
    )
    description = client.get_model_version(NAME, v1.version).description
    assert description.startswith("baseline")
    assert f"registered from run {run_id}" in description
    assert "roc_auc=" in description and "log_loss=" in description


def test_training_runs_are_named_after_model_and_data(scenario_csv: Path) -> None:
    from mlcycle.train import TrainConfig, train

    result = train(
        TrainConfig(data=str(scenario_csv), target="churned", model="linear"), MlflowClient()
    )
    assert MlflowClient().get_run(result.run_id).info.run_name == "linear scenario"
