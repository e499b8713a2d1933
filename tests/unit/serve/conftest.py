"""The in-process test client of the serve unit tests (one fixture for every file here)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakes import FakePredictor
from starlette.testclient import TestClient

from mlcycle.inference_log import InferenceLog
from mlcycle.serve.app import ModelSource, ServeOptions, create_app


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(
        predictor: Any = None,
        source: ModelSource | None = None,
        log: InferenceLog | None = None,
        wait_ready: bool = True,
        **options: Any,
    ) -> TestClient:
        src = source or ModelSource.fixed(predictor or FakePredictor())
        app = create_app(src, ServeOptions(**options), log)
        client = TestClient(app, raise_server_exceptions=True)
        client.__enter__()
        clients.append(client)
        if wait_ready:
            deadline = time.monotonic() + 10
            while client.get("/ready").status_code != 200:
                assert time.monotonic() < deadline, "never ready"
                time.sleep(0.01)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)
