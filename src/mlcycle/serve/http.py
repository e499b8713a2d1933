"""uvicorn's HTTP/1.1 protocol with a header read timeout.

API: :class:`HeaderTimeoutProtocol`, :data:`PROTOCOL`.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) but not a request whose
headers arrive slowly: a client sending one header byte every few seconds holds a connection
forever (slow loris). This protocol starts a timer when a connection opens and after each
response; if the next request's headers are not complete when it fires, the client gets
``408 Request Timeout`` and the connection is closed. Slow bodies are bounded by the app
(``ServeOptions.body_timeout``), which sees the body arrive.

The request line and headers are also bounded in size: llhttp sets no limit, and uvicorn keeps
each header as a tuple of two ``bytes`` (about 140 bytes for a 6-byte ``a: b`` line), so a
client could send gigabytes within the timeout at over 20 times that cost in memory. A head
over :data:`MAX_HEAD_BYTES` gets ``431`` and the connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mlcycle.serve.app import ServeOptions

logger = logging.getLogger(__name__)

#: What ``uvicorn.run(http=...)`` takes: an import string, so worker processes load it too.
PROTOCOL = "mlcycle.serve.http:HeaderTimeoutProtocol"

_MESSAGE = b"request headers not received in time"
_TOO_LARGE = b"request line and headers too large"

#: Bytes of URL plus headers (or of trailers) one request may send; checked after each socket
#: read, so the bound is this plus one read. Stock servers use 8-64 KiB.
MAX_HEAD_BYTES = 64 * 1024


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that answers 408 and closes when headers are too slow."""

    #: Seconds; the server sets it from ``ServeOptions.header_timeout`` in each process.
    header_timeout: float = ServeOptions.header_timeout
    max_head_bytes: int = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True
        self._head_bytes = 0

    def _arm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timer_fired)

    def _header_timer_fired(self) -> None:
        self._header_timer = None
        if not self._awaiting_headers or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined client may wait for this response before sending more.
            self._arm_header_timer()
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "client"
        logger.info("%s: headers not complete within %gs; closing", client, self.header_timeout)
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: "
            + str(len(_MESSAGE)).encode()
            + b"\r\nconnection: close\r\n\r\n"
            + _MESSAGE
        )
        self.transport.close()

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Counts chunked-body trailers too: uvicorn stores them in the same list.
        self._head_bytes += len(name) + len(value) + 4
        super().on_header(name, value)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Checked once per read: the bound is the limit plus one read.
        if self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "client"
            logger.info("%s: request head over %d bytes; closing", client, self.max_head_bytes)
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\ncontent-length: "
                + str(len(_TOO_LARGE)).encode()
                + b"\r\nconnection: close\r\n\r\n"
                + _TOO_LARGE
            )
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._awaiting_headers = True
        self._head_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()
