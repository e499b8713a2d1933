"""ASGI plumbing of the model server: request ids, bodies, responses, the lifespan.

API: :func:`request_id`, :func:`header`, :func:`read_body`, :func:`read_request`,
:func:`respond`, :func:`run_lifespan`, and the ``Scope``/``Receive``/``Send`` types.

Kept apart from the routes (:mod:`mlcycle.serve.app`) so they read as what they answer; no
framework on the hot path (raw ASGI costs less than Starlette's routing per request).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mlcycle.serve import protocol
from mlcycle.serve.options import ServeOptions

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Bodies at least this large are parsed on a worker thread, so ``/ping`` and small requests
#: keep being served while a 10,000-row body is converted; smaller ones cost less inline.
THREAD_PARSE_BYTES = 32 * 1024


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case), or ``None``."""
    for k, v in scope["headers"]:
        if k == name:
            return bytes(v)
    return None


def request_id(scope: Scope) -> str:
    """The client's ``X-Request-Id`` when it is a sane token, else a fresh one."""
    given = header(scope, b"x-request-id")
    if given is not None:
        rid = given.decode("latin-1")
        if _REQUEST_ID_RE.match(rid):
            return rid
    return uuid.uuid4().hex


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refused early when it is over ``limit`` bytes.

    Raises:
        protocol.RequestError: 413 over the limit, 400 for a bad Content-Length, 499 when the
            client disconnected.
    """
    length = header(scope, b"content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise protocol.RequestError("bad Content-Length header") from None
        if declared > limit:
            raise protocol.RequestError(
                f"request body of {declared} bytes exceeds the limit of {limit} bytes",
                413,
                "REQUEST_LIMIT_EXCEEDED",
            )
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise protocol.RequestError("client disconnected", 499)
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise protocol.RequestError(
                f"request body exceeds the limit of {limit} bytes",
                413,
                "REQUEST_LIMIT_EXCEEDED",
            )
        chunks.append(chunk)
        more = msg.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_request(
    scope: Scope, receive: Receive, predictor: Any, options: ServeOptions
) -> tuple[protocol.ParsedRequest, str]:
    """Read and parse an ``/invocations`` body for ``predictor``: the columns and the method
    (``predict`` or ``predict_proba``) to call.

    Raises:
        protocol.RequestError: the body is late (408), too large (413) or invalid (4xx).
    """
    ctype = header(scope, b"content-type")
    try:
        # asyncio.timeout, not wait_for: no extra task on the hot path.
        async with asyncio.timeout(options.body_timeout):
            body = await read_body(scope, receive, options.max_body_bytes)
    except TimeoutError:
        raise protocol.RequestError(
            f"request body not received within {options.body_timeout:g}s",
            408,
            "REQUEST_TIMEOUT",
            headers={"connection": "close"},
        ) from None
    args = (
        body,
        None if ctype is None else ctype.decode("latin-1"),
        predictor.schema,
        options.max_rows,
        options.max_decoded_bytes,
    )
    if len(body) >= THREAD_PARSE_BYTES:
        parsed = await asyncio.to_thread(protocol.parse_request, *args)
    else:
        parsed = protocol.parse_request(*args)
    method = (
        "predict"
        if parsed.params is None
        else protocol.predict_method(parsed.params, predictor.is_classifier)
    )
    return parsed, method


async def respond(
    send: Send, status: int, body: bytes, mimetype: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """Send one complete response: content type and length first, then ``headers``."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", mimetype),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def run_lifespan(
    receive: Receive,
    send: Send,
    startup: Callable[[], Awaitable[None]],
    shutdown: Callable[[], Awaitable[None]],
) -> None:
    """Answer the ASGI lifespan protocol with ``startup`` and ``shutdown``."""
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            try:
                await startup()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
