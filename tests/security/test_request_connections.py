"""Attacks on connections (issue 10, item 8): slow loris headers and slow bodies.

A real uvicorn server runs the app in this process with the HTTP protocol ``mlcycle serve``
uses; the attacker is a raw socket.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import uvicorn

from mlcycle.serve.app import ModelSource, ServeOptions, create_app
from mlcycle.serve.http import PROTOCOL, HeaderTimeoutProtocol
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    monkeypatch.setattr(HeaderTimeoutProtocol, "header_timeout", 0.5)
    app = create_app(ModelSource.fixed(Doubler()), ServeOptions(body_timeout=0.5))
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=PROTOCOL, lifespan="on", log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    # The model loads in a thread after startup: a body sent before then would get 503.
    while not app.ready:
        assert time.monotonic() < deadline, "model did not load"
        time.sleep(0.02)
    yield "127.0.0.1", port
    srv.should_exit = True
    thread.join(10)


def _read_until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(10)  # a generous bound: the server must close long before
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_slow_headers_get_408_and_the_connection_is_closed(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
        # ...and nothing more: the rest of the headers never comes.
        reply = _read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]


def test_slow_headers_after_a_keep_alive_response_are_timed_out_too(
    server: tuple[str, int],
) -> None:
    body = b'{"inputs": {"x": [1.0]}}'
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    with socket.create_connection(server) as sock:
        sock.sendall(head + body + b"GET /ping HTTP/1.1\r\nHo")
        reply = _read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 408" in reply, reply[:400]


def test_a_slow_body_gets_408_and_the_connection_is_closed(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        reply = _read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"REQUEST_TIMEOUT" in reply
