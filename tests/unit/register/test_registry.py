"""register → gate → promote → rollback → history, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from registry_helpers import WEAK_DROP, assert_one_champion, state

from mlcycle import register as reg
from mlcycle.errors import GateRejected

NAME = "churn"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test's own store: the autouse SQLite file, or a fresh PostgreSQL database."""
    import mlflow

    if request.param == "sqlite":
        return mlflow.get_tracking_uri()
    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    mlflow.set_tracking_uri(url)
    return url


@pytest.fixture
def client(store: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(store)


def test_a_model_goes_through_register_gate_promote_rollback_and_history(
    client: Any, train_run: Callable[..., str], scenario_frame: pd.DataFrame, tmp_path: Path
) -> None:
    good_run = train_run()
    v1 = reg.register(client, good_run, NAME, description="baseline")
    assert (str(v1.version), v1.current_stage, v1.run_id) == ("1", "Staging", good_run)
    assert v1.aliases == ["challenger"]
    assert v1.run_id == good_run and "mlcycle.run_id" not in v1.tags
    assert v1.tags["mlcycle.data_digest"]
    assert float(v1.tags["mlcycle.metric.test_roc_auc"]) > 0.5

    first = reg.gate(client, NAME)
    assert first.passed and first.champion_version is None and first.challenger_version == "1"
    assert first.challenger_metrics["roc_auc"] > 0.5

    promoted = reg.promote(client, NAME)
    assert (promoted.version, promoted.previous_version) == ("1", None)
    assert assert_one_champion(client, NAME) == "1"
    assert "challenger" not in reg.core.get_registered_model(client, NAME).aliases

    weak = str(reg.register(client, train_run(drop=WEAK_DROP), NAME).version)
    before = state(client, NAME)
    with pytest.raises(GateRejected, match="roc_auc"):
        reg.promote(client, NAME)
    assert state(client, NAME) == before, "a failed gate must not touch stages or aliases"
    tags = client.get_model_version(NAME, weak).tags
    assert tags["mlcycle.gate.passed"] == "false"
    assert tags["mlcycle.gate.score"].count(" vs ") == 1
    assert tags["mlcycle.gate.score"].endswith("(v1)")
    gate_run = client.get_run(tags["mlcycle.gate.audit_run_id"])
    assert "roc_auc" in gate_run.data.tags["mlcycle.gate.reasons"]
    assert "champion_roc_auc" in gate_run.data.metrics

    dry = reg.promote(client, NAME, policy=reg.GatePolicy(mode="dry_run"))
    assert dry.decision is not None and not dry.decision.passed
    assert assert_one_champion(client, NAME) == weak
    assert client.get_model_version(NAME, "1").current_stage == "Archived"

    back = reg.rollback(client, NAME, reason="dry-run promotion was a mistake")
    assert (back.version, back.previous_version) == ("1", weak)
    assert assert_one_champion(client, NAME) == "1"

    forced = reg.promote(client, NAME, weak, force=True, reason="hotfix for region east")
    assert forced.forced and forced.decision is None
    assert assert_one_champion(client, NAME) == weak

    trail = reg.history(client, NAME)
    assert [(e.action, e.from_version, e.to_version) for e in trail] == [
        ("promote", None, "1"),
        ("promote", "1", weak),
        ("rollback", weak, "1"),
        ("promote", "1", weak),
    ]
    assert all(e.who for e in trail) and all(e.when for e in trail)
    assert trail[0].metrics["challenger_roc_auc"] > 0.5
    assert trail[1].metrics["champion_roc_auc"] > trail[1].metrics["challenger_roc_auc"]
    assert trail[2].reason == "dry-run promotion was a mistake"
    assert trail[3].forced and trail[3].reason == "hotfix for region east"

    import mlflow

    sample = reg.gate(
        client, NAME, weak, policy=reg.GatePolicy(min_score=0.5), eval_data=scenario_frame
    )
    assert sample.passed, "raw tables (int columns, extra columns) are fine as evaluation data"
    sample = pd.read_parquet(
        client.download_artifacts(good_run, "reference/test.parquet", str(tmp_path))
    ).head(20)
    by_stage = mlflow.pyfunc.load_model(reg.model_uri(NAME, stage="Production"))
    by_alias = mlflow.pyfunc.load_model(reg.model_uri(NAME, alias="champion"))
    assert by_stage.metadata.model_uuid == by_alias.metadata.model_uuid
    assert (by_stage.predict(sample) == by_alias.predict(sample)).all()
