"""Docker helpers for the container tests: builds, containers on the host network, logs.

Every container runs with ``--network host`` and every server binds loopback ports chosen by
the test, so no traffic leaves the machine's loopback. Builds use the classic builder
(``DOCKER_BUILDKIT=0``): BuildKit would pull its Dockerfile frontend for the ``# syntax=`` line.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}
UID = 10001


@dataclass(frozen=True)
class Docker:
    exe: str

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        done = subprocess.run(
            [self.exe, *args], capture_output=True, text=True, timeout=timeout, env=BUILD_ENV,
            check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args[:3])} failed: {done.stderr[-2000:]}")
        return done.stdout.strip()

    def inspect(self, name: str, fmt: str) -> str:
        return self.run("inspect", "--format", fmt, name)

    def size_mb(self, image: str) -> float:
        return int(self.inspect(image, "{{.Size}}")) / 1e6


def build(docker: Docker, tag: str, dockerfile: Path, context: Path = ROOT) -> str:
    """``docker build`` on the host network (layers are cached between runs)."""
    t0 = time.monotonic()
    docker.run(
        "build", "--network", "host", "-f", str(dockerfile), "-t", tag, str(context),
        timeout=1800,
    )  # fmt: skip
    print(f"built {tag} in {time.monotonic() - t0:.0f}s: {docker.size_mb(tag):.0f} MB")
    return tag


@dataclass
class Container:
    docker: Docker
    name: str

    def logs(self) -> str:
        done = subprocess.run(
            [self.docker.exe, "logs", self.name], capture_output=True, text=True, check=False
        )
        return (done.stdout + done.stderr)[-4000:]

    def running(self) -> bool:
        return self.docker.inspect(self.name, "{{.State.Running}}") == "true"

    def exit_code(self, timeout: float = 60) -> int:
        """Wait for the container to exit and return its exit code."""
        return int(self.docker.run("wait", self.name, timeout=timeout))

    def health(self) -> str:
        return self.docker.inspect(self.name, "{{if .State.Health}}{{.State.Health.Status}}{{end}}")

    def exec(self, *argv: str) -> str:
        return self.docker.run("exec", self.name, *argv)

    def wait_http(self, url: str, timeout: float = 180) -> None:
        """Block until ``url`` answers 200; fail with the container's log otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                pytest.fail(f"container {self.name} exited:\n{self.logs()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            time.sleep(0.3)
        pytest.fail(f"{url} not 200 after {timeout}s:\n{self.logs()}")


@contextlib.contextmanager
def container(
    docker: Docker,
    image: str,
    *cmd: str,
    env: dict[str, str] | None = None,
    mounts: tuple[Path, ...] = (),
    network: str = "host",
) -> Iterator[Container]:
    """Run ``image`` detached on the host network; bind-mount each path at the same path (the
    store records absolute artifact paths); remove the container afterwards."""
    name = f"mlcycle-test-{uuid.uuid4().hex[:10]}"
    argv = ["run", "-d", "--name", name, "--network", network]
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    for path in mounts:
        argv += ["-v", f"{path}:{path}"]
    docker.run(*argv, image, *cmd)
    try:
        yield Container(docker, name)
    finally:
        docker.run("rm", "-f", name, check=False)


def payload(features: pd.DataFrame) -> dict[str, Any]:
    """A ``dataframe_split`` body; missing values become JSON ``null`` (the scenario has some)."""
    return {"dataframe_split": json.loads(features.to_json(orient="split", index=False))}


def chown_tree(path: Path, uid: int = UID) -> None:
    """Hand a store written by the tests (as root) to the images' non-root user."""
    for dirpath, _dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, uid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, uid)
