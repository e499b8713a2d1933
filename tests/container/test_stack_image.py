"""The stack image (``docker/stack.Dockerfile``): ``mlcycle server`` in the container against
the host's PostgreSQL, with basic auth, on the host network."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from container_support import Docker, container

from testkit import free_port

pytestmark = [
    pytest.mark.container,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.xdist_group("container"),
    pytest.mark.timeout(2400),
]

_LOG_A_RUN = """
import mlflow
mlflow.set_experiment("from-the-host")
with mlflow.start_run() as run:
    mlflow.log_param("image", "stack")
    mlflow.log_metric("score", 0.75)
print(run.info.run_id)
"""


def test_the_stack_image_serves_tracking_with_basic_auth_on_postgres(
    docker: Docker, stack_image: str, pg_url: str, owned_dir: Path
) -> None:
    port = free_port()
    password = "Pw-" + secrets.token_urlsafe(18)
    env = {
        "MLCYCLE_BACKEND_STORE_URI": pg_url,
        "MLCYCLE_ARTIFACTS_DESTINATION": str(owned_dir),
        "MLCYCLE_ADMIN_USERNAME": "admin",
        "MLCYCLE_ADMIN_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
    }
    cmd = ["mlcycle", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--allowed-hosts", "localhost,127.0.0.1"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with container(docker, stack_image, *cmd, env=env, mounts=(owned_dir,)) as c:
        c.wait_http(url + "/health")
        assert c.exec("id", "-u") == "10001"
        api = f"{url}/api/2.0/mlflow/experiments/search?max_results=10"
        assert httpx.get(api, timeout=60).status_code == 401
        assert httpx.get(api, auth=("admin", "wrong-password-1"), timeout=60).status_code == 401

        # A client on the host logs a run with credentials, through the container.
        client_env = {
            "PATH": str(Path(sys.executable).parent),
            "MLFLOW_TRACKING_URI": url,
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": password,
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }
        done = subprocess.run(
            [sys.executable, "-c", _LOG_A_RUN], env=client_env, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:] + c.logs()
        run_id = done.stdout.strip().splitlines()[-1]
        got = httpx.get(
            f"{url}/api/2.0/mlflow/runs/get", params={"run_id": run_id},
            auth=("admin", password), timeout=60,
        )  # fmt: skip
        assert got.status_code == 200, got.text[:300]
        assert got.json()["run"]["data"]["metrics"][0]["value"] == 0.75
        anonymous = httpx.get(
            f"{url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=60
        )
        assert anonymous.status_code == 401
    # The run landed in the host's PostgreSQL, not in the container.
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT count(*) FROM runs WHERE run_uuid = :r"), {"r": run_id}
        )
        assert found.scalar() == 1
    engine.dispose()
