"""The model-server image (``Dockerfile``) built and run by a real Docker engine.

The image serves a champion from a mounted embedded store (SQLite + artifact directory) on the
host network, exactly as a user runs it, and is held to what the native server does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from container_support import Container, Docker, chown_tree, container, payload
from serving_support import (
    Registered,
    Store,
    Traffic,
    start_mlcycle,
    train_and_register,
    wait_ready,
)

from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from mlcycle.inference_log import read_inference_log
from testkit import free_port

# The first test also pays for the engine, the base image and the build (minutes when fresh).
pytestmark = [
    pytest.mark.container,
    pytest.mark.slow,
    pytest.mark.xdist_group("container"),
    pytest.mark.timeout(2400),
]

ROWS = 200


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("serve-image") / "store")


@pytest.fixture(scope="module")
def churn(store: Store) -> Registered:
    frame = make_scenario(1500, period="reference", seed=11)
    reg = train_and_register(
        store, "img_churn", frame, SCENARIO_TARGET, "linear", time_column=SCENARIO_TIME,
        sample=ROWS,
    )  # fmt: skip
    chown_tree(store.root)
    return reg


def _env(store: Store, port: int, model: str, log_root: Path | None = None) -> dict[str, str]:
    env = {"MLFLOW_TRACKING_URI": store.uri, "MODEL_URI": model, "PORT": str(port)}
    if log_root is not None:
        env["MLCYCLE_INFERENCE_LOG"] = str(log_root)
    return env


@pytest.fixture(scope="module")
def served(
    docker: Docker, serve_image: str, store: Store, churn: Registered
) -> Iterator[tuple[Container, str, Path]]:
    """The image serving ``img_churn@champion`` with its inference log on a mounted directory."""
    port = free_port()
    log_root = store.root / "ilog-served"
    log_root.mkdir()
    chown_tree(log_root)
    with container(
        docker, serve_image, env=_env(store, port, "models:/img_churn@champion", log_root),
        mounts=(store.root,),
    ) as c:  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        c.wait_http(url + "/ready")
        yield c, url, log_root


def test_the_image_answers_ready_and_runs_as_the_non_root_user(served, docker: Docker) -> None:
    c, url, _ = served
    assert httpx.get(url + "/ready", timeout=10).status_code == 200
    assert docker.inspect(c.name, "{{.Config.User}}") == "mlcycle"
    # PID 1 is the server itself (exec), owned by the image's user, not root.
    assert c.exec("sh", "-c", "stat -c %u /proc/1") == "10001"
    assert "mlcycle" in c.exec("cat", "/proc/1/cmdline").replace("\0", " ")


def test_the_image_predicts_what_mlcycle_serve_predicts_natively_on_200_rows(
    served, store: Store, churn: Registered
) -> None:
    _, url, _ = served
    body = payload(churn.features)
    assert len(churn.features) == ROWS
    in_image = httpx.post(url + "/invocations", json=body, timeout=60)
    assert in_image.status_code == 200, in_image.text[:500]
    native = start_mlcycle(store, "models:/img_churn@champion", "native", "--no-inference-log")
    try:
        wait_ready(native, "/ready")
        expected = httpx.post(native.url + "/invocations", json=body, timeout=60)
    finally:
        native.stop()
    assert expected.status_code == 200, expected.text[:500]
    assert in_image.json()["predictions"] == expected.json()["predictions"]
    assert len(in_image.json()["predictions"]) == ROWS


def test_the_healthcheck_turns_healthy(served) -> None:
    c, _, _ = served
    deadline = time.monotonic() + 120
    while c.health() != "healthy" and time.monotonic() < deadline:
        assert c.health() in ("starting", "healthy"), c.logs()
        time.sleep(1)
    assert c.health() == "healthy", c.logs()


def test_sigterm_drains_in_flight_requests_and_the_inference_log_matches_the_200s(
    docker: Docker, serve_image: str, store: Store, churn: Registered
) -> None:
    port = free_port()
    log_root = store.root / "ilog-drain"
    log_root.mkdir()
    chown_tree(log_root)
    url = f"http://127.0.0.1:{port}"
    with container(
        docker, serve_image, env=_env(store, port, "models:/img_churn@champion", log_root),
        mounts=(store.root,),
    ) as c:  # fmt: skip
        c.wait_http(url + "/ready")
        with Traffic.of_rows(url, churn.features) as load:
            load.wait_records(200)
            # What `docker stop` sends: SIGTERM to PID 1, the server itself.
            docker.run("kill", "--signal", "TERM", c.name)
            code = c.exit_code(timeout=90)
        logs = c.logs()
    assert code == 0, logs
    answered = {a.request_id: a.rows for a in load.answers}
    df = read_inference_log(str(log_root), "img_churn", role=None)
    assert len(df) == sum(answered.values()), logs
    assert df.groupby("request_id").size().to_dict() == answered
    # Once draining, the server refuses new work (503) or the port is gone; nothing else.
    assert all(o.startswith(("Connect", "Remote", "Read", "503")) for o in load.failures), (
        load.failures
    )


def test_the_image_refuses_a_pickled_model(
    docker: Docker, serve_image: str, store: Store, churn
) -> None:
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    with store.active():
        X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
        model = LogisticRegression().fit(X, [0, 0, 1, 1])
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                model, name="model", signature=infer_signature(X, model.predict(X)),
                serialization_format="cloudpickle", registered_model_name="img_pickled",
                pip_requirements=["scikit-learn"],
            )  # fmt: skip
    chown_tree(store.root)
    port = free_port()
    with container(
        docker, serve_image, env=_env(store, port, "models:/img_pickled/1"), mounts=(store.root,)
    ) as c:
        code = c.exit_code(timeout=180)
        logs = c.logs()
    assert code != 0, logs
    assert "--allow-pickle" in logs, logs
