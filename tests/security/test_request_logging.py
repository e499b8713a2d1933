"""Log flooding (issue 10, item 8): 12,000 malformed requests wrote 2.3 MB of tracebacks."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from mlcycle.serve.app import ModelSource, create_app
from mlcycle.serve.model import ModelRef
from mlcycle.serve.protocol import Column, InputSchema

SCHEMA = InputSchema((Column("x", "double"),))


class Doubler:
    backend = "fake"
    name = "fake"
    version = "1"
    is_classifier = False
    schema = SCHEMA
    ref = ModelRef("models:/fake@champion", "fake", "1", "", "champion", "alias")

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        return columns["x"] * 2


def test_each_malformed_request_logs_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(ModelSource.fixed(Doubler()))
    bodies: list[Any] = [
        b'{"dataframe_split": {"columns": [["x"]], "data": [[1]]}}',  # unhashable name
        b'{"dataframe_split": {"columns": [{"a": 1}], "data": [[1]]}}',
        b"{",
        b'{"inputs": {"x": [true]}}',
    ]
    with TestClient(app) as client:
        deadline = time.monotonic() + 10
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        caplog.clear()
        with caplog.at_level(logging.DEBUG - 1, logger="mlcycle"):
            for body in bodies:
                r = client.post(
                    "/invocations", content=body, headers={"content-type": "application/json"}
                )
                assert r.status_code == 400, r.text
            # Taken before the app stops: its shutdown line is not about these requests.
            records = [r for r in caplog.records if r.name.startswith("mlcycle")]
    assert len(records) == len(bodies), [r.getMessage() for r in records]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in records)
