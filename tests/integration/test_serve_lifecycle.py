"""A real `mlcycle serve` process under load: graceful SIGTERM and hot swap on alias moves."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_support import Registered, Store, split_payload, start_mlcycle, train_and_register

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


def _ready(url: str, proc: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited"
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server never ready")


class Load:
    """Threads posting requests of 1-3 rows until stopped; records every outcome."""

    def __init__(self, url: str, features: Any, threads: int = 6) -> None:
        self.url = url
        self.bodies = [split_payload(features.head(n)) for n in (1, 2, 3)]
        self.stop = threading.Event()
        self.ok: list[tuple[str, str, int]] = []  # (request id, version, rows)
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def _run(self, k: int) -> None:
        i = k
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                rows = i % 3 + 1
                try:
                    r = client.post(self.url + "/invocations", json=self.bodies[rows - 1])
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(type(exc).__name__)
                    if self.stop.is_set():
                        return
                    time.sleep(0.01)
                    continue
                with self.lock:
                    if r.status_code == 200:
                        assert len(r.json()["predictions"]) == rows
                        self.ok.append(
                            (r.headers["x-request-id"], r.headers["x-model-version"], rows)
                        )
                    else:
                        self.failures.append(f"{r.status_code} {r.text[:100]}")
                i += 1


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
        _ready(server.url, server.proc)
        with Load(server.url, churn.features) as load:
            while len(load.ok) < 300:
                time.sleep(0.05)
            os.killpg(server.proc.pid, signal.SIGTERM)
            server.proc.wait(30)
            time.sleep(0.2)
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.log.read_text()[-2000:]
    answered = {rid: rows for rid, _, rows in load.ok}
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
        _ready(server.url, server.proc)
        with Load(server.url, churn.features) as load:

            def wait_for(version: str) -> None:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    with load.lock:
                        if load.ok and load.ok[-1][1] == version:
                            return
                    time.sleep(0.05)
                raise TimeoutError(f"version {version} never answered")

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
    versions = [v for _, v, _ in load.ok]
    runs = [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]
    assert runs[0] == churn.version and v2 in runs and runs[-1] == churn.version
    df = read_inference_log(str(log_root), "life_churn", role=None)
    by_request = df.groupby("request_id")["model_version"].first().to_dict()
    assert by_request == {rid: v for rid, v, _ in load.ok}
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
        _ready(server.url, server.proc)
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
        _ready(server.url, server.proc)
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
