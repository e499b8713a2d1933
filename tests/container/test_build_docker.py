"""``mlcycle build-docker`` against a real engine, in both modes: mlcycle's image (default) and
MLflow's stock image (``--stock``); each must build an image that serves the model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from container_support import ROOT, Docker, chown_tree, container, payload
from serving_support import Registered, Store, train_and_register

from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from testkit import free_port

pytestmark = [
    pytest.mark.container,
    pytest.mark.slow,
    pytest.mark.xdist_group("container"),
    pytest.mark.timeout(2400),
]

MLCYCLE = str(Path(sys.executable).with_name("mlcycle"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("build-docker") / "store")


@pytest.fixture(scope="module")
def model(store: Store) -> Registered:
    frame = make_scenario(800, period="reference", seed=5)
    reg = train_and_register(
        store, "bd_churn", frame, SCENARIO_TARGET, "linear", time_column=SCENARIO_TIME
    )
    chown_tree(store.root)
    return reg


def _build_docker(store: Store, *args: str) -> None:
    env = {**store.env(), "DOCKER_BUILDKIT": "0"}  # no registry for BuildKit's frontend
    done = subprocess.run(
        [MLCYCLE, "build-docker", *args], cwd=store.root, env=env, capture_output=True,
        text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


def test_build_docker_builds_the_mlcycle_image_that_serves(
    docker: Docker, store: Store, model: Registered
) -> None:
    image = "mlcycle-build-docker:test"
    # The default model keeps the rendered Dockerfile equal to the repository's, so the build
    # reuses the layers of the image built by the other tests; MODEL_URI is set at run time.
    _build_docker(store, "--image", image, "--context", str(ROOT))
    assert docker.inspect(image, "{{.Config.User}}") == "mlcycle"
    port = free_port()
    env = {"MLFLOW_TRACKING_URI": store.uri, "PORT": str(port),
           "MODEL_URI": "models:/bd_churn@champion"}  # fmt: skip
    with container(docker, image, env=env, mounts=(store.root,)) as c:
        url = f"http://127.0.0.1:{port}"
        c.wait_http(url + "/ready")
        r = httpx.post(url + "/invocations", json=payload(model.features), timeout=60)
        assert r.status_code == 200, r.text[:300] + c.logs()
        assert len(r.json()["predictions"]) == len(model.features)


def test_build_docker_stock_builds_mlflows_image_that_serves(
    docker: Docker, store: Store, model: Registered
) -> None:
    image = "mlcycle-build-docker-stock:test"
    _build_docker(store, "--stock", "--image", image, "--model",
                  f"models:/bd_churn/{model.version}")  # fmt: skip
    rows = model.features
    # MLflow's image listens on fixed ports (nginx 8080, uvicorn 8000) that may be taken on
    # the host: give it no network at all and score through its own loopback instead.
    with container(docker, image, network="none") as c:
        probe = f"""
import json, sys, time, urllib.request
body = {json.dumps(payload(rows))!r}.encode()
for _ in range(240):
    try:
        urllib.request.urlopen("http://127.0.0.1:8080/ping", timeout=2)
        break
    except Exception:
        time.sleep(1)
req = urllib.request.Request("http://127.0.0.1:8080/invocations", data=body,
                             headers={{"Content-Type": "application/json"}})
print(json.dumps(json.load(urllib.request.urlopen(req, timeout=60))))
"""
        out = c.docker.run("exec", c.name, "python", "-c", probe, timeout=300, check=False)
        assert out, c.logs()
        predictions = json.loads(out.splitlines()[-1])["predictions"]
    assert len(predictions) == len(rows)
