"""The canary decided against a real `mlcycle serve --canary` process, under load.

A sound challenger is promoted and a challenger trained on shuffled labels is rolled back by
`mlcycle canary --act`; the server follows the registry, and no request fails meanwhile.
Skipped when `mlcycle serve` has no `--canary`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from serving_support import Store, split_payload, start_mlcycle

from mlcycle import register as reg
from mlcycle.cli import cli
from mlcycle.data import SCENARIO_TARGET, make_scenario
from mlcycle.register import audit

NAME = "canary_live"
ROWS_PER_REQUEST = 10


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


class Traffic:
    """Threads posting labelled rows until stopped; every answer's arm and record ids kept."""

    def __init__(self, url: str, frame: pd.DataFrame, threads: int = 4) -> None:
        self.url = url
        self.truth = frame[SCENARIO_TARGET].to_numpy()
        self.features = frame.drop(columns=[SCENARIO_TARGET])
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.labels: list[dict[str, Any]] = []
        self.answers: list[tuple[str, str]] = []  # (version, role)
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def _run(self, k: int) -> None:
        rng = random.Random(k)
        n = len(self.features)
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                start = rng.randrange(0, n - ROWS_PER_REQUEST)
                rows = self.features.iloc[start : start + ROWS_PER_REQUEST]
                try:
                    r = client.post(self.url + "/invocations", json=split_payload(rows))
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(type(exc).__name__)
                    continue
                except Exception as exc:  # a bug of the test: say so, stop this thread
                    with self.lock:
                        self.failures.append(repr(exc))
                    return
                with self.lock:
                    if r.status_code != 200:
                        self.failures.append(f"{r.status_code} {r.text[:100]}")
                        continue
                    prefix = r.headers["x-record-id-prefix"]
                    self.answers.append((r.headers["x-model-version"], r.headers["x-model-role"]))
                    self.labels += [
                        {"record_id": f"{prefix}-{j}", SCENARIO_TARGET: int(t)}
                        for j, t in enumerate(self.truth[start : start + ROWS_PER_REQUEST])
                    ]

    def wait_labelled(self, role: str, n: int, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert any(t.is_alive() for t in self.threads), f"load died: {self.failures[-3:]}"
            with self.lock:
                if sum(r == role for _, r in self.answers) * ROWS_PER_REQUEST >= n:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"{role} never answered {n} records")

    def wait_only(self, version: str, timeout: float = 60) -> None:
        """Until the last answers all come from ``version`` as champion (the switch)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                tail = self.answers[-20:]
            if len(tail) == 20 and set(tail) == {(version, "champion")}:
                return
            time.sleep(0.2)
        raise TimeoutError(f"the server never switched to v{version} alone")


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
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(server.url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        with Traffic(server.url, traffic_rows) as load:
            load.wait_labelled("challenger", 2500)
            time.sleep(6)  # the inference log flushes every few seconds
            with load.lock:
                labels = list(load.labels)
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
                load.labels.clear()
            load.wait_labelled("challenger", 2500)
            time.sleep(6)
            with load.lock:
                labels = list(load.labels)
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
