"""The lifecycle through ``docker-compose.yml`` brought up by a real compose implementation.

No image registry is reachable here, so ``compose.lifecycle.yml`` (test-only) swaps the
third-party images (postgres, minio and its bucket job) for stand-ins built from Debian packages
and pip (``standins/``) and runs the repository's images as the session built them. Every
service runs on the host network on loopback ports picked here; no bridge network is created.
Debian's Compose 1.29 rejects the top-level ``name:`` key, so, as in
``test_compose_config.py``, that
line is dropped and the same name given as ``-p`` (with a unique suffix: runs never collide).

Through the stack: the tracking server refuses anonymous requests; a client with credentials
trains and registers, then promotes; the model server picks up ``@champion`` and scores; its
inference log lands in the S3 stand-in; the monitor service's command analyses that window.
``docker-compose down -v`` runs whatever happens.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import mlflow
import pytest
import yaml
from click.testing import CliRunner
from container_support import ROOT, Docker, build, payload

from mlcycle.cli import cli
from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from testkit import free_port, need

pytestmark = [
    pytest.mark.container,
    pytest.mark.slow,
    pytest.mark.xdist_group("container"),
    pytest.mark.timeout(2400),
]

HERE = Path(__file__).resolve().parent
MODEL = "churn"
BUCKET = "mlcycle"
EVERY_S = 30  # the monitor's window: short, so the test waits at most this long for one


@dataclass
class Stack:
    exe: str
    project: str
    workdir: Path
    env: dict[str, str]
    secrets: dict[str, str]
    ports: dict[str, int]
    file: str = "docker-compose.yml"

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.exe, "-p", self.project, "-f", self.file, *args],
            cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip

    def logs(self) -> str:
        done = self.compose("logs", "--no-color", "--tail", "60", timeout=120)
        return (done.stdout + done.stderr)[-8000:]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"


@pytest.fixture(scope="module")
def standins(docker: Docker) -> dict[str, str]:
    return {
        "postgres": build(
            docker, "mlcycle-standin-postgres:test", HERE / "standins/postgres.Dockerfile",
            context=HERE / "standins",
        ),
        "s3": build(
            docker, "mlcycle-standin-s3:test", HERE / "standins/s3.Dockerfile",
            context=HERE / "standins",
        ),
    }  # fmt: skip


@pytest.fixture
def stack(
    docker: Docker, serve_image: str, stack_image: str, standins: dict[str, str], tmp_path: Path
) -> Iterator[Stack]:
    exe = shutil.which("docker-compose")
    need(exe is not None, "no docker-compose (apt-get install docker-compose)")
    assert exe is not None
    workdir = tmp_path / "stack"
    workdir.mkdir()
    base = (ROOT / "docker-compose.yml").read_text()
    name = yaml.safe_load(base)["name"]
    (workdir / "docker-compose.yml").write_text(
        "".join(ln for ln in base.splitlines(keepends=True) if ln.rstrip() != f"name: {name}")
    )
    shutil.copy(HERE / "compose.lifecycle.yml", workdir)
    shutil.copy(ROOT / "prometheus.yml", workdir)
    # A .env as docs/operations.md asks for: .env.example with every change-me value replaced.
    # Letters, digits, '-' and '_' only: the passwords end up inside URLs.
    values = {
        "POSTGRES_PASSWORD": "pg-" + secrets.token_hex(12),
        "MINIO_ROOT_USER": "mlcycle",
        "MINIO_ROOT_PASSWORD": "s3-" + secrets.token_hex(12),
        "MLCYCLE_ADMIN_PASSWORD": "Pw-" + secrets.token_hex(12),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
        "MODEL_NAME": MODEL,
        "MLCYCLE_BUCKET": BUCKET,
        # The documented cache of verified passwords (docs/operations.md): without it each of
        # the ~200 requests of train, promote and the polling services pays a password hash,
        # minutes on a busy two-core host. Every request still carries and checks credentials
        # (anonymous ones get 401 below); test_stack_image.py covers the uncached default.
        "MLCYCLE_AUTH_CACHE_TTL": "300",
    }
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        key = line.partition("=")[0]
        lines.append(f"{key}={values[key]}" if key in values and "=" in line else line)
    env_text = "\n".join(lines) + "\n"
    assert not [ln for ln in lines if "change-me" in ln and not ln.startswith("#")]
    (workdir / ".env").write_text(env_text)
    ports = {svc: free_port() for svc in ("postgres", "s3", "mlflow", "model-server")}
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "MLCYCLE_TEST_POSTGRES_IMAGE": standins["postgres"],
        "MLCYCLE_TEST_S3_IMAGE": standins["s3"],
        "MLCYCLE_TEST_STACK_IMAGE": stack_image,
        "MLCYCLE_TEST_SERVE_IMAGE": serve_image,
        "MLCYCLE_TEST_PG_PORT": str(ports["postgres"]),
        "MLCYCLE_TEST_S3_PORT": str(ports["s3"]),
        "MLCYCLE_TEST_TRACKING_PORT": str(ports["mlflow"]),
        "MLCYCLE_TEST_SERVE_PORT": str(ports["model-server"]),
    }
    stack = Stack(exe, f"{name}-test-{uuid.uuid4().hex[:8]}", workdir, env, values, ports)
    # Compose merges the two files. Host networking refuses published ports, and Compose 1.29
    # cannot remove list entries in an override (no `!reset`), so the merged file loses them.
    merged = stack.compose("-f", "compose.lifecycle.yml", "config")
    assert merged.returncode == 0, merged.stderr
    config = yaml.safe_load(merged.stdout)
    for svc_name, svc in list(config["services"].items()):
        if svc.get("profiles"):  # prometheus: not part of the test
            del config["services"][svc_name]
            continue
        assert svc.get("network_mode") == "host", svc_name
        svc.pop("ports", None)
    (workdir / "merged.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    stack.file = "merged.yml"
    try:
        yield stack
    finally:
        down = stack.compose("down", "-v", "--remove-orphans", "--timeout", "30")
        assert down.returncode == 0, down.stderr[-3000:]


def _ok(args: list[str]) -> str:
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.stdout


def _inspect(container: str, fmt: str) -> str:
    done = subprocess.run(
        ["docker", "inspect", "--format", fmt, container], capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return done.stdout.strip()


def _wait(check, what: str, stack: Stack, timeout: float = 240) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"{what} not reached after {timeout}s:\n{stack.logs()}")


def test_the_compose_stack_runs_train_promote_serve_and_monitor(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = stack.compose("up", "-d", "--no-build", timeout=900)
    assert up.returncode == 0, up.stderr[-3000:] + stack.logs()
    # Compose itself created no network: every service shares the host's loopback.
    ids = stack.compose("ps", "-q").stdout.split()
    assert len(ids) >= 5, stack.logs()  # create-bucket has exited; `ps -q` lists it too
    for cid in ids:
        assert _inspect(cid, "{{.HostConfig.NetworkMode}}") == "host", cid

    tracking = stack.url("mlflow")
    admin = ("admin", stack.secrets["MLCYCLE_ADMIN_PASSWORD"])
    api = f"{tracking}/api/2.0/mlflow/experiments/search?max_results=5"
    assert httpx.get(api, timeout=60).status_code == 401
    assert httpx.get(api, auth=admin, timeout=60).status_code == 200

    # train -> register (@challenger) -> gate -> promote (@champion), as a client with credentials.
    for key in list(os.environ):  # the suite's per-test local store must not apply here
        if key.startswith(("MLFLOW_", "MLCYCLE_", "AWS_")):
            monkeypatch.delenv(key)
    for key, value in {
        "MLFLOW_TRACKING_URI": tracking,
        "MLFLOW_TRACKING_USERNAME": admin[0],
        "MLFLOW_TRACKING_PASSWORD": admin[1],
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }.items():
        monkeypatch.setenv(key, value)
    mlflow.set_tracking_uri(tracking)
    data = tmp_path / "reference.csv"
    make_scenario(2000, period="reference", seed=3).to_csv(data, index=False)
    out = json.loads(
        _ok(["train", "--data", str(data), "--target", SCENARIO_TARGET, "--time-column",
             SCENARIO_TIME, "--model", "linear", "--register-as", MODEL, "--json"])
    )  # fmt: skip
    assert out["registered_version"] == "1"
    assert "(@champion)" in _ok(["promote", MODEL])

    # The artifacts went through the tracking server into the S3 stand-in's bucket.
    s3 = boto3.client(
        "s3", endpoint_url=stack.url("s3"), region_name="us-east-1",
        aws_access_key_id="mlcycle", aws_secret_access_key=stack.secrets["MINIO_ROOT_PASSWORD"],
    )  # fmt: skip

    def keys(prefix: str) -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    assert any(k.endswith("/MLmodel") for k in keys("artifacts/"))

    # The model server was up with no champion; it loads the promoted version by itself.
    serving = stack.url("model-server")
    _wait(
        lambda: httpx.get(serving + "/ready", timeout=5).status_code == 200,
        "model server /ready", stack,
    )  # fmt: skip
    traffic = make_scenario(300, period="both", seed=11, start="2026-02-01", days=1)
    features = traffic.drop(columns=[SCENARIO_TARGET, SCENARIO_TIME])
    # The request must fall inside one monitoring window: not in the last seconds of one.
    if EVERY_S - time.time() % EVERY_S < 5:
        time.sleep(6)
    scored_at = time.time()
    scored = httpx.post(serving + "/invocations", json=payload(features), timeout=120)
    assert scored.status_code == 200, scored.text[:500]
    assert scored.headers["x-model-version"] == "1"
    assert len(scored.json()["predictions"]) == 300
    server_id = stack.compose("ps", "-q", "model-server").stdout.strip()
    _wait(lambda: _inspect(server_id, "{{.State.Health.Status}}") == "healthy", "healthy", stack)

    # SIGTERM (compose stop) makes the server write what its inference log holds.
    stopped = stack.compose("stop", "--timeout", "60", "model-server")
    assert stopped.returncode == 0, stopped.stderr
    assert any(".parquet" in k for k in keys("inference-log/")), stack.logs()

    # The monitor service's command, for the window that holds the traffic (the compose
    # default is 1h; a short window keeps the wait short).
    window_end = (scored_at // EVERY_S + 1) * EVERY_S
    time.sleep(max(0.0, window_end - time.time() + 1))
    # In the monitor service's container: `docker-compose run` would add links to the
    # dependencies, which host networking refuses. Until a champion existed the service exited
    # and compose restarted it; wait for it to be up.
    _wait(
        lambda: stack.compose("exec", "-T", "monitor", "true", timeout=60).returncode == 0,
        "monitor service running", stack,
    )  # fmt: skip
    loop = stack.compose(
        "exec", "-T", "monitor", "mlcycle", "loop", "--model", MODEL, "--every", f"{EVERY_S}s",
        "--once", "--no-retrain", "--output", "/home/mlcycle/reports",
    )  # fmt: skip
    assert loop.returncode == 0, loop.stderr[-3000:] + stack.logs()
    assert "rows=300" in loop.stdout, loop.stdout + loop.stderr[-2000:]
    # The long-running monitor service is still up (its first hourly window may be empty).
    # The monitor service runs no HTTP server: it carries no health check that could only fail.
    monitor_id = stack.compose("ps", "-q", "monitor").stdout.strip()
    assert _inspect(monitor_id, "{{if .State.Health}}{{.State.Health.Status}}{{end}}") == ""
