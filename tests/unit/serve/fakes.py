"""Test doubles of the serve unit tests: a fake predictor, its schema and a one-row call."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from starlette.testclient import TestClient

from mlcycle.serve.model import ModelRef
from mlcycle.serve.protocol import Column, InputSchema

SCHEMA = InputSchema((Column("x", "double", allow_missing=True), Column("n", "long")))
ROW = {"x": 1.5, "n": 2}


class FakePredictor:
    """Doubles ``x`` (a regressor) or labels ``n`` odd/even (a classifier)."""

    backend = "fake"

    def __init__(self, version: str = "1", delay: float = 0.0, classifier: bool = False) -> None:
        self.name = "fake"
        self.version = version
        self.delay = delay
        self.is_classifier = classifier
        self.schema = SCHEMA
        self.ref = ModelRef("models:/fake@champion", "fake", version, "", "champion", "alias")
        self.calls = 0

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.is_classifier:
            return columns["n"] % 2
        return columns["x"] * 2

    proba_classes = (0, 1)

    def predict_proba(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        self.calls += 1
        odd = (columns["n"] % 2) * 0.5 + 0.25  # P(label 1): 0.25 for even n, 0.75 for odd
        return np.column_stack([1 - odd, odd])

    def labels(self, proba: np.ndarray) -> np.ndarray:
        return np.asarray(self.proba_classes)[proba.argmax(axis=1)]


def score(client: TestClient, rows: list[dict[str, Any]] | None = None, **kw: Any) -> Any:
    return client.post("/invocations", json={"dataframe_records": rows or [ROW]}, **kw)
