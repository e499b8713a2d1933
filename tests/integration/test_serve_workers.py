"""A real `mlcycle serve --workers 2`: one scrape covers both workers, /ready waits for both,
and predict_proba answers (ONNX fast path) and lands in the inference log."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_support import (
    Registered,
    Server,
    Store,
    split_payload,
    start_mlcycle,
    train_and_register,
)

from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from mlcycle.inference_log import read_inference_log

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve_workers")]

NAME = "workers_churn"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("serve-workers"))


@pytest.fixture(scope="module")
def churn(store: Store) -> Registered:
    frame = make_scenario(1500, period="reference", seed=11)
    return train_and_register(
        store, NAME, frame, SCENARIO_TARGET, "linear", time_column=SCENARIO_TIME
    )


@pytest.fixture
def server(store: Store, churn: Registered, tmp_path: Path) -> Iterator[Server]:
    srv = start_mlcycle(
        store, f"models:/{NAME}@champion", "workers2", "--workers", "2",
        "--inference-log", str(tmp_path / "ilog"),
    )  # fmt: skip
    try:
        yield srv
    finally:
        srv.stop()


def _wait_ready(srv: Server, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert srv.proc.poll() is None, srv.log.read_text()[-2000:]
        try:
            if httpx.get(srv.url + "/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    pytest.fail("never ready:\n" + srv.log.read_text()[-2000:])


def _scrape(srv: Server) -> dict[str, list[Any]]:
    text = httpx.get(srv.url + "/metrics", timeout=10).text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def _total(families: dict[str, list[Any]], family: str, sample: str) -> float:
    return sum(s.value for s in families.get(family, []) if s.name == sample)


def test_two_workers_ready_together_and_one_scrape_counts_both(
    server: Server, churn: Registered, tmp_path: Path
) -> None:
    _wait_ready(server)
    # Right after the first 200, every request is answered: no worker is still loading.
    bodies = [split_payload(churn.features.head(n)) for n in (1, 2, 3)]
    statuses: list[int] = []
    rows = 0
    # A new connection per request lets the kernel hand requests to either worker.
    for i in range(300):
        r = httpx.post(server.url + "/invocations", json=bodies[i % 3], timeout=30)
        statuses.append(r.status_code)
        rows += i % 3 + 1 if r.status_code == 200 else 0
    assert statuses.count(503) == 0 and set(statuses) == {200}, sorted(set(statuses))

    # Each worker flushes its own log (every 5 s) and copies its counts to the shared files.
    deadline = time.monotonic() + 60
    while (
        _total(
            _scrape(server), "mlcycle_inference_log_written", "mlcycle_inference_log_written_total"
        )
        < rows
    ):
        assert time.monotonic() < deadline, "written total never reached the records answered"
        time.sleep(0.5)
    pids_seen: set[str] = set()
    for _ in range(8):  # whichever worker takes the scrape, it reports both
        fams = _scrape(server)
        written = _total(
            fams, "mlcycle_inference_log_written", "mlcycle_inference_log_written_total"
        )
        assert written == rows
        assert (
            _total(fams, "mlcycle_inference_log_dropped", "mlcycle_inference_log_dropped_total")
            == 0
        )
        requests = sum(
            s.value
            for s in fams["mlcycle_requests"]
            if s.name == "mlcycle_requests_total"
            and s.labels["route"] == "/invocations"
            and s.labels["status"] == "200"
        )
        assert requests == 300
        info = [s for s in fams["mlcycle_model_info"] if s.value == 1]
        pids = {s.labels["pid"] for s in info}
        assert len(pids) == 2, info
        assert {s.labels["version"] for s in info} == {churn.version}
        pids_seen |= pids
        assert _total(fams, "mlcycle_workers_ready", "mlcycle_workers_ready") == 2
        assert _total(fams, "mlcycle_ready", "mlcycle_ready") == 1
        assert _total(fams, "mlcycle_model_reloads", "mlcycle_model_reloads_total") == 0
    assert len(pids_seen) == 2
    os.killpg(server.proc.pid, signal.SIGTERM)
    server.proc.wait(60)
    assert server.proc.returncode == 0, server.log.read_text()[-2000:]
    assert len(read_inference_log(str(tmp_path / "ilog"), NAME, role=None)) == rows


def test_each_worker_logs_as_a_single_worker_server_does(server: Server, churn: Registered) -> None:
    # Workers are fresh interpreters: without their own set-up, their INFO lines (the load,
    # each refused request, the inference log's final counts) were silently dropped.
    _wait_ready(server)
    bad = {"dataframe_records": [{"no_such_column": 1}]}
    for _ in range(4):  # new connections: either worker may answer
        assert httpx.post(server.url + "/invocations", json=bad, timeout=30).status_code == 400
    os.killpg(server.proc.pid, signal.SIGTERM)
    server.proc.wait(60)
    text = server.log.read_text()
    assert text.count(f"loaded {NAME} version {churn.version}") == 2, text[-2000:]
    assert len(re.findall(r"mlcycle\.serve\.app: \w+ 400 [A-Z_]+: ", text)) == 4, text[-2000:]
    assert text.count("stopped; inference log:") == 2, text[-2000:]


def test_predict_proba_on_the_onnx_path_answers_class_scores_and_logs_them(
    server: Server, churn: Registered, tmp_path: Path
) -> None:
    _wait_ready(server)
    info = httpx.get(server.url + "/info", timeout=10).json()
    assert info["model"]["backend"] == "onnx"
    body = split_payload(churn.features.head(5))
    labels = httpx.post(server.url + "/invocations", json=body, timeout=30).json()["predictions"]
    r = httpx.post(
        server.url + "/invocations",
        json={**body, "params": {"predict_method": "predict_proba"}},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    rows = r.json()["predictions"]
    assert len(rows) == 5 and all(set(row) == {"0", "1"} for row in rows)
    assert all(abs(sum(row.values()) - 1) < 1e-6 for row in rows)
    assert [int(max(row, key=lambda k: row[k])) for row in rows] == labels
    bad = httpx.post(
        server.url + "/invocations",
        json={**body, "params": {"predict_method": "transform"}},
        timeout=30,
    )
    assert bad.status_code == 400 and "predict, predict_proba" in bad.json()["message"]
    os.killpg(server.proc.pid, signal.SIGTERM)
    server.proc.wait(60)
    df = read_inference_log(str(tmp_path / "ilog"), NAME, role=None)
    assert len(df) == 10
    scored = df[df["proba_1"].notna()]
    assert len(scored) == 5
    assert scored["proba_1"].tolist() == pytest.approx([row["1"] for row in rows])
    assert scored["prediction"].tolist() == labels
