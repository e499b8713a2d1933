"""A canary decided on live evidence: two real models, the real inference-log writer, the CLI.

The two arms' inference-log rows are written with the server's own writer
(:class:`~mlcycle.inference_log.InferenceLog`) from the real models' predictions on a
seeded 20 % split (so the numbers are exact and the run is fast), then `mlcycle canary --act`
decides and switches. `test_canary_serve.py` does the same against a live
`mlcycle serve --canary` under load.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from serving_support import log_canary_traffic, shuffled_labels

from mlcycle import register as reg
from mlcycle.cli import cli
from mlcycle.data import SCENARIO_TARGET, make_scenario
from mlcycle.inference_log import read_inference_log
from mlcycle.register import audit

pytestmark = pytest.mark.slow

NAME = "canary_churn"
SHARE = 0.2
ROWS = 15_000  # ~3,000 labelled challenger records: a 6-point accuracy gap is > 4 sigma


def _train(frame: pd.DataFrame, workdir: Path) -> str:
    import mlflow
    from mlflow import MlflowClient

    from mlcycle.train import TrainConfig, train

    cfg = TrainConfig(
        data=str(workdir / "train.csv"), target=SCENARIO_TARGET, model="linear",
        onnx=False, plots=False,
    )  # fmt: skip
    run_id = train(cfg, MlflowClient(mlflow.get_tracking_uri()), frame=frame).run_id
    return str(reg.register(MlflowClient(mlflow.get_tracking_uri()), run_id, NAME).version)


def _serve_split(log_root: Path, versions: dict[str, str], seed: int) -> pd.DataFrame:
    """Score a seeded 20 % / 80 % split with the real models, log it, return labels."""
    traffic = make_scenario(ROWS, period="reference", seed=seed)
    arm = np.where(np.random.default_rng(seed).random(ROWS) < SHARE, "challenger", "champion")
    return log_canary_traffic(log_root, NAME, versions, traffic, SCENARIO_TARGET, arm, 5)


def _canary(runner: CliRunner, *args: str) -> dict[str, Any]:
    result = runner.invoke(
        cli,
        ["canary", NAME, "--min-labelled", "1000", "--steps", "1", "--json", *args],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_better_challenger_is_promoted_and_a_shuffled_label_one_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: Any
) -> None:
    log_root = tmp_path / "inference-log"
    monkeypatch.setenv("MLCYCLE_INFERENCE_LOG", str(log_root))
    frame = make_scenario(3000, period="reference", seed=3)
    runner = CliRunner()

    # Production runs a broken model (trained on shuffled labels); a sound one is the canary.
    broken = _train(shuffled_labels(frame, SCENARIO_TARGET, 0), tmp_path)
    reg.promote(client, NAME, broken, policy=reg.GatePolicy(mode="disabled"))
    sound = _train(frame, tmp_path)
    labels = _serve_split(log_root, {"champion": broken, "challenger": sound}, seed=11)
    logged = read_inference_log(str(log_root), NAME, role=None)
    assert set(zip(logged["role"], logged["model_version"], strict=True)) == {
        ("champion", broken), ("challenger", sound),
    }  # fmt: skip
    share = (logged["role"] == "challenger").mean()
    assert abs(share - SHARE) < 3 * np.sqrt(SHARE * (1 - SHARE) / ROWS)

    # Before the labels arrive there is not enough evidence: nothing changes.
    waiting = _canary(runner)
    assert waiting["decision"]["action"] == "continue"
    assert "not enough evidence" in waiting["decision"]["reasons"][0]
    assert waiting["acted"] is None and reg.champion_version(client, NAME) == broken
    text = runner.invoke(cli, ["canary", NAME], catch_exceptions=False)
    assert text.exit_code == 0, text.output
    assert f"champion   v{broken}" in text.output and f"challenger v{sound}" in text.output
    assert "decision   continue: not enough evidence" in text.output
    # `mlcycle monitor --canary` compares the arms beside the drift window.
    monitored = runner.invoke(
        cli,
        ["monitor", "--model", NAME, "--canary", "--json", "--output", str(tmp_path / "reports")],
        catch_exceptions=False,
    )
    assert monitored.exit_code == 0, monitored.output
    both = json.loads(monitored.output)
    assert both["canary"]["decision"]["action"] == "continue"
    arms = both["canary"]["comparison"]
    assert (arms["champion"]["version"], arms["challenger"]["version"]) == (broken, sound)

    labels_path = tmp_path / "labels.parquet"
    labels.to_parquet(labels_path)
    promoted = _canary(runner, "--canary-labels", str(labels_path), "--act")
    q = promoted["comparison"]["quality"]
    assert promoted["decision"]["action"] == "promote", promoted["decision"]
    assert q["gain"] > 0.03 and q["ci_low"] > 0 and q["p_value"] < 1e-6
    assert promoted["comparison"]["challenger"]["labelled"] >= 1000
    assert reg.champion_version(client, NAME) == sound
    entry = reg.history(client, NAME)[-1]
    assert (entry.action, entry.to_version, entry.from_version) == ("promote", sound, broken)
    evidence = audit.evidence(client, entry.run_id)
    assert evidence is not None
    assert evidence["comparison"]["quality"] == q
    assert evidence["decision"]["action"] == "promote"
    assert evidence["monitoring_run_id"] == promoted["run_id"]
    assert entry.metrics["canary_quality_ci_low"] == pytest.approx(q["ci_low"])
    run = client.get_run(promoted["run_id"])
    assert run.data.tags["mlcycle.kind"] == "canary"
    assert run.data.tags["mlcycle.canary.decision"] == "promote"
    assert run.data.metrics["quality_p_value"] == pytest.approx(q["p_value"])

    # A new canary trained on shuffled labels is worse than the new champion: rolled back.
    time.sleep(1.1)  # its window starts at its registration, after the first canary's rows
    worse = _train(shuffled_labels(frame, SCENARIO_TARGET, 1), tmp_path)
    labels = _serve_split(log_root, {"champion": sound, "challenger": worse}, seed=12)
    labels.to_parquet(labels_path)
    # This time the monitoring loop judges it, with the policy declared in the environment.
    monkeypatch.setenv("MLCYCLE_CANARY_LABELS", str(labels_path))
    monkeypatch.setenv("MLCYCLE_CANARY_MIN_LABELLED", "1000")
    monkeypatch.setenv("MLCYCLE_CANARY_STEPS", "1")
    monkeypatch.setenv("MLCYCLE_CANARY_ACT", "true")
    looped = runner.invoke(
        cli,
        ["loop", "--model", NAME, "--every", "1h", "--once", "--canary", "--no-retrain",
         "--output", str(tmp_path / "reports")],
        catch_exceptions=False,
    )  # fmt: skip
    assert looped.exit_code == 0, looped.output
    assert "decision   rollback: accuracy" in looped.output
    assert f"acted      canary_rollback v{worse}" in looped.output
    mv = client.get_model_version(NAME, worse)
    assert mv.current_stage == "Archived" and "challenger" not in mv.aliases
    assert reg.champion_version(client, NAME) == sound
    entry = reg.history(client, NAME)[-1]
    assert (entry.action, entry.to_version, entry.from_version) == ("canary_rollback", worse, sound)
    evidence = audit.evidence(client, entry.run_id)
    assert evidence is not None and evidence["decision"]["action"] == "rollback"
    q = evidence["comparison"]["quality"]
    assert q["ci_high"] < 0 and q["p_value"] < 1e-6
    assert evidence["comparison"]["champion"]["version"] == sound
    assert evidence["policy"]["min_labelled"] == 1000

    # With the canary ended there is nothing to judge.
    monkeypatch.delenv("MLCYCLE_CANARY_ACT")
    assert _canary(runner)["skipped"].endswith("has no @challenger")


@pytest.fixture
def client() -> Any:
    import mlflow
    from mlflow import MlflowClient

    return MlflowClient(mlflow.get_tracking_uri())
