"""Issue 10 item 3: a large body is parsed off the event loop, so `/ping` is answered meanwhile.

`/ping` took 1.45 s during a 12,000-record body when the parse ran on the event loop. Here the
parse of a large body is held until `/ping` has been answered: that can only happen if the parse
runs on another thread. A small body is still parsed inline (a thread hop would cost more).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from mlcycle.serve import asgi
from mlcycle.serve.app import ModelSource, ServeOptions, create_app
from mlcycle.serve.model import ModelRef
from mlcycle.serve.protocol import Column, InputSchema


class Model:
    backend = "fake"
    name = "fake"
    version = "1"
    is_classifier = True
    schema = InputSchema((Column("x", "double"), Column("n", "long")))
    ref = ModelRef("models:/fake@champion", "fake", "1", "", "champion", "alias")

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        return columns["n"] % 2


def _body(rows: int) -> bytes:
    return json.dumps({"dataframe_records": [{"x": 1.5, "n": i} for i in range(rows)]}).encode()


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def client() -> Any:
    app = create_app(ModelSource.fixed(Model()), ServeOptions(), None)
    with TestClient(app) as c:
        deadline = time.monotonic() + 10
        while c.get("/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        yield c


def test_ping_is_answered_while_a_large_body_is_being_parsed(client, monkeypatch) -> None:
    body = _body(2000)
    assert len(body) >= asgi.THREAD_PARSE_BYTES
    real = asgi.protocol.parse_request
    entered, pinged = threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def held_parse(*args: Any, **kwargs: Any) -> Any:
        seen["on_loop"] = _on_loop()
        entered.set()
        # On the event loop this wait would block /ping too: it would end unanswered.
        seen["ping_answered_meanwhile"] = pinged.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(asgi.protocol, "parse_request", held_parse)
    result: dict[str, Any] = {}
    post = threading.Thread(
        target=lambda: result.setdefault(
            "r",
            client.post("/invocations", content=body, headers={"Content-Type": "application/json"}),
        )
    )
    post.start()
    assert entered.wait(30)
    assert client.get("/ping").status_code == 200
    pinged.set()
    post.join(60)
    assert seen == {"on_loop": False, "ping_answered_meanwhile": True}
    assert result["r"].status_code == 200 and len(result["r"].json()["predictions"]) == 2000


def test_a_small_body_is_parsed_inline(client, monkeypatch) -> None:
    real = asgi.protocol.parse_request
    seen: list[bool] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(_on_loop())
        return real(*args, **kwargs)

    monkeypatch.setattr(asgi.protocol, "parse_request", spy)
    r = client.post("/invocations", content=_body(3), headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and seen == [True]
