"""The ASGI app in process, on test-double predictors: endpoints, limits, shedding, hot swap."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fakes import ROW, FakePredictor, score
from starlette.testclient import TestClient

from mlcycle.inference_log import InferenceLog, read_inference_log
from mlcycle.serve.app import ModelSource, ServeOptions, create_app


def test_invocations_answers_mlflow_shape_with_request_id_and_version(make_client) -> None:
    r = score(make_client(), [ROW, {"x": 2.0, "n": 3}])
    assert r.status_code == 200
    assert r.json() == {"predictions": [3.0, 4.0]}
    assert r.headers["x-model-version"] == "1"
    assert len(r.headers["x-request-id"]) == 32


def test_a_client_request_id_is_kept(make_client) -> None:
    r = score(make_client(), headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"


def test_every_response_has_request_id_and_model_version(make_client) -> None:
    client = make_client()
    for resp in (
        client.get("/ping"),
        client.get("/health"),
        client.get("/ready"),
        client.get("/version"),
        client.get("/metrics"),
        client.get("/nope"),
        client.post("/invocations", content=b"{", headers={"content-type": "application/json"}),
    ):
        assert resp.headers["x-request-id"] and resp.headers["x-model-version"] == "1"


def test_ping_and_health_are_liveness(make_client) -> None:
    client = make_client()
    assert client.get("/ping").status_code == 200
    assert client.get("/health").status_code == 200


def test_ready_is_503_until_the_model_is_loaded(make_client) -> None:
    gate = threading.Event()

    def slow_load() -> FakePredictor:
        gate.wait(10)
        return FakePredictor()

    client = make_client(source=ModelSource(slow_load), wait_ready=False)
    r = client.get("/ready")
    assert r.status_code == 503 and r.json()["status"] == "loading"
    assert client.get("/ping").status_code == 200
    assert score(client).status_code == 503
    gate.set()
    deadline = time.monotonic() + 10
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_ready_reports_a_failed_load(make_client) -> None:
    def broken() -> FakePredictor:
        raise RuntimeError("no such model")

    client = make_client(source=ModelSource(broken), wait_ready=False)
    deadline = time.monotonic() + 10
    while client.get("/ready").json()["status"] == "loading":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    r = client.get("/ready")
    assert r.status_code == 503 and "no such model" in r.json()["error"]


def test_a_server_following_an_alias_keeps_trying_until_the_model_appears(make_client) -> None:
    attempts: list[float] = []

    def not_yet_promoted() -> FakePredictor:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise RuntimeError("no version has alias champion")
        return FakePredictor()

    client = make_client(
        source=ModelSource(not_yet_promoted, lambda current: None),
        wait_ready=False,
        reload_interval=0.05,
    )
    deadline = time.monotonic() + 10
    first = client.get("/ready")
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert len(attempts) == 3
    assert first.status_code == 503
    assert client.get("/ready").json().get("error") is None
    assert score(client).status_code == 200


def test_ready_is_503_while_draining(make_client) -> None:
    client = make_client()
    client.app.draining = True  # type: ignore[attr-defined]
    assert client.get("/ready").json()["status"] == "draining"
    assert score(client).status_code == 503


def test_info_names_mlcycle_mlflow_and_the_model(make_client) -> None:
    import mlflow

    import mlcycle

    doc = make_client().get("/info").json()
    assert doc["mlcycle"] == mlcycle.__version__ and doc["mlflow"] == mlflow.__version__
    assert doc["model"]["name"] == "fake" and doc["model"]["version"] == "1"


def test_metrics_count_requests_batches_predictions_and_the_log(make_client, tmp_path) -> None:
    client = make_client(FakePredictor(classifier=True), log=InferenceLog(str(tmp_path)))
    score(client, [ROW, {"x": 1.0, "n": 3}, {"x": 1.0, "n": 5}])
    client.post("/invocations", content=b"{", headers={"content-type": "application/json"})
    text = client.get("/metrics").text
    served = 'role="champion",route="/invocations",status="{}",version="1"'
    assert "mlcycle_requests_total{" + served.format(200) + "} 1.0" in text
    assert "mlcycle_requests_total{" + served.format(400) + "} 1.0" in text
    assert (
        'mlcycle_request_duration_seconds_bucket{le="0.001",role="champion",'
        'route="/invocations",version="1"}'
    ) in text
    assert "mlcycle_batch_rows_sum 3.0" in text
    assert 'mlcycle_predictions_total{label="1",role="champion",version="1"} 2.0' in text
    assert 'mlcycle_predictions_total{label="0",role="champion",version="1"} 1.0' in text
    assert 'mlcycle_model_info{backend="fake",name="fake"' in text
    assert "mlcycle_inference_log_queue_records{" in text
    assert "mlcycle_inference_log_dropped_total{" in text


def test_regression_outputs_are_summarised(make_client) -> None:
    client = make_client()
    score(client, [ROW, {"x": 2.0, "n": 3}])
    text = client.get("/metrics").text
    assert 'mlcycle_prediction_value_count{role="champion",version="1"} 2.0' in text
    assert 'mlcycle_prediction_value_sum{role="champion",version="1"} 7.0' in text


def test_a_body_over_the_limit_is_413_before_parsing(make_client) -> None:
    predictor = FakePredictor()
    client = make_client(predictor, max_body_bytes=1000)
    r = client.post(
        "/invocations", content=b"x" * 5000, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert predictor.calls == 0


def test_a_chunked_body_over_the_limit_is_413(make_client) -> None:
    client = make_client(max_body_bytes=1000)
    chunks = iter([b"x" * 600, b"x" * 600])
    r = client.post("/invocations", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_too_many_rows_is_413(make_client) -> None:
    r = score(make_client(max_rows=3), [ROW] * 4)
    assert r.status_code == 413 and "4 rows" in r.json()["message"]


def test_a_lossy_cast_is_400_naming_the_column(make_client) -> None:
    r = score(make_client(), [{"x": 1.0, "n": 1.5}])
    assert r.status_code == 400 and "'n'" in r.json()["message"]


def test_integer_overflow_is_400_naming_the_column(make_client) -> None:
    r = score(make_client(), [{"x": 1.0, "n": 2**64}])
    assert r.status_code == 400 and "'n'" in r.json()["message"]


def test_infinity_is_400(make_client) -> None:
    body = b'{"dataframe_records": [{"x": Infinity, "n": 1}]}'
    r = make_client().post(
        "/invocations", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "'x'" in r.json()["message"]


def test_unsupported_content_type_is_415(make_client) -> None:
    r = make_client().post("/invocations", content=b"{}", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.headers["content-type"].startswith("text/plain")


def test_error_bodies_are_short(make_client) -> None:
    big = "y" * 100_000
    r = score(make_client(), [{"x": big, "n": 1}])
    assert r.status_code == 400 and len(r.content) < 400


def test_a_request_that_misses_its_deadline_is_shed_with_503_and_retry_after(make_client) -> None:
    predictor = FakePredictor(delay=0.5)
    client = make_client(predictor, timeout=0.2)
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: score(client), range(4)))
    shed = [r for r in responses if r.status_code == 503]
    assert shed, [r.status_code for r in responses]
    for r in shed:
        assert r.headers["retry-after"] == "1"
        assert r.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    # Work of requests that timed out while queued is skipped, not run late.
    assert predictor.calls < 4
    assert client.get("/ready").status_code == 503  # saturated just after shedding
    assert 'mlcycle_shed_requests_total{reason="timeout"}' in client.get("/metrics").text


def test_concurrent_requests_share_model_calls(make_client) -> None:
    predictor = FakePredictor(delay=0.02)
    client = make_client(predictor, max_batch_rows=64)
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda i: score(client, [{"x": float(i), "n": 1}]), range(48)))
    assert [r.json()["predictions"] for r in responses] == [[2.0 * i] for i in range(48)]
    assert predictor.calls < 48


def test_a_failing_request_does_not_fail_its_batch_neighbours(make_client) -> None:
    class Picky(FakePredictor):
        def predict(self, columns):
            if (columns["n"] == 13).any():
                raise ValueError("unlucky")
            return super().predict(columns)

    client = make_client(Picky(delay=0.01))
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda i: score(client, [{"x": 1.0, "n": i}]), range(8, 16)))
    codes = {i: r.status_code for i, r in zip(range(8, 16), responses, strict=True)}
    assert codes.pop(13) == 400 and set(codes.values()) == {200}


def test_scored_records_reach_the_inference_log(make_client, tmp_path: Path) -> None:
    log = InferenceLog(str(tmp_path), flush_seconds=0.05)
    client = make_client(log=log)
    r = score(client, [ROW, {"x": 3.0, "n": 4}], headers={"X-Request-Id": "r1"})
    assert r.status_code == 200
    score(client, [{"x": "bad", "n": 1}])  # refused: not logged
    client.__exit__(None, None, None)  # shutdown flushes
    df = read_inference_log(str(tmp_path), "fake", role=None)
    assert df["request_id"].tolist() == ["r1", "r1"]
    assert df["record_index"].tolist() == [0, 1]
    assert df["prediction"].tolist() == [3.0, 6.0]
    assert df["x"].tolist() == [1.5, 3.0] and df["n"].tolist() == [2, 4]
    assert set(df["role"]) == {"champion"} and set(df["model_version"]) == {"1"}


def test_hot_swap_under_load_fails_no_request_and_headers_name_the_version(make_client) -> None:
    versions = iter(["2"])
    swapped = threading.Event()

    def poll(current: Any) -> Any:
        if not swapped.is_set() and current.version == "1" and time.monotonic() > t_swap[0]:
            swapped.set()
            return FakePredictor(next(versions))
        return None

    t_swap = [float("inf")]  # counted from /ready: startup freezes the heap first
    source = ModelSource(lambda: FakePredictor("1"), poll)
    client = make_client(source=source, reload_interval=0.02)
    t_swap[0] = time.monotonic() + 0.3

    def hit(i: int) -> tuple[int, str, float]:
        r = score(client, [{"x": float(i), "n": 1}])
        return r.status_code, r.headers["x-model-version"], r.json()["predictions"][0]

    results = []
    deadline = time.monotonic() + 5
    with ThreadPoolExecutor(8) as pool:
        while time.monotonic() < deadline and (not swapped.is_set() or len(results) < 400):
            results.extend(pool.map(hit, range(len(results), len(results) + 40)))
    assert swapped.is_set()
    assert {code for code, _, _ in results} == {200}
    seen = [v for _, v, _ in results]
    assert "1" in seen and "2" in seen
    # After the first answer from version 2, no answer comes from version 1 again.
    first_two = seen.index("2")
    assert "1" not in seen[first_two + 8 :]
    assert "mlcycle_model_reloads_total{" in client.get("/metrics").text


def test_shadow_scores_off_the_response_path_and_logs_role_shadow(make_client, tmp_path) -> None:
    log = InferenceLog(str(tmp_path), flush_seconds=0.05)
    source = ModelSource.fixed(FakePredictor("1"), challenger=FakePredictor("2", classifier=True))
    client = make_client(source=source, log=log, shadow=True)
    r = score(client, [ROW, {"x": 1.0, "n": 3}], headers={"X-Request-Id": "s1"})
    assert r.json() == {"predictions": [3.0, 2.0]} and r.headers["x-model-version"] == "1"
    assert client.get("/info").json()["shadow"]["version"] == "2"
    client.__exit__(None, None, None)
    df = read_inference_log(str(tmp_path), "fake", role=None)
    by_role = {role: part for role, part in df.groupby("role")}
    assert by_role["champion"]["prediction"].tolist() == [3.0, 2.0]
    assert by_role["shadow"]["prediction"].tolist() == [0, 1]
    assert set(by_role["shadow"]["model_version"]) == {"2"}
    assert set(by_role["shadow"]["request_id"]) == {"s1"}


def test_shadow_starts_once_a_challenger_is_registered_after_startup(make_client, tmp_path) -> None:
    log = InferenceLog(str(tmp_path), flush_seconds=0.05)
    challenger: list[FakePredictor] = []
    source = ModelSource(
        lambda: FakePredictor("1"),
        poll=lambda current: None,
        poll_challenger=lambda current: challenger[0] if challenger and current is None else None,
    )
    client = make_client(source=source, log=log, shadow=True, reload_interval=0.05)
    score(client, headers={"X-Request-Id": "before"})
    challenger.append(FakePredictor("2", classifier=True))
    deadline = time.monotonic() + 10
    while (client.get("/info").json().get("shadow") or {}).get("version") != "2":
        assert time.monotonic() < deadline, "shadow never started"
        time.sleep(0.02)
    score(client, headers={"X-Request-Id": "after"})
    client.__exit__(None, None, None)
    df = read_inference_log(str(tmp_path), "fake", role=None)
    shadow = df[df["role"] == "shadow"]
    assert set(shadow["request_id"]) == {"after"}


def test_predict_proba_answers_scores_by_class_and_logs_them(make_client, tmp_path) -> None:
    log = InferenceLog(str(tmp_path))
    client = make_client(FakePredictor(classifier=True), log=log)
    rows = [ROW, {"x": 1.0, "n": 3}]
    r = client.post(
        "/invocations",
        json={"dataframe_records": rows, "params": {"predict_method": "predict_proba"}},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [{"0": 0.75, "1": 0.25}, {"0": 0.25, "1": 0.75}]}
    assert score(client, rows).json() == {"predictions": [0, 1]}
    text = client.get("/metrics").text
    assert 'mlcycle_predictions_total{label="1",role="champion",version="1"} 2.0' in text
    log.close()
    df = read_inference_log(str(tmp_path), "fake", role=None)
    proba = df[df["proba_1"].notna()]
    assert proba["prediction"].tolist() == [0, 1]
    assert proba["proba_1"].tolist() == [0.25, 0.75]
    assert df["proba_1"].isna().sum() == 2  # scored with predict


@pytest.mark.parametrize(
    ("classifier", "method", "message"),
    [(True, "predict_log_proba", "predict, predict_proba"), (False, "predict_proba", "classifier")],
)
def test_a_predict_method_the_model_cannot_answer_is_400(
    make_client, classifier: bool, method: str, message: str
) -> None:
    client = make_client(FakePredictor(classifier=classifier))
    r = client.post(
        "/invocations", json={"dataframe_records": [ROW], "params": {"predict_method": method}}
    )
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in r.json()["message"]


def test_version_is_the_mlflow_version_as_mlflow_models_serve_answers(make_client) -> None:
    import mlflow

    assert make_client().get("/version").text == mlflow.__version__


def test_ready_waits_for_every_worker_marked_in_the_shared_directory(tmp_path) -> None:
    import os

    app = create_app(
        ModelSource.fixed(FakePredictor()),
        ServeOptions(),
        None,
        workers=2,
        shared_dir=str(tmp_path),
    )
    with TestClient(app) as client:
        deadline = time.monotonic() + 10
        while not list(tmp_path.glob("mlcycle-ready-*")):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        r = client.get("/ready")
        assert r.status_code == 503
        assert r.json() == {"status": "loading", "error": None, "workers_loaded": 1, "workers": 2}
        (tmp_path / "mlcycle-ready-999999999").touch()  # a worker that died: no claim
        assert client.get("/ready").status_code == 503
        (tmp_path / f"mlcycle-ready-{os.getppid()}").touch()  # a live second worker
        assert client.get("/ready").status_code == 200
    assert not (tmp_path / f"mlcycle-ready-{os.getpid()}").exists()  # removed on shutdown


def test_the_heap_is_frozen_after_the_model_loads_and_after_a_reload(make_client) -> None:
    import gc

    gc.unfreeze()
    try:
        moved = threading.Event()
        source = ModelSource(
            lambda: FakePredictor("1"),
            lambda current: (
                FakePredictor("2") if moved.is_set() and current.version == "1" else None
            ),
        )
        client = make_client(source=source, reload_interval=0.02)
        assert gc.get_freeze_count() > 0  # before /ready said so
        gc.unfreeze()
        moved.set()
        deadline = time.monotonic() + 10
        while client.get("/info").json()["model"]["version"] != "2":
            assert time.monotonic() < deadline, "never reloaded"
            time.sleep(0.02)
        while gc.get_freeze_count() == 0:  # the reload thread freezes right after the swap
            assert time.monotonic() < deadline, "not frozen after the reload"
            time.sleep(0.01)
    finally:
        gc.unfreeze()
