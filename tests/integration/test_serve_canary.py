"""A real `mlcycle serve --canary` process: the share, sticky keys, per-arm evidence, the swap."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_support import (
    BIN,
    Answer,
    Registered,
    Server,
    Store,
    Traffic,
    split_payload,
    start_mlcycle,
    train_and_register,
)

from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from mlcycle.inference_log import read_inference_log
from mlcycle.serve.canary import CanaryRouter

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve_canary")]

NAME = "canary_churn"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("serve-canary"))


@pytest.fixture(scope="module")
def churn(store: Store) -> Registered:
    frame = make_scenario(2000, period="reference", seed=11)
    return train_and_register(
        store, NAME, frame, SCENARIO_TARGET, "linear", time_column=SCENARIO_TIME
    )


def _client(store: Store) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=store.uri)


def _new_version(store: Store, churn: Registered) -> str:
    """Another version of the same model (same files: the arms differ by version only)."""
    import mlflow

    with store.active():
        source = _client(store).get_model_version(NAME, churn.version).source
        return str(mlflow.register_model(source, NAME).version)


def _set_challenger(store: Store, version: str | None) -> None:
    with store.active():
        client = _client(store)
        if version is None:
            client.delete_registered_model_alias(NAME, "challenger")
        else:
            client.set_registered_model_alias(NAME, "challenger", version)


def _ready(server: Server, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.proc.poll() is None, server.log.read_text()[-3000:]
        try:
            if httpx.get(server.url + "/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server never ready:\n" + server.log.read_text()[-3000:])


def _stop(server: Server) -> None:
    """SIGTERM: drain and flush the inference log, then make sure the group is gone."""
    try:
        os.killpg(server.proc.pid, signal.SIGTERM)
        server.proc.wait(60)
    finally:
        server.stop()


def _fire(url: str, body: dict[str, Any], n: int, threads: int = 8,
          keys: list[str] | None = None) -> list[tuple[int, str, str, str]]:  # fmt: skip
    """``n`` requests from ``threads`` keep-alive clients: (status, version, role, key)."""

    def run(k: int) -> list[tuple[int, str, str, str]]:
        out = []
        with httpx.Client(timeout=30) as client:
            for i in range(k, n, threads):
                key = keys[i % len(keys)] if keys else ""
                headers = {"X-Canary-Key": key} if key else {}
                r = client.post(url + "/invocations", json=body, headers=headers)
                out.append((r.status_code, r.headers.get("x-model-version", ""),
                            r.headers.get("x-model-role", ""), key))  # fmt: skip
        return out

    with ThreadPoolExecutor(threads) as pool:
        return [x for part in pool.map(run, range(threads)) for x in part]


def _per_arm(url: str) -> Counter[tuple[str, str]]:
    """200 answers of /invocations by (version, role), from one /metrics scrape."""
    counts: Counter[tuple[str, str]] = Counter()
    text = httpx.get(url + "/metrics", timeout=10).text
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if (
                s.name == "mlcycle_requests_total"
                and s.labels["route"] == "/invocations"
                and s.labels["status"] == "200"
            ):
                counts[(s.labels["version"], s.labels["role"])] += int(s.value)
    return counts


def _within_binomial(observed: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(observed - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("workers", [1, 2])
def test_the_share_holds_and_metrics_and_log_rows_equal_the_answers_per_arm(
    store: Store, churn: Registered, tmp_path: Path, workers: int
) -> None:
    v2 = _new_version(store, churn)
    _set_challenger(store, v2)
    log_root = tmp_path / "ilog"
    server = start_mlcycle(
        store, f"models:/{NAME}@champion", f"share-{workers}", "--canary", "10%",
        "--workers", str(workers), "--inference-log", str(log_root),
    )  # fmt: skip
    try:
        _ready(server)
        n = 5000
        answers = _fire(server.url, split_payload(churn.features.head(1)), n)
        assert {status for status, *_ in answers} == {200}
        arms = Counter((version, role) for _, version, role, _ in answers)
        assert set(arms) == {(churn.version, "champion"), (v2, "challenger")}
        observed = arms[(v2, "challenger")]
        assert _within_binomial(observed, n, 0.10), f"{observed} of {n} on the challenger"
        time.sleep(1.5)  # --workers 2: each worker copies its counts every 0.5 s
        assert _per_arm(server.url) == arms
        _stop(server)
    finally:
        server.stop()
        _set_challenger(store, None)
    df = read_inference_log(str(log_root), NAME, role=None)
    assert Counter(zip(df["model_version"], df["role"], strict=True)) == arms


def test_the_same_key_always_gets_the_same_arm_in_every_worker_and_after_a_restart(
    store: Store, churn: Registered
) -> None:
    v2 = _new_version(store, churn)
    _set_challenger(store, v2)
    keys = [f"user-{i}" for i in range(300)]
    router = CanaryRouter(0.3, "X-Canary-Key")
    expected = {
        k: "challenger" if router.to_challenger([(b"x-canary-key", k.encode())]) else "champion"
        for k in keys
    }
    try:
        for run in range(2):  # a restart keeps every key on its arm
            server = start_mlcycle(
                store, f"models:/{NAME}@champion", f"sticky-{run}", "--canary", "0.3",
                "--workers", "2", "--no-inference-log",
            )  # fmt: skip
            try:
                _ready(server)
                answers = _fire(server.url, split_payload(churn.features.head(1)), 1200,
                                keys=keys)  # fmt: skip
            finally:
                _stop(server)
            assert {status for status, *_ in answers} == {200}
            seen: dict[str, set[str]] = {}
            for _, _, role, key in answers:
                seen.setdefault(key, set()).add(role)
            assert seen == {k: {expected[k]} for k in keys}
    finally:
        _set_challenger(store, None)


def _load(url: str, body: dict[str, Any]) -> Traffic:
    return Traffic(url, [body], threads=6, timeout=30)


def _arms(recent: list[Answer]) -> set[tuple[str, str]]:
    """The (version, role) pairs that answered ``recent``."""
    return {(a.version, a.role) for a in recent}


def test_the_canary_starts_by_itself_and_promotion_ends_it_under_load_with_no_failure(
    store: Store, churn: Registered
) -> None:
    from mlcycle.register import promote

    v2 = _new_version(store, churn)
    server = start_mlcycle(
        store, f"models:/{NAME}@champion", "promote", "--canary", "50%",
        "--reload-interval", "0.3", "--no-inference-log",
    )  # fmt: skip
    try:
        _ready(server)
        with _load(server.url, split_payload(churn.features.head(2))) as load:
            load.wait_recent(lambda recent: {a.role for a in recent} == {"champion"})
            _set_challenger(store, v2)  # a new @challenger starts its canary by itself
            load.wait_recent(lambda recent: (v2, "challenger") in _arms(recent))
            with store.active():
                promote(_client(store), NAME, v2, force=True, reason="canary test")
            load.wait_recent(lambda recent: _arms(recent) == {(v2, "champion")})
            info = httpx.get(server.url + "/info", timeout=5).json()
        _stop(server)
    finally:
        server.stop()
    assert load.failures == []
    assert info["canary"]["active"] is False and info["model"]["version"] == v2
    roles = [a.role for a in load.answers]
    first, last = roles.index("challenger"), len(roles) - 1 - roles[::-1].index("challenger")
    assert "champion" in roles[:first] and roles[last + 1 :]


def test_removing_the_challenger_ends_the_canary_under_load_with_no_failure(
    store: Store, churn: Registered
) -> None:
    with store.active():  # an earlier test may have promoted another version
        champion = str(_client(store).get_model_version_by_alias(NAME, "champion").version)
    v2 = _new_version(store, churn)
    _set_challenger(store, v2)
    server = start_mlcycle(
        store, f"models:/{NAME}@champion", "rollback", "--canary", "0.5",
        "--reload-interval", "0.3", "--no-inference-log",
    )  # fmt: skip
    try:
        _ready(server)
        with _load(server.url, split_payload(churn.features.head(1))) as load:
            load.wait_recent(lambda recent: (v2, "challenger") in _arms(recent))
            _set_challenger(store, None)  # rollback: the alias goes
            load.wait_recent(lambda recent: _arms(recent) == {(champion, "champion")})
        _stop(server)
    finally:
        server.stop()
    assert load.failures == []


def test_a_share_raised_in_the_registry_is_followed_by_the_running_server(
    store: Store, churn: Registered
) -> None:
    from mlcycle.register import set_canary_share

    v2 = _new_version(store, churn)
    _set_challenger(store, v2)
    server = start_mlcycle(
        store, f"models:/{NAME}@champion", "raise", "--canary", "10%",
        "--reload-interval", "0.3", "--no-inference-log",
    )  # fmt: skip
    body = split_payload(churn.features.head(1))
    try:
        _ready(server)
        before = httpx.get(server.url + "/info", timeout=5).json()["canary"]
        at_10 = _fire(server.url, body, 2000)
        with store.active():  # what `mlcycle canary --act` does on good evidence at 10 %
            set_canary_share(_client(store), NAME, v2, 0.5, reason="canary test")
        deadline = time.monotonic() + 30
        while httpx.get(server.url + "/info", timeout=5).json()["canary"]["share"] != 0.5:
            assert time.monotonic() < deadline, "the server kept its startup share"
            time.sleep(0.1)
        at_50 = _fire(server.url, body, 2000)
        _stop(server)
    finally:
        server.stop()
        _set_challenger(store, None)
    assert before["share"] == 0.1 and before["active"] is True
    assert {status for status, *_ in at_10 + at_50} == {200}
    for answers, share in ((at_10, 0.1), (at_50, 0.5)):
        observed = sum(role == "challenger" for _, _, role, _ in answers)
        assert _within_binomial(observed, len(answers), share), f"{observed} at {share}"


def test_a_canary_on_a_model_that_follows_no_alias_exits_non_zero(
    store: Store, churn: Registered
) -> None:
    cmd = [str(BIN / "mlcycle"), "serve", "--model", f"models:/{NAME}/{churn.version}",
           "--canary", "10%", "--port", "0"]  # fmt: skip
    done = subprocess.run(
        cmd, cwd=store.root, env=store.env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "--canary needs a registered model followed by alias or stage" in done.stderr
    assert sys.executable  # the venv's mlcycle ran
