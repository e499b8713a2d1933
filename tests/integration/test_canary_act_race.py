"""Two `mlcycle canary --act` processes at once on one PostgreSQL store: one acts and records.

Both processes read the same window and take the same decision; the test holds the registry
lock until both have recorded their check and queue on it, so the second always meets a
canary the first already decided. The loser changes nothing and leaves no check run, as a
concurrent promotion of the current champion leaves no audit record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from serving_support import log_canary_traffic, shuffled_labels

from mlcycle import register as reg
from mlcycle.data import SCENARIO_TARGET, make_scenario
from mlcycle.register import audit
from mlcycle.register.lock import registry_lock

pytestmark = pytest.mark.slow

NAME = "raced"
ROWS = 4000


def _train(client: Any, frame: pd.DataFrame, workdir: Path) -> str:
    from mlcycle.train import TrainConfig, train

    cfg = TrainConfig(
        data=str(workdir / "train.csv"), target=SCENARIO_TARGET, model="linear",
        onnx=False, plots=False,
    )  # fmt: skip
    run_id = train(cfg, client, frame=frame).run_id
    return str(reg.register(client, run_id, NAME).version)


def _log_both_arms(log_root: Path, versions: dict[str, str]) -> pd.DataFrame:
    """Score half the traffic with each arm's real model through the server's log writer."""
    traffic = make_scenario(ROWS, period="reference", seed=21)
    arm = np.where(np.arange(ROWS) % 2 == 0, "champion", "challenger")
    return log_canary_traffic(log_root, NAME, versions, traffic, SCENARIO_TARGET, arm, 10)


def _check_runs(client: Any) -> list[Any]:
    exp = client.get_experiment_by_name("mlcycle-monitoring")
    if exp is None:
        return []
    return list(client.search_runs([exp.experiment_id], "tags.`mlcycle.kind` = 'canary'"))


@pytest.mark.parametrize(
    ("decision", "steps", "acted"),
    [
        ("rollback", "1", "canary_rollback"),
        ("promote", "1", "promote"),
        ("continue", "0.2,0.5,1", "canary_step"),
    ],
)
def test_of_two_concurrent_canary_acts_one_acts_and_the_other_records_nothing(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    decision: str, steps: str, acted: str,
) -> None:  # fmt: skip
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", pg_url)
    import mlflow

    mlflow.set_tracking_uri(pg_url)
    client = MlflowClient(pg_url)
    frame = make_scenario(3000, period="reference", seed=3)
    sound, broken = (frame, shuffled_labels(frame, SCENARIO_TARGET, 0))
    # rollback: the canary is the broken model; promote / continue: the canary is the sound one.
    champ_frame, canary_frame = (sound, broken) if decision == "rollback" else (broken, sound)
    champion = _train(client, champ_frame, tmp_path)
    reg.promote(client, NAME, champion, policy=reg.GatePolicy(mode="disabled"))
    canary = _train(client, canary_frame, tmp_path)
    log_root = tmp_path / "inference-log"
    labels = tmp_path / "labels.parquet"
    _log_both_arms(log_root, {"champion": champion, "challenger": canary}).to_parquet(labels)
    audits_before = len(reg.history(client, NAME))

    env = {**os.environ, "MLCYCLE_INFERENCE_LOG": str(log_root)}
    cmd = [sys.executable, "-m", "mlcycle", "canary", NAME, "--act", "--json",
           "--canary-labels", str(labels), "--min-labelled", "500", "--steps", steps]  # fmt: skip
    with registry_lock(client, NAME):
        procs = [
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        # Both compare the arms, record their check and queue on the lock held here.
        deadline = time.monotonic() + 240
        while len(_check_runs(client)) < 2 and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.5)
        assert len(_check_runs(client)) == 2
        time.sleep(2)  # past the checks, waiting for the lock
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=240)
        assert p.returncode == 0, stderr.decode()[-2000:]
        outs.append(json.loads(stdout))

    assert [o["decision"]["action"] for o in outs] == [decision, decision]
    winner, loser = sorted(outs, key=lambda o: o["superseded"] is not None)
    assert winner["superseded"] is None and winner["acted"]["action"] == acted
    assert winner["acted"]["unchanged"] is False
    assert loser["acted"]["unchanged"] is True and loser["run_id"] is None
    assert "a concurrent check already made the same decision" in loser["superseded"]
    # One check run and one audit record: the winner's, linked to each other.
    assert [r.info.run_id for r in _check_runs(client)] == [winner["run_id"]]
    new = reg.history(client, NAME)[audits_before:]
    assert [(e.action, e.to_version) for e in new] == [(acted, canary)]
    assert audit.evidence(client, new[0].run_id)["monitoring_run_id"] == winner["run_id"]
    if decision == "promote":
        assert reg.champion_version(client, NAME) == canary
    elif decision == "rollback":
        assert reg.champion_version(client, NAME) == champion
        assert client.get_model_version(NAME, canary).current_stage == "Archived"
    else:
        assert client.get_model_version(NAME, canary).tags["mlcycle.canary.share"] == "0.5"
