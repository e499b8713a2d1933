"""Issue 5: the whole loop on the embedded default, through a real model server.

``run_demo`` trains, registers and promotes, serves ``@champion`` with a ``mlcycle serve``
subprocess (``--reload-interval 1``), sends two windows of drifted traffic over HTTP,
monitors them with late labels, retrains when the policy says so and waits for the running
server to answer with the new version. The test drives that generator, puts its own load on
the server across the swap, and then checks what the stores hold.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient
from serving_support import Traffic

from mlcycle.config import load_settings
from mlcycle.data import SCENARIO_DRIFT, SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from mlcycle.demo import run_demo
from mlcycle.inference_log import read_inference_log
from mlcycle.monitoring import EXPERIMENT

pytestmark = pytest.mark.slow

DRIFTED = set(SCENARIO_DRIFT["covariate"])
STABLE = {"age", "tenure_months", "support_calls", "contract", "payment_method"}
ROWS = 3000


def _drifted_load(url: str) -> Traffic:
    """Two threads posting 1-3 drifted records, paced: steady traffic, not a benchmark, so
    the retrain keeps its CPU."""
    frame = make_scenario(20, period="both", seed=99)
    features = frame.drop(columns=[SCENARIO_TARGET, SCENARIO_TIME]).dropna()  # JSON-safe
    return Traffic.of_rows(url, features, threads=2, pause=0.02, timeout=30)


def _settings_and_client() -> tuple[Any, MlflowClient]:
    settings = load_settings()
    return settings, MlflowClient(**settings.client_kwargs())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_drifted_traffic_through_a_real_server_retrains_and_the_server_swaps_without_errors(
    tmp_path: Path,
) -> None:
    settings, client = _settings_and_client()
    lines: list[str] = []
    load: Traffic | None = None
    url = pid = None
    try:
        for line in run_demo(settings, client, tmp_path / "demo", rows=ROWS):
            lines.append(line)
            if m := re.match(r"\[serve\]\s+mlcycle serve on (\S+) .*\(pid (\d+),", line):
                url, pid = m.group(1), int(m.group(2))
            if line.startswith("[policy]") and load is None:
                # After window 1: the load's records fall after both windows, so they never
                # reach the monitor, and it runs through window 2's retrain and the swap.
                assert url is not None
                load = _drifted_load(url).start()
            if line.startswith("[serve]    the running server answers with") and load:
                load.finish()
    finally:
        if load is not None:
            load.finish()
    text = "\n".join(lines)

    # The demo's own account.
    assert "[serve]    the running server answers with v2 (X-Model-Version)" in text, text
    assert re.search(r"\[log\]\s+server stopped by SIGTERM \(exit 0\)", text), text
    assert pid is not None and not _alive(pid), "the model server outlived the demo"

    # Zero failed requests while the server swapped v1 -> v2 under load.
    assert load is not None
    assert load.failures == []
    versions = [a.version for a in load.answers]
    seen = Counter(versions)
    assert seen["1"] > 0 and seen["2"] > 0, seen
    assert versions[-1] == "2"

    # Monitoring runs: two windows of v1, drift on exactly the covariate columns.
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is not None
    runs = client.search_runs(
        [exp.experiment_id], "attributes.status = 'FINISHED'", order_by=["attributes.start_time"]
    )
    # The month's trend run (stepped metrics for the UI's line charts) is not a window.
    trend = [r for r in runs if r.data.tags.get("mlcycle.kind") == "monitor-trend"]
    assert len(trend) == 1, [r.info.run_name for r in runs]
    runs = [r for r in runs if r.data.tags.get("mlcycle.kind") != "monitor-trend"]
    assert [r.data.tags["mlcycle.model_version"] for r in runs] == ["1", "1"]
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        assert tags["mlcycle.status"] == "drift"
        assert set(tags["mlcycle.drifted"].split(",")) == DRIFTED
        assert all(metrics[f"drifted/{c}"] == 1.0 for c in DRIFTED)
        assert all(metrics[f"drifted/{c}"] == 0.0 for c in STABLE), metrics
        assert metrics["rows"] == ROWS
        assert metrics["quality_drop"] >= 0.05  # the concept change costs the champion
    first, second = runs
    assert first.data.tags["mlcycle.decision"] == "none"
    assert "mlcycle.retrain.run_id" not in first.data.tags
    assert second.data.tags["mlcycle.decision"] == "retrain"
    assert second.data.tags["mlcycle.retrain.version"] == "2"
    assert second.data.tags["mlcycle.retrain.promoted"] == "true"

    # Links: monitoring run -> training run -> version, and the registry's champion.
    retrain_run = client.get_run(second.data.tags["mlcycle.retrain.run_id"])
    assert retrain_run.data.tags["mlcycle.monitoring_run_id"] == second.info.run_id
    assert retrain_run.data.tags["mlcycle.retrain_of_version"] == "1"
    assert int(retrain_run.data.tags["mlcycle.retrain_rows_production"]) == ROWS
    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    assert str(champion.version) == "2"
    assert champion.run_id == retrain_run.info.run_id
    assert champion.tags["mlcycle.monitoring_run_id"] == second.info.run_id
    assert champion.tags["mlcycle.gate.passed"] == "true"

    # The inference log holds what the server answered: both windows by v1, then v2.
    log = read_inference_log(settings.inference_log, settings.model_name, role=None)
    counts = log["model_version"].value_counts()
    assert counts["1"] >= 2 * ROWS and counts["2"] > 0
    labels = pd.read_csv(tmp_path / "demo" / "labels.csv", dtype={"request_id": str})
    assert len(labels) == 2 * ROWS
    assert set(labels["request_id"]) <= set(log["request_id"])


def test_closing_the_demo_early_stops_its_model_server(tmp_path: Path) -> None:
    settings, client = _settings_and_client()
    demo = run_demo(settings, client, tmp_path / "demo", rows=1000)
    pid = None
    with contextlib.closing(demo):
        for line in demo:
            if m := re.search(r"mlcycle serve on (\S+) .*\(pid (\d+),", line):
                pid = int(m.group(2))
                assert httpx.get(m.group(1) + "/ready", timeout=5).status_code == 200
                break
    assert pid is not None
    assert not _alive(pid)
