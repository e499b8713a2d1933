"""``docker-compose.yml`` read by a real compose implementation: Debian's ``docker-compose``.

Debian bookworm packages Compose 1.29, which predates the top-level ``name:`` key (Compose v2
reads it; 1.29 rejects the file for it). The test removes only that line and passes the same
name as ``-p``, which is what the key means; everything else is validated as written.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from container_support import ROOT

from testkit import need

pytestmark = [pytest.mark.container, pytest.mark.xdist_group("container")]


def _compose(tmp_path: Path, *args: str, env_file: bool = True) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    need(exe is not None, "no docker-compose (apt-get install docker-compose)")
    assert exe is not None
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    project = doc.pop("name")
    lines = (ROOT / "docker-compose.yml").read_text().splitlines(keepends=True)
    (tmp_path / "docker-compose.yml").write_text(
        "".join(ln for ln in lines if ln.rstrip() != f"name: {project}")
    )
    shutil.copy(ROOT / "prometheus.yml", tmp_path / "prometheus.yml")
    if env_file:
        shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    return subprocess.run(
        [exe, "-p", project, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        check=False, env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
    )  # fmt: skip


def test_compose_accepts_the_file_with_the_example_env(tmp_path: Path) -> None:
    done = _compose(tmp_path, "--profile", "observability", "config")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    services = config["services"]
    assert set(services) == {
        "postgres", "minio", "create-bucket", "mlflow", "model-server", "monitor", "prometheus"
    }  # fmt: skip
    assert services["model-server"]["build"]["dockerfile"] == "Dockerfile"
    assert services["mlflow"]["build"]["dockerfile"] == "docker/stack.Dockerfile"
    # Published ports stay on loopback; secrets came from the env file.
    for svc in services.values():
        for port in svc.get("ports", []):
            host_ip = port.split(":")[0] if isinstance(port, str) else port.get("host_ip")
            assert host_ip == "127.0.0.1", port
    assert services["mlflow"]["environment"]["MLCYCLE_ADMIN_PASSWORD"]
    assert services["model-server"]["depends_on"]["mlflow"]["condition"] == "service_healthy"


def test_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    done = _compose(tmp_path, "config", env_file=False)
    assert done.returncode != 0
    assert "in .env" in done.stderr, done.stderr
