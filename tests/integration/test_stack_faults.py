"""Faults on the team stack: PostgreSQL stops for a few seconds under a training run and under
a promotion, and the tracking server goes away under a model server.

PostgreSQL is the machine's shared cluster: each outage lasts a few seconds and the cluster
is started again in a ``finally`` whatever happens. Tests running beside an outage would
fail, so these carry the ``pg_outage`` marker and ``make test`` runs them alone, last.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from stack_support import Tracking, compose_argv, fresh_database, running_tracking

from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from testkit import PG_ADMIN_URL, free_port, need, stop_group, wait_for_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.s3,
    pytest.mark.pg_outage,
    pytest.mark.xdist_group("stack"),
]

OUTAGE = 5.0  # seconds PostgreSQL is down
# Client retries (MLflow's own, on 5xx) must outlast the outage: 1+2+4+8+16 s of backoff.
RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def _control() -> list[str] | None:
    """How to stop/start PostgreSQL: ``MLCYCLE_TEST_PG_CONTROL`` (a command with ``{action}``,
    e.g. ``docker {action} <container>`` in CI), else the machine's ``pg_ctlcluster``."""
    template = os.environ.get("MLCYCLE_TEST_PG_CONTROL")
    if template:
        return shlex.split(template)
    exe = shutil.which("pg_ctlcluster")
    root = Path("/etc/postgresql")
    if exe is None or not root.is_dir():
        return None
    versions = sorted(p.name for p in root.iterdir())
    return [exe, "--skip-systemctl-redirect", versions[0], "main", "{action}"] if versions else None


def _pg(action: str) -> None:
    cmd = _control()
    assert cmd is not None
    argv = [part.replace("{action}", action) for part in cmd]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def postgres_down(seconds: float = OUTAGE) -> Iterator[None]:
    """Stop PostgreSQL (its connections are cut) for ``seconds``; always start it again."""
    need(
        _control() is not None,
        "no way to stop PostgreSQL (pg_ctlcluster or MLCYCLE_TEST_PG_CONTROL)",
    )
    try:
        _pg("stop")
        t0 = time.monotonic()
        yield
        time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
    finally:
        _pg("start")
        wait_for_port(5432, 60)
        _wait_for_queries()


def _wait_for_queries(timeout: float = 60) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_ADMIN_URL)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                return
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        engine.dispose()


