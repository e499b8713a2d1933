"""A Docker engine and the repository's images for the container tests.

The engine and the stand-in base image come from ``scripts/docker_env.py``: a running daemon is
reused, else ``dockerd`` is started and stopped at the end of the session. Where no engine can
run these tests skip, and fail under ``CI=true``.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_support import ROOT, Docker, build

from testkit import need


def _docker_env():  # scripts/ is not a package: load the module from its file
    spec = importlib.util.spec_from_file_location("docker_env", ROOT / "scripts/docker_env.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["docker_env"] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    env = _docker_env()
    try:
        engine = env.prepare()
    except env.DockerUnavailable as exc:
        need(False, f"no Docker engine: {exc}")
    # `mlflow models build-docker` builds FROM python:<this interpreter's version>-slim.
    stock_base = f"python:{platform.python_version()}-slim"
    if not env.image_exists(engine.docker, stock_base):
        subprocess.run([engine.docker, "tag", env.BASE_TAG, stock_base], check=True)
    try:
        yield Docker(engine.docker)
    finally:
        if os.environ.get("MLCYCLE_KEEP_DOCKERD") != "1":
            engine.stop()


@pytest.fixture(scope="session")
def serve_image(docker: Docker) -> str:
    return build(docker, "mlcycle-serve:test", ROOT / "Dockerfile")


@pytest.fixture(scope="session")
def stack_image(docker: Docker) -> str:
    return build(docker, "mlcycle-stack:test", ROOT / "docker/stack.Dockerfile")


@pytest.fixture
def owned_dir(tmp_path: Path) -> Path:
    """A directory the images' non-root user (uid 10001) may write, for bind mounts."""
    path = tmp_path / "mounted"
    path.mkdir()
    os.chown(path, 10001, 10001)
    return path
