"""Helpers for the team-stack tests: ``mlcycle server`` on a fresh PostgreSQL database and a
fresh S3 bucket (moto), run as a process group exactly as docker-compose runs it.

Module-scoped fixtures cannot use the per-test ``pg_url``, so :func:`fresh_database` makes
databases on its own, the same way.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

import compose_support
from testkit import PG_ADMIN_URL, free_port, stop_group, wait_for_answer

BIN = Path(sys.executable).parent
# Measured: 20–35 s from exec to /health on two busy shared cores (schema creation included).
START_TIMEOUT = 180.0
S3_KEYS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database (``postgresql+psycopg2://``), dropped afterwards.

    Each step uses a fresh engine, so a PostgreSQL restart in between (the fault tests)
    leaves no stale pooled connection behind.
    """
    import sqlalchemy as sa

    def admin_run(sql: str) -> None:
        engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(sql))
        finally:
            engine.dispose()

    name = f"mlcycle_stack_{uuid.uuid4().hex[:10]}"
    admin_run(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin_run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_bucket(endpoint: str) -> str:
    import boto3

    name = f"mlcycle-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, **_boto_kwargs()).create_bucket(Bucket=name)
    return name


def _boto_kwargs() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_KEYS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_KEYS["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_KEYS["AWS_DEFAULT_REGION"],
    }


def s3_keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under ``prefix`` in ``bucket``."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, **_boto_kwargs())
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def base_env(s3_endpoint: str) -> dict[str, str]:
    """The environment of a stack process: no inherited MLflow/mlcycle settings, S3 keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLCYCLE_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(S3_KEYS)
    env["MLFLOW_S3_ENDPOINT_URL"] = s3_endpoint
    env["AWS_ENDPOINT_URL"] = s3_endpoint
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    return env


@dataclass
class Tracking:
    """A running ``mlcycle server``."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    backend: str
    bucket: str
    s3_endpoint: str
    admin_user: str = "admin"
    admin_password: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_env(self, user: str | None = None, password: str | None = None) -> dict[str, str]:
        """What a stack client (trainer, model server, monitor) gets in compose."""
        env = base_env(self.s3_endpoint)
        env["MLFLOW_TRACKING_URI"] = self.url
        env["MLFLOW_TRACKING_USERNAME"] = user or self.admin_user
        env["MLFLOW_TRACKING_PASSWORD"] = password or self.admin_password
        # Fail fast instead of MLflow's default 7 retries with 2^n backoff (minutes).
        env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = env.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        env["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
        return env

    def use(self, mp: pytest.MonkeyPatch, user: str | None = None, pw: str | None = None) -> None:
        """Point this process's mlflow at the server as ``user`` (admin by default)."""
        import mlflow

        for key in list(os.environ):
            if key.startswith(("MLFLOW_", "MLCYCLE_")):
                mp.delenv(key)
        for key, value in self.client_env(user, pw).items():
            if key.startswith(("MLFLOW_", "AWS_")):
                mp.setenv(key, value)
        mlflow.set_tracking_uri(self.url)

    def auth(self) -> tuple[str, str]:
        return (self.admin_user, self.admin_password)

    def create_user(self, username: str, password: str) -> None:
        r = httpx.post(
            f"{self.url}/api/2.0/mlflow/users/create",
            json={"username": username, "password": password},
            auth=self.auth(),
            timeout=60,
        )
        assert r.status_code == 200, r.text

    def grant(self, username: str, resource_type: str, resource_id: str, permission: str) -> None:
        """Grant ``permission`` (READ, EDIT, MANAGE, …) on one resource, as the admin."""
        r = httpx.post(
            f"{self.url}/api/3.0/mlflow/users/permissions/grant",
            json={
                "username": username,
                "resource_type": resource_type,  # experiment, registered_model, …
                "resource_id": resource_id,
                "permission": permission,
            },
            auth=self.auth(),
            timeout=60,
        )
        assert r.status_code == 200, r.text

    def stop(self) -> None:
        stop_group(self.proc, grace=20)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def compose_argv(service: str, *overrides: str) -> list[str]:
    """The compose service's command run natively: this venv's ``mlcycle``, then overrides
    (click keeps the last value of an option given twice)."""
    argv = compose_support.command(service)
    assert argv[0] == "mlcycle", argv
    return [str(BIN / "mlcycle"), *argv[1:], *overrides]


def start_tracking(
    backend: str,
    s3_endpoint: str,
    bucket: str,
    workdir: Path,
    *,
    auth_cache_ttl: int = 60,
    extra_env: dict[str, str] | None = None,
) -> Tracking:
    """Start the compose ``mlflow`` service natively (returns before it is ready).

    Its command comes from docker-compose.yml; its environment has exactly compose's keys,
    pointed at this test's database, bucket and S3 endpoint.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    password = "Pw-" + secrets.token_urlsafe(18)
    wanted = {
        "MLCYCLE_BACKEND_STORE_URI": backend,
        "MLCYCLE_ARTIFACTS_DESTINATION": f"s3://{bucket}/artifacts",
        "MLCYCLE_ADMIN_USERNAME": "admin",
        "MLCYCLE_ADMIN_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
        # The password hash costs ~0.3 s of CPU per request on these cores; cache a minute.
        "MLCYCLE_AUTH_CACHE_TTL": str(auth_cache_ttl),
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        **S3_KEYS,
    }
    compose_env = compose_support.environment("mlflow")
    assert set(compose_env) == set(wanted), set(compose_env) ^ set(wanted)
    env = base_env(s3_endpoint)
    env.update(wanted)
    env.update(extra_env or {})
    cmd = compose_argv("mlflow", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
    log = workdir / f"tracking-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # mlflow server spawns uvicorn and workers: stop the group
        )
    return Tracking(proc, port, log, backend, bucket, s3_endpoint, "admin", password)


def wait_healthy(t: Tracking, timeout: float = START_TIMEOUT) -> float:
    """Block until the server answers an authenticated API call; fail with its log."""

    def answered() -> bool:
        r = httpx.get(
            f"{t.url}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": "Default"},
            auth=t.auth(),
            timeout=30,
        )
        return r.status_code == 200

    try:
        return wait_for_answer(t.proc, t.port, answered, timeout, pause=0.3)
    except (RuntimeError, TimeoutError) as exc:
        t.stop()
        pytest.fail(f"{exc}\n--- server log ---\n{t.log_text()[-4000:]}")


@contextlib.contextmanager
def running_tracking(
    backend: str, s3_endpoint: str, bucket: str, workdir: Path, **kw: object
) -> Iterator[Tracking]:
    t = start_tracking(backend, s3_endpoint, bucket, workdir, **kw)  # type: ignore[arg-type]
    try:
        wait_healthy(t)
        yield t
    finally:
        t.stop()


def group_cmdlines(pgid: int) -> list[str]:
    """Command lines of every live process in process group ``pgid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.getpgid(int(entry.name)) == pgid:
                raw = (entry / "cmdline").read_bytes()
                out.append(raw.replace(b"\0", b" ").decode(errors="replace"))
    return out
