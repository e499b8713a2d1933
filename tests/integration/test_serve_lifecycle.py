"""A real `mlcycle serve` process under load: graceful SIGTERM and hot swap on alias moves."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from serving_support import (
    Registered,
    Store,
    Traffic,
    start_mlcycle,
    train_and_register,
    wait_ready,
)

from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from mlcycle.inference_log import read_inference_log

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve_lifecycle")]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("serve-lifecycle"))


@pytest.fixture(scope="module")
def churn(store: Store) -> Registered:
    frame = make_scenario(2000, period="reference", seed=7)
    return train_and_register(
        store, "life_churn", frame, SCENARIO_TARGET, "linear", time_column=SCENARIO_TIME
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_after_sigterm_under_load_records_logged_equal_records_answered(
    store: Store, churn: Registered, tmp_path: Path, workers: int
) -> None:
    log_root = tmp_path / "ilog"
    server = start_mlcycle(
        store, "models:/life_churn@champion", f"sigterm-{workers}", "--inference-log",
        str(log_root), "--grace", "15", "--workers", str(workers),
    )  # fmt: skip
    try:
        wait_ready(server, "/ready")
        with Traffic.of_rows(server.url, churn.features, threads=6, timeout=30) as load:
            load.wait_records(600)
            os.killpg(server.proc.pid, signal.SIGTERM)
            server.proc.wait(30)
            time.sleep(0.2)
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.log.read_text()[-2000:]
    answered = {a.request_id: a.rows for a in load.answers}
    df = read_inference_log(str(log_root), "life_churn", role=None)
    logged = df.groupby("request_id").size().to_dict()
    assert len(df) == sum(answered.values())
    assert logged == answered
    assert set(df["role"]) == {"champion"}
    assert all(code.startswith(("Connect", "Remote", "Read", "503")) for code in load.failures)


def test_an_alias_move_under_load_swaps_versions_without_failing_a_request(
    store: Store, churn: Registered, tmp_path: Path
) -> None:
    import mlflow
    from mlflow import MlflowClient

    with store.active():
        client = MlflowClient(tracking_uri=store.uri)
        source = client.get_model_version("life_churn", churn.version).source
        v2 = str(mlflow.register_model(source, "life_churn").version)
    log_root = tmp_path / "ilog"
    server = start_mlcycle(
        store, "models:/life_churn@champion", "swap", "--reload-interval", "0.3",
        "--inference-log", str(log_root),
    )  # fmt: skip
    try:
        wait_ready(server, "/ready")
        with Traffic.of_rows(server.url, churn.features, threads=6, timeout=30) as load:

            def wait_for(version: str) -> None:
                load.wait_recent(lambda recent: recent[-1].version == version, n=1)

            time.sleep(0.5)
            with store.active():
                client.set_registered_model_alias("life_churn", "champion", v2)  # promotion
            wait_for(v2)
            time.sleep(0.5)
            with store.active():
                client.set_registered_model_alias(
                    "life_churn", "champion", churn.version
                )  # rollback
            wait_for(churn.version)
            time.sleep(0.3)
        os.killpg(server.proc.pid, signal.SIGTERM)
        server.proc.wait(30)
    finally:
        server.stop()
    assert load.failures == []
    versions = [a.version for a in load.answers]
    runs = [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]
    assert runs[0] == churn.version and v2 in runs and runs[-1] == churn.version
    df = read_inference_log(str(log_root), "life_churn", role=None)
    by_request = df.groupby("request_id")["model_version"].first().to_dict()
    assert by_request == {a.request_id: a.version for a in load.answers}
    assert Counter(df["model_version"]).keys() == {churn.version, v2}


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_leaves_no_metrics_directory_in_tmp(
    store: Store, churn: Registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    # A private TMPDIR: other servers on the machine cannot add or take directories.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    server = start_mlcycle(
        store, "models:/life_churn@champion", f"tmp-{workers}", "--workers", str(workers),
        "--inference-log", str(tmp_path / "ilog"),
    )  # fmt: skip
    try:
        wait_ready(server, "/ready")
        assert "mlcycle_ready" in httpx.get(server.url + "/metrics", timeout=10).text
        during = sorted(p.name for p in tmp.glob("mlcycle-metrics-*"))
        if workers > 1:  # the workers share their counters through this directory
            assert len(during) == 1, during
        os.killpg(server.proc.pid, signal.SIGTERM)
        server.proc.wait(30)
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.log.read_text()[-2000:]
    assert sorted(p.name for p in tmp.glob("mlcycle-metrics-*")) == []


def _children(pid: int) -> list[int]:
    return [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
            for c in (t / "children").read_text().split()]  # fmt: skip


def _maps_library(pid: int, fragment: str) -> bool:
    return fragment in Path(f"/proc/{pid}/maps").read_text()


def test_the_parent_of_workers_loads_no_model_libraries(
    store: Store, churn: Registered, tmp_path: Path
) -> None:
    server = start_mlcycle(
        store, "models:/life_churn@champion", "light-parent", "--workers", "2",
        "--inference-log", str(tmp_path / "ilog"),
    )  # fmt: skip
    try:
        wait_ready(server, "/ready")
        parent = server.proc.pid  # the same process: the CLI execs into the supervisor
        workers = [
            c for c in _children(parent)
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()
        ]  # fmt: skip
        assert len(workers) == 2
        # pandas' compiled modules: mapped by every process that imported MLflow or pandas.
        assert all(_maps_library(w, "/pandas/_libs/") for w in workers)
        assert not _maps_library(parent, "/pandas/_libs/")
        assert not _maps_library(parent, "/sklearn/")
    finally:
        server.stop()
