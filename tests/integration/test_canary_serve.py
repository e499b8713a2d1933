"""The canary decided against a real `mlcycle serve --canary` process, under load.

A sound challenger is promoted and a challenger trained on shuffled labels is rolled back by
`mlcycle canary --act`; the server follows the registry, and no request fails meanwhile.
Skipped when `mlcycle serve` has no `--canary`.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from serving_support import Store, Traffic, start_mlcycle, wait_ready

from mlcycle import register as reg
from mlcycle.cli import cli
from mlcycle.data import SCENARIO_TARGET, make_scenario
from mlcycle.register import audit

NAME = "canary_live"
ROWS = 10  # per request


def _serve_has_canary() -> bool:
    command = cli.get_command(click_context(), "serve")
    return command is not None and any("--canary" in p.opts for p in command.params)


def click_context() -> Any:
    import click

    return click.Context(cli)


pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("canary_serve"),
    pytest.mark.skipif(not _serve_has_canary(), reason="mlcycle serve has no --canary yet"),
]


class Labelled(Traffic):
    """:class:`Traffic` of ``ROWS``-row slices of ``frame`` picked at random; its
    answers are labelled with the rows' true targets by record id."""

    def __init__(self, url: str, frame: pd.DataFrame) -> None:
        self.truth = frame[SCENARIO_TARGET].to_numpy()
        doc = frame.drop(columns=[SCENARIO_TARGET]).to_dict(orient="split")
        bodies = [
            {"dataframe_split": {"columns": doc["columns"], "data": doc["data"][s : s + ROWS]}}
            for s in range(0, len(frame) - ROWS + 1, ROWS)
        ]
        super().__init__(url, bodies, shuffle=True)

    def labels(self) -> list[dict[str, Any]]:
        with self.lock:
            answers = list(self.answers)
        return [
            {
                "record_id": f"{a.record_prefix}-{j}",
                SCENARIO_TARGET: int(self.truth[a.body * ROWS + j]),
            }
            for a in answers
            for j in range(a.rows)
        ]

    def wait_only(self, version: str, timeout: float = 60) -> None:
        """Until the last answers all come from ``version`` as champion (the switch)."""
        self.wait_recent(
            lambda recent: {(a.version, a.role) for a in recent} == {(version, "champion")},
            n=20,
            timeout=timeout,
        )


def _train(store: Store, frame: pd.DataFrame, tmp: Path) -> str:
    from mlflow import MlflowClient

    from mlcycle.train import TrainConfig, train

    with store.active():
        client = MlflowClient(tracking_uri=store.uri)
        cfg = TrainConfig(data=str(tmp / "train.csv"), target=SCENARIO_TARGET, model="linear",
                          onnx=False, plots=False)  # fmt: skip
        run_id = train(cfg, client, frame=frame).run_id
        return str(reg.register(client, run_id, NAME).version)


def _shuffled(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    out = frame.copy()
    out[SCENARIO_TARGET] = np.random.default_rng(seed).permutation(out[SCENARIO_TARGET].to_numpy())
    return out


def _decide(store: Store, server_url: str, labels: list[dict[str, Any]], tmp: Path) -> dict:
    path = tmp / "labels.parquet"
    pd.DataFrame(labels).to_parquet(path)
    with store.active(), pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLCYCLE_INFERENCE_LOG", str(tmp / "ilog"))
        result = CliRunner().invoke(
            cli,
            ["canary", NAME, "--canary-labels", str(path), "--metrics-url",
             f"{server_url}/metrics", "--min-labelled", "1000", "--steps", "1", "--act",
             "--json"],
            catch_exceptions=False,
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def test_a_live_canary_is_promoted_then_a_shuffled_label_one_rolled_back_without_failures(
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    store = Store(tmp_path / "store")
    frame = make_scenario(3000, period="reference", seed=3)
    # JSON has no NaN: send the complete rows (the scenario has missing values).
    traffic_rows = (
        make_scenario(20_000, period="reference", seed=21)
        .drop(columns=["event_time"])
        .dropna()
        .reset_index(drop=True)
    )
    broken = _train(store, _shuffled(frame, 0), tmp_path)
    with store.active():
        client = MlflowClient(tracking_uri=store.uri)
        reg.promote(client, NAME, broken, policy=reg.GatePolicy(mode="disabled"))
    sound = _train(store, frame, tmp_path)
    log_root = tmp_path / "ilog"
    server = start_mlcycle(
        store, f"models:/{NAME}@champion", "canary-live", "--canary", "20%",
        "--reload-interval", "0.3", "--inference-log", str(log_root),
    )  # fmt: skip
    try:
        wait_ready(server, "/ready")
        with Labelled(server.url, traffic_rows) as load:
            load.wait_records(2500, role="challenger", timeout=600)
            time.sleep(6)  # the inference log flushes every few seconds
            labels = load.labels()
            promoted = _decide(store, server.url, labels, tmp_path)
            assert promoted["decision"]["action"] == "promote", promoted["decision"]
            # Per-arm errors and latency come from the server's own Prometheus series.
            for arm in ("champion", "challenger"):
                evidence = promoted["comparison"][arm]
                assert evidence["requests"] > 0 and evidence["errors"] == 0
                assert evidence["p99_ms"] is not None and evidence["error_rate"] == 0
            assert promoted["comparison"]["quality"]["ci_low"] > 0
            load.wait_only(sound)

            time.sleep(1.1)  # the next canary's window starts at its registration
            worse = _train(store, _shuffled(frame, 1), tmp_path)  # starts its canary by itself
            with load.lock:
                load.answers.clear()
            load.wait_records(2500, role="challenger", timeout=600)
            time.sleep(6)
            labels = load.labels()
            rolled = _decide(store, server.url, labels, tmp_path)
            assert rolled["decision"]["action"] == "rollback", rolled["decision"]
            assert rolled["comparison"]["quality"]["ci_high"] < 0
            load.wait_only(sound)
        assert load.failures == []
        os.killpg(server.proc.pid, signal.SIGTERM)
        server.proc.wait(30)
    finally:
        server.stop()

    with store.active():
        client = MlflowClient(tracking_uri=store.uri)
        trail = reg.history(client, NAME)
        assert [(e.action, e.to_version) for e in trail[-2:]] == [
            ("promote", sound), ("canary_rollback", worse),
        ]  # fmt: skip
        for entry, doc in zip(trail[-2:], (promoted, rolled), strict=True):
            evidence = audit.evidence(client, entry.run_id)
            assert evidence is not None
            assert evidence["comparison"]["quality"] == doc["comparison"]["quality"]
        assert client.get_model_version(NAME, worse).current_stage == "Archived"
        assert reg.champion_version(client, NAME) == sound