class Background:
    """Run ``fn`` in a thread; keep its result or exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.result = fn()
        except BaseException as exc:  # the test inspects it
            self.error = exc

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"still running after {timeout}s"


@pytest.fixture
def stack(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Tracking]:
    # Not the shared pg_url fixture: its pooled admin connection would not survive the outage.
    with (
        fresh_database() as url,
        running_tracking(url, s3_endpoint, s3_bucket, tmp_path / "server") as t,
    ):
        t.use(monkeypatch)
        for key, value in RETRIES.items():
            monkeypatch.setenv(key, value)
        yield t


def _train(tmp_path: Path, rows: int = 2000, seed: int = 1, register: str | None = None) -> Any:
    from mlflow import MlflowClient

    from mlcycle.register import register as register_fn
    from mlcycle.train import TrainConfig, train

    path = tmp_path / f"data-{seed}.csv"
    make_scenario(rows, period="reference", seed=seed).to_csv(path, index=False)
    client = MlflowClient()
    cfg = TrainConfig(
        data=str(path), target=SCENARIO_TARGET, time_column=SCENARIO_TIME, model="linear",
        seed=seed, experiment="faults", onnx=False,
    )  # fmt: skip
    result = train(cfg, client)
    if register:
        register_fn(client, result.run_id, register)
    return result


def _runs(client: Any, experiment: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def test_a_training_run_survives_or_fails_cleanly_when_postgres_stops_in_the_middle(
    stack: Tracking, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    job = Background(lambda: _train(tmp_path, register="faulty"))
    deadline = time.monotonic() + 120
    while not any(r.info.status == "RUNNING" for r in _runs(client, "faults")):
        assert time.monotonic() < deadline and job.thread.is_alive(), job.error
        time.sleep(0.2)
    with postgres_down():
        pass
    job.join(300)

    runs = _runs(client, "faults")
    assert len(runs) == 1, [r.info.status for r in runs]  # a retried create made no twin
    run = runs[0]
    assert run.info.status in ("FINISHED", "FAILED"), "the run was left RUNNING"
    print(f"training under the outage: {run.info.status} ({job.error!r})")
    if job.error is None:
        # Acknowledged: everything the result names is there after the outage.
        assert run.info.status == "FINISHED" and run.info.run_id == job.result.run_id
        assert {"test_roc_auc", "val_roc_auc"} <= set(run.data.metrics)
        assert [v.version for v in client.search_model_versions("name='faulty'")] == ["1"]
        from mlflow.pyfunc import load_model

        assert load_model(job.result.model_uri) is not None
    else:
        assert run.info.status == "FAILED", repr(job.error)


def test_a_promotion_leaves_exactly_one_champion_when_postgres_stops_during_it(
    stack: Tracking, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from mlcycle.register import GatePolicy, history, promote

    client = MlflowClient()
    _train(tmp_path, seed=1, register="churn")
    promote(client, "churn", "1")
    _train(tmp_path, seed=2, register="churn")

    job = Background(lambda: promote(client, "churn", "2", policy=GatePolicy(min_improvement=-1.0)))
    time.sleep(0.5)
    with postgres_down():
        pass
    job.join(300)

    versions = {v.version: v for v in client.search_model_versions("name='churn'")}
    production = [n for n, v in versions.items() if v.current_stage == "Production"]
    champion = client.get_model_version_by_alias("churn", "champion").version
    assert production == [champion], "stage and alias disagree or two champions"
    trail = history(client, "churn")
    print(f"promotion under the outage: champion v{champion} ({job.error!r})")
    if job.error is None:
        assert champion == "2" and versions["1"].current_stage == "Archived"
        assert [e.to_version for e in trail if e.action == "promote"][-1] == "2"
    else:
        assert champion == "1", repr(job.error)
        assert versions["2"].current_stage == "Staging"
    audit = _runs(client, "mlcycle-registry-audit")
    assert all(r.info.status != "RUNNING" for r in audit)


def _serve(t: Tracking, workdir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = workdir / f"serve-{port}.log"
    cmd = compose_argv("model-server", "--model", "models:/churn@champion", "--host",
                       "127.0.0.1", "--port", str(port), "--no-inference-log",
                       "--reload-interval", "1")  # fmt: skip
    with log.open("wb") as fh:
        # One quick retry: a registry poll that fails should be counted soon, not after 31 s.
        env = {**t.client_env(), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
        proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    return proc, f"http://127.0.0.1:{port}", log


def _ready(url: str) -> tuple[int, str]:
    try:
        r = httpx.get(url + "/ready", timeout=5)
        return r.status_code, r.text
    except httpx.HTTPError as exc:
        return 0, str(exc)


def _reload_failures(url: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("mlcycle_model_reload_failures_total"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_model_server_keeps_serving_through_database_and_tracking_outages(
    stack: Tracking, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from mlcycle.register import promote

    _train(tmp_path, register="churn")
    promote(MlflowClient(), "churn", "1")
    rows = make_scenario(20, period="reference", seed=9).drop(
        columns=[SCENARIO_TARGET, SCENARIO_TIME]
    )
    body = '{"dataframe_split": ' + rows.to_json(orient="split", index=False) + "}"

    def score() -> httpx.Response:
        return httpx.post(url + "/invocations", content=body, timeout=30,
                          headers={"content-type": "application/json"})  # fmt: skip

    proc, url, log = _serve(stack, tmp_path)
    try:
        deadline = time.monotonic() + 150
        while _ready(url)[0] != 200:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.3)
        first = score()
        assert first.status_code == 200

        # PostgreSQL down: the loaded model answers every request, /ready stays true.
        with postgres_down():
            for _ in range(10):
                r = score()
                assert r.status_code == 200 and r.json() == first.json()
                assert r.headers["x-model-version"] == "1"
                time.sleep(0.3)
            assert _ready(url)[0] == 200

        # The tracking server gone: still serving version 1; the failed registry polls are
        # counted where an operator looks (/metrics), and /ready says it can serve.
        stack.stop()
        t0 = time.monotonic()
        while _reload_failures(url) < 1:
            assert time.monotonic() - t0 < 90, log.read_text()[-2000:]
            assert score().status_code == 200
            time.sleep(0.5)
        assert score().json() == first.json()
        assert _ready(url)[0] == 200

        # A model server started while the tracking server is down has nothing to serve and
        # /ready says so (503 with the reason) instead of pretending.
        proc2, url2, log2 = _serve(stack, tmp_path)
        try:
            deadline = time.monotonic() + 150
            status, text = _ready(url2)
            while status != 503 or "load failed" not in text:
                assert status != 200, "ready without a model"
                assert time.monotonic() < deadline, log2.read_text()[-2000:]
                if proc2.poll() is not None:
                    break  # exiting is also truthful: nothing listens, nothing is ready
                time.sleep(0.5)
                status, text = _ready(url2)
        finally:
            stop_group(proc2)
    finally:
        stop_group(proc)


def test_a_training_run_outlasted_by_the_outage_ends_failed_not_running(
    stack: Tracking, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # no retry budget at all
    client = MlflowClient()
    job = Background(lambda: _train(tmp_path, register="faulty"))
    deadline = time.monotonic() + 120
    while not any(r.info.status == "RUNNING" for r in _runs(client, "faults")):
        assert time.monotonic() < deadline and job.thread.is_alive(), job.error
        time.sleep(0.2)
    with postgres_down(8.0):
        pass
    job.join(300)
    runs = _runs(client, "faults")
    print(f"outlasted: {[r.info.status for r in runs]} ({job.error!r})")
    assert job.error is not None
    assert [r.info.status for r in runs] == ["FAILED"], "the run was left RUNNING"
