"""Shared fixtures: each test owns its MLflow; real PostgreSQL and S3 (moto) when asked for."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import CI, PG_ADMIN_URL, _pg_reachable, free_port, need, stop_group, wait_for_port

__all__ = ["CI", "PG_ADMIN_URL", "free_port", "need", "stop_group", "wait_for_port"]


@pytest.fixture(autouse=True)
def own_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite store and artifact root per test, in a fresh working directory."""
    for key in list(os.environ):
        if key.startswith(("MLFLOW_", "MLCYCLE_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLCYCLE_ARTIFACT_ROOT", str(tmp_path / "mlartifacts"))
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.tracking import fluent

    # MLflow keeps the experiment of the last set_experiment() in a module global: a test that
    # set one must not send the next test's runs to an experiment id its fresh store lacks.
    fluent._active_experiment_id = None
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()
    fluent._active_experiment_id = None


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that uses a service fixture carries that service's marker, so `-m "not s3"` (the
    # macOS/Windows CI job, which has neither service) leaves it out without a hand-set mark.
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "s3_endpoint" in names:
            item.add_marker(pytest.mark.s3)
        if "pg_url" in names:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    need(_pg_reachable(), "PostgreSQL is not listening on 127.0.0.1:5432")
    import sqlalchemy as sa

    name = f"mlcycle_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's standalone S3 server on a loopback port, for the whole session."""
    exe = Path(sys.executable).with_name("moto_server")
    need(exe.exists(), "moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, 30, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_group(proc)


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server, with MLflow's S3 variables pointing at it."""
    import boto3

    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"mlcycle-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def scenario_csv(tmp_path: Path) -> Path:
    """A small reference period of the demo scenario as CSV."""
    from mlcycle.data import make_scenario

    path = tmp_path / "scenario.csv"
    make_scenario(3000, period="reference", seed=1).to_csv(path, index=False)
    return path
