"""The repository's Dockerfile runs: its exact CMD, ENV and HEALTHCHECK, natively (no daemon).

The image's own environment applies and its command does not allow pickle, so this also proves
the server loads an mlcycle (skops) model with pickle refused.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from serving_support import Server, Store, train_and_register, wait_ready

from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from testkit import free_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("image_command")]

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]
    out = [tuple(ln.split(None, 1)) for ln in lines]
    last_from = max(i for i, (op, _) in enumerate(out) if op == "FROM")
    return [(op, arg) for op, arg in out[last_from:]]  # type: ignore[misc]


def _image_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for op, arg in instructions:
        if op == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(arg))
    return env


def _exec_form(arg: str) -> list[str]:
    cmd = json.loads(arg)
    assert isinstance(cmd, list) and all(isinstance(a, str) for a in cmd)
    return cmd


def test_the_dockerfile_command_serves_a_registered_model_and_turns_healthy(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "store")
    reg = train_and_register(
        store, "imaged", make_scenario(1000, seed=7), SCENARIO_TARGET, "linear",
        time_column=SCENARIO_TIME,
    )  # fmt: skip
    steps = _instructions(DOCKERFILE.read_text())
    cmd = _exec_form(next(arg for op, arg in steps if op == "CMD"))
    health = _exec_form(next(arg for op, arg in steps if op == "HEALTHCHECK").split("CMD ", 1)[1])
    image_env = _image_env(steps)
    assert "--allow-pickle" not in " ".join(cmd)

    port = free_port()
    env = {**store.env(), **image_env, "MODEL_URI": f"models:/{reg.name}@champion"}
    env["PORT"] = str(port)  # the image's 8080 may be taken on a shared machine
    log = store.root / "image-cmd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=store.root, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = Server(proc, port, log)
    try:
        wait_ready(server, "/ready")
        assert httpx.get(f"{server.url}/ready", timeout=10).status_code == 200
        # The HEALTHCHECK command itself, with the image's python on PATH.
        probe = subprocess.run(health, env=env, capture_output=True, timeout=30)
        assert probe.returncode == 0, probe.stderr.decode()[-500:]
        features = reg.features.head(3)
        doc = features.to_dict(orient="split")
        resp = httpx.post(
            f"{server.url}/invocations",
            json={"dataframe_split": {"columns": doc["columns"], "data": doc["data"]}},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text[:300]
        assert len(resp.json()["predictions"]) == 3
        # `exec`: SIGTERM to the container's PID 1 reaches the server itself, which exits.
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        server.stop()
