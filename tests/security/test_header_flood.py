"""Header floods: the request line and headers are bounded in bytes, not only in time.

uvicorn's httptools protocol keeps every header as a Python tuple of two ``bytes`` (about
140 bytes for a 6-byte ``a: b\\r\\n`` line) and appends URL pieces with ``+=``; llhttp sets no
size limit. Within the 10 s header timeout one loopback client could send gigabytes and cost
over 20 times that in memory. The server must answer 431 once the head passes its limit.
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
from mlcycle.serve.http import MAX_HEAD_BYTES, PROTOCOL, HeaderTimeoutProtocol
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


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    # Long enough that a 408 cannot be what ends the flood.
    monkeypatch.setattr(HeaderTimeoutProtocol, "header_timeout", 20.0)
    app = create_app(ModelSource.fixed(Doubler()), ServeOptions())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=PROTOCOL, lifespan="on", log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not (srv.started and app.ready):  # the model loads on a thread: 503 until then
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield "127.0.0.1", port
    srv.should_exit = True
    thread.join(10)


def _flood(addr: tuple[str, int], head: bytes, piece: bytes, total: int) -> bytes:
    """Send ``head`` then ``piece`` until ``total`` bytes or the server stops reading."""
    with socket.create_connection(addr) as sock:
        sock.settimeout(10)
        sent = 0
        try:
            sock.sendall(head)
            while sent < total:
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while chunk := sock.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
    return data


def test_a_header_flood_gets_431_and_the_connection_is_closed(server) -> None:
    reply = _flood(
        server,
        b"POST /invocations HTTP/1.1\r\nHost: x\r\n",
        b"a: b\r\n" * 1000,
        40 * MAX_HEAD_BYTES,
    )
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]


def test_an_endless_url_gets_431(server) -> None:
    reply = _flood(server, b"GET /ping?", b"a" * 8192, 40 * MAX_HEAD_BYTES)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]


def test_ordinary_and_pipelined_requests_still_pass(server) -> None:
    body = b'{"inputs": {"x": [1.0]}}'
    one = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-Pad: " + b"p" * 2000 + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with socket.create_connection(server) as sock:
        sock.settimeout(10)
        # More bytes in flight than the head limit, but every head is small.
        n = 2 * MAX_HEAD_BYTES // len(one) + 2
        sock.sendall(one * n + b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200") == n + 1, data[-300:]


def test_a_trailer_flood_after_a_chunked_body_gets_431(server) -> None:
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b'18\r\n{"inputs": {"x": [1.0]}}\r\n0\r\n'
    )
    reply = _flood(server, head, b"ab: cd\r\n" * 1000, 40 * MAX_HEAD_BYTES)
    assert b"HTTP/1.1 431" in reply, reply[:300]
