"""The ASGI app: MLflow's ``/invocations`` plus operations endpoints.

API: :class:`ServeOptions`, :class:`ModelSource`, :func:`create_app`.

A hand-written ASGI callable (no framework on the hot path). Routes: ``POST /invocations``,
``GET /ping`` and ``/health`` (liveness), ``/ready`` (503 until the model is loaded, while
draining, when saturated and until every worker has its model), ``/version`` (the MLflow
version, as ``mlflow models serve``), ``/info`` (model and versions as JSON), ``/metrics``.
Every response carries ``X-Request-Id`` and ``X-Model-Version`` (the version that produced
the predictions); a logged prediction also carries ``X-Record-Id-Prefix``: record ``i`` of
the request is ``{prefix}-{i}`` in the inference log, the key to send its label with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

import mlcycle
from mlcycle.inference_log import InferenceLog, LogItem
from mlcycle.serve import protocol
from mlcycle.serve.batching import MicroBatcher, Shed
from mlcycle.serve.heap import freeze_after_load
from mlcycle.serve.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from mlcycle.serve.metrics import ServeMetrics

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_JSON = b"application/json"
#: Bodies at least this large are parsed on a worker thread, so ``/ping`` and small requests
#: keep being served while a 10,000-row body is converted; smaller ones cost less inline.
THREAD_PARSE_BYTES = 32 * 1024
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: A worker with a loaded model keeps a file of this prefix and its pid in the shared dir.
_READY_PREFIX = "mlcycle-ready-"


def _alive(pid: str) -> bool:
    """Whether process ``pid`` runs (a worker that died keeps no claim to readiness)."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ServeOptions:
    """Limits and behaviour of one server.

    The read timeouts are declared here once; docs/serving.md lists them. ``header_timeout``:
    seconds from connection (or the previous response) until a request's headers are
    complete, else the connection gets 408 and is closed. ``body_timeout``: seconds from the
    headers until the whole body has arrived, else 408 and close. ``max_decoded_bytes``: the
    uncompressed size a Parquet body's footer may declare (413 above, checked before decoding).
    """

    max_body_bytes: int = 5 * 1024 * 1024
    max_rows: int = 10_000
    max_decoded_bytes: int = 64 * 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    timeout: float = 10.0
    retry_after: int = 1
    max_batch_rows: int = 64
    max_wait: float = 0.002
    max_queue_rows: int = 50_000
    reload_interval: float | None = None
    shadow: bool = False


class ModelSource:
    """Where predictors come from: ``load()`` the first one, ``poll(current)`` for a newer one.

    The server's startup builds one from a model URI and an ``MlflowClient``; tests pass
    their own (a fixed predictor, or one whose version they move). ``refused`` counts the
    versions the trust policy refused; ``close()`` removes downloaded copies at shutdown.
    """

    def __init__(
        self,
        load: Callable[[], Any],
        poll: Callable[[Any], Any | None] | None = None,
        load_shadow: Callable[[], Any | None] | None = None,
        poll_shadow: Callable[[Any | None], Any | None] | None = None,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.load = load
        self.poll = poll
        self.load_shadow = load_shadow
        self.poll_shadow = poll_shadow
        self.close = close
        self.refused = 0

    @classmethod
    def fixed(cls, predictor: Any, shadow: Any | None = None) -> ModelSource:
        """A source that always serves ``predictor``."""
        return cls(lambda: predictor, None, (lambda: shadow) if shadow is not None else None)


def _request_id(scope: Scope) -> str:
    for k, v in scope["headers"]:
        if k == b"x-request-id":
            rid = v.decode("latin-1")
            if _REQUEST_ID_RE.match(rid):
                return rid
            break
    return uuid.uuid4().hex


class ServingApp:
    """The ASGI callable; build it with :func:`create_app`."""

    def __init__(
        self,
        source: ModelSource,
        options: ServeOptions,
        inference_log: InferenceLog | None = None,
        workers: int = 1,
        shared_dir: str | None = None,
    ) -> None:
        self.source = source
        self.workers = workers
        #: Where the workers of one server mark their model loaded (``--workers N``).
        self.shared_dir = shared_dir if workers > 1 else None
        self._ready_file = (
            os.path.join(self.shared_dir, f"{_READY_PREFIX}{os.getpid()}")
            if self.shared_dir
            else None
        )
        self.options = options
        self.log = inference_log
        self.predictor: Any = None
        self.shadow: Any = None
        self.load_error: str | None = None
        self.draining = False
        self.reloads = 0
        self.reload_failures = 0
        self._shed_until = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batcher = MicroBatcher(
            lambda: self.predictor,
            max_rows=options.max_batch_rows,
            max_wait=options.max_wait,
            max_queue_rows=options.max_queue_rows,
            on_batch=self._on_batch,
        )
        self.metrics = ServeMetrics(self._state)
        self._shadow_batcher: MicroBatcher | None = None
        self._shadow_tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ state

    @property
    def saturated(self) -> bool:
        """Queue near its bound, or requests shed in the last second."""
        return (
            self.batcher.depth >= self.options.max_queue_rows or time.monotonic() < self._shed_until
        )

    @property
    def loaded(self) -> bool:
        """This worker has a model and is not draining."""
        return self.predictor is not None and not self.draining

    @property
    def ready(self) -> bool:
        """Loaded, not draining, not saturated, and (``--workers N``) every worker loaded."""
        if not self.loaded or self.saturated:
            return False
        return self.shared_dir is None or self.workers_loaded() >= self.workers

    def workers_loaded(self) -> int:
        """Workers of this server with a loaded model (their marks in the shared directory)."""
        if self.shared_dir is None:
            return int(self.loaded)
        n = 0
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.shared_dir):
                if entry.name.startswith(_READY_PREFIX) and _alive(
                    entry.name[len(_READY_PREFIX) :]
                ):
                    n += 1
        return n

    def _mark_loaded(self, loaded: bool) -> None:
        if self._ready_file is None:
            return
        try:
            if loaded:
                with open(self._ready_file, "w"):
                    pass
            else:
                os.unlink(self._ready_file)
        except OSError:
            pass

    def _version(self) -> bytes:
        p = self.predictor
        return str(p.version).encode() if p is not None else b"none"

    def _state(self) -> dict[str, Any]:
        models = {}
        for role, p in (("champion", self.predictor), ("shadow", self.shadow)):
            if p is not None:
                models[role] = {"name": p.name, "version": str(p.version), "backend": p.backend}
        log = self.log
        return {
            "models": models,
            "ready": int(self.ready),
            "loaded": int(self.loaded),
            "batch_queue_rows": self.batcher.depth,
            "inference_log_queue_records": log.pending if log else 0,
            "inference_log_dropped": log.dropped if log else 0,
            "inference_log_written": log.written if log else 0,
            "model_reloads": self.reloads,
            "model_reload_failures": self.reload_failures,
            "model_refused": self.source.refused,
        }

    def _on_batch(self, n_requests: int, rows: int, preds: Any, predictor: Any) -> None:
        # Counted per model call, not per request: one np.unique per batch.
        if getattr(preds, "ndim", 1) == 2 and predictor.is_classifier:
            # predict_proba: count the labels the probabilities imply
            preds = predictor.labels(preds)
        self.metrics.batch_rows.observe(rows)
        self.metrics.batch_requests.observe(n_requests)
        self.metrics.observe_predictions(
            "champion", str(predictor.version), preds, predictor.is_classifier
        )

    def _on_shadow_batch(self, n_requests: int, rows: int, preds: Any, predictor: Any) -> None:
        self.metrics.observe_predictions(
            "shadow", str(predictor.version), preds, predictor.is_classifier
        )

    # ------------------------------------------------------------------ lifecycle

    async def startup(self) -> None:
        """Start batching, load the model in the background, start hot reload."""
        self._loop = asyncio.get_running_loop()
        self.batcher.start()
        if self.log is not None:
            self.log.start()
        self._hook_sigterm()
        self._spawn(self._load_initial, "model-load")
        if self.metrics.shared is not None:
            self._spawn(self._sync_metrics, "metrics-sync")

    def _sync_metrics(self) -> None:
        # Another worker may answer the scrape: keep this one's numbers in the shared files.
        from mlcycle.serve.metrics import SYNC_SECONDS

        while not self._stop.wait(SYNC_SECONDS):
            try:
                self.metrics.sync()
            except Exception:
                logger.exception("metrics sync failed")

    async def shutdown(self) -> None:
        """Drain: finish queued work, stop reloading, flush the inference log."""
        self.draining = True
        self._mark_loaded(False)
        self._stop.set()
        await self.batcher.stop()
        if self._shadow_batcher is not None:
            if self._shadow_tasks:
                await asyncio.wait(list(self._shadow_tasks), timeout=5)
            await self._shadow_batcher.stop()
        if self.log is not None:
            await asyncio.to_thread(self.log.close)
        self.metrics.worker_stopped()
        if self.source.close is not None:
            # Reload threads are daemons that may still be downloading: wait briefly so the
            # copy they write is not left behind.
            for t in self._threads:
                await asyncio.to_thread(t.join, 5)
            self.source.close()
        logger.info(
            "stopped; inference log: %d written, %d dropped",
            self.log.written if self.log else 0,
            self.log.dropped if self.log else 0,
        )

    def _hook_sigterm(self) -> None:
        # uvicorn owns SIGTERM (stop accepting, finish in-flight); chaining lets /ready say
        # "draining" while that happens.
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)

        def on_term(sig: int, frame: Any) -> None:
            self.draining = True
            self._mark_loaded(False)
            if callable(previous):
                previous(sig, frame)

        with contextlib.suppress(ValueError):  # not the interpreter's main thread
            signal.signal(signal.SIGTERM, on_term)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _load_initial(self) -> None:
        # A server that follows an alias may start before the first promotion (compose,
        # Kubernetes) or while the registry is away: keep trying, /ready says why meanwhile.
        delay = float(self.options.reload_interval or 0)
        while not self._try_load_initial():
            if not delay or self._stop.wait(delay):
                return
            delay = min(delay * 2, 30.0)
        if self.options.reload_interval and (self.source.poll or self.source.poll_shadow):
            self._reload_loop()

    def _start_shadow(self) -> None:
        """Load @challenger and start its batcher, once one exists (shadow mode only)."""
        if not self.options.shadow or self.source.load_shadow is None:
            return
        if self._shadow_batcher is not None:
            return
        self.shadow = self.source.load_shadow()
        if self.shadow is None:
            return
        self._shadow_batcher = MicroBatcher(
            lambda: self.shadow,
            max_rows=self.options.max_batch_rows,
            max_wait=0,
            on_batch=self._on_shadow_batch,
        )
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._shadow_batcher.start)

    def _try_load_initial(self) -> bool:
        try:
            predictor = self.source.load()
            self._start_shadow()
            # Before the first request: this one full collection takes ~200 ms.
            freeze_after_load()
            self.predictor = predictor
            self._mark_loaded(True)
        except Exception as exc:
            if self.load_error is None:
                logger.exception("model load failed")
            else:
                logger.warning("model load failed again: %s", exc)
            self.load_error = f"{type(exc).__name__}: {exc}"
            return False
        self.load_error = None
        return True

    def _reload_loop(self) -> None:
        interval = float(self.options.reload_interval or 0)
        while not self._stop.wait(interval):
            if self.options.shadow and self._shadow_batcher is None:
                # No @challenger at start: shadow scoring begins once one is registered.
                try:
                    self._start_shadow()
                except Exception as exc:
                    logger.warning("challenger not loadable yet: %s", exc)
            for role in ("champion", "shadow"):
                poll = self.source.poll if role == "champion" else self.source.poll_shadow
                if poll is None or (role == "shadow" and self._shadow_batcher is None):
                    continue
                current = self.predictor if role == "champion" else self.shadow
                try:
                    new = poll(current)
                except Exception:
                    logger.exception(
                        "hot reload of the %s failed; keeping version %s",
                        role,
                        getattr(current, "version", None),
                    )
                    self.reload_failures += 1
                    continue
                if new is None:
                    continue
                # One reference assignment: a batch uses whichever predictor it read.
                if role == "champion":
                    self.predictor = new
                else:
                    self.shadow = new
                self.reloads += 1
                freeze_after_load()
                logger.info(
                    "%s now %s version %s (was %s)",
                    role,
                    new.name,
                    new.version,
                    getattr(current, "version", None),
                )

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _respond(
        self,
        send: Send,
        status: int,
        body: bytes,
        mimetype: bytes,
        rid: str,
        version: bytes,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers = [
            (b"content-type", mimetype),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", rid.encode()),
            (b"x-model-version", version),
        ]
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter()
        path = scope["path"]
        method = scope["method"]
        rid = _request_id(scope)
        if path == "/invocations":
            if method != "POST":
                status = 405
                await self._respond(
                    send,
                    405,
                    protocol.error_body("BAD_REQUEST", "use POST"),
                    _JSON,
                    rid,
                    self._version(),
                )
            else:
                status = await self._invocations(scope, receive, send, rid, t0)
            route = "/invocations"
        elif path in ("/ping", "/health", "/ready", "/version", "/info", "/metrics") and method in (
            "GET",
            "HEAD",
        ):
            status = await self._ops(path, send, rid)
            route = path
        else:
            status = 404
            route = "other"
            await self._respond(
                send,
                404,
                protocol.error_body("ENDPOINT_NOT_FOUND", "no such endpoint"),
                _JSON,
                rid,
                self._version(),
            )
        self.metrics.observe_request(route, status, time.perf_counter() - t0)

    async def _ops(self, path: str, send: Send, rid: str) -> int:
        v = self._version()
        if path in ("/ping", "/health"):
            await self._respond(send, 200, b"\n", _JSON, rid, v)
            return 200
        if path == "/ready":
            if self.ready:
                await self._respond(send, 200, b'{"status":"ready"}', _JSON, rid, v)
                return 200
            reason = (
                "draining"
                if self.draining
                else "loading"
                if self.predictor is None and self.load_error is None
                else "load failed"
                if self.predictor is None
                else "saturated"
                if self.saturated
                else "loading"  # this worker is ready, another is still loading
            )
            doc: dict[str, Any] = {"status": reason, "error": self.load_error}
            if self.shared_dir is not None:
                doc["workers_loaded"] = self.workers_loaded()
                doc["workers"] = self.workers
            body = orjson.dumps(doc)
            await self._respond(send, 503, body, _JSON, rid, v, [(b"retry-after", b"1")])
            return 503
        if path == "/version":
            import mlflow.version

            # What `mlflow models serve` answers and ScoringServerClient.get_version() reads.
            body = mlflow.version.VERSION.encode()
            await self._respond(send, 200, body, _JSON, rid, v)
            return 200
        if path == "/info":
            import mlflow.version

            p = self.predictor
            doc = {
                "mlcycle": mlcycle.__version__,
                "mlflow": mlflow.version.VERSION,
                "model": None
                if p is None
                else {
                    "name": p.name,
                    "version": str(p.version),
                    "uri": p.ref.uri,
                    "backend": p.backend,
                },
                "shadow": None
                if self.shadow is None
                else {"name": self.shadow.name, "version": str(self.shadow.version)},
            }
            await self._respond(send, 200, orjson.dumps(doc), _JSON, rid, v)
            return 200
        body = self.metrics.render()
        await self._respond(send, 200, body, METRICS_CONTENT_TYPE.encode(), rid, v)
        return 200

    async def _unavailable(self, send: Send, why: str, rid: str, version: bytes) -> int:
        """503 with Retry-After: not loaded, draining, saturated or timed out."""
        await self._respond(
            send,
            503,
            protocol.error_body("TEMPORARILY_UNAVAILABLE", why),
            _JSON,
            rid,
            version,
            [(b"retry-after", str(self.options.retry_after).encode())],
        )
        return 503

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.options.max_body_bytes
        for k, v in scope["headers"]:
            if k == b"content-length":
                try:
                    if int(v) > limit:
                        raise protocol.RequestError(
                            f"request body of {int(v)} bytes exceeds the limit of {limit} bytes",
                            413,
                            "REQUEST_LIMIT_EXCEEDED",
                        )
                except ValueError:
                    raise protocol.RequestError("bad Content-Length header") from None
                break
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

    async def _invocations(
        self, scope: Scope, receive: Receive, send: Send, rid: str, t0: float
    ) -> int:
        version = self._version()
        predictor = self.predictor
        if predictor is None or self.draining:
            why = (
                "the model is not loaded yet"
                if predictor is None
                else "the server is shutting down"
            )
            return await self._unavailable(send, why, rid, version)
        batcher = self.batcher
        batcher.arriving += 1
        arriving = True
        try:
            content_type = None
            for k, v in scope["headers"]:
                if k == b"content-type":
                    content_type = v.decode("latin-1")
                    break
            try:
                # asyncio.timeout, not wait_for: no extra task on the hot path.
                async with asyncio.timeout(self.options.body_timeout):
                    body = await self._read_body(scope, receive)
            except TimeoutError:
                raise protocol.RequestError(
                    f"request body not received within {self.options.body_timeout:g}s",
                    408,
                    "REQUEST_TIMEOUT",
                    headers={"connection": "close"},
                ) from None
            args = (
                body,
                content_type,
                predictor.schema,
                self.options.max_rows,
                self.options.max_decoded_bytes,
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
            batcher.arriving -= 1
            arriving = False
            fut = batcher.submit(parsed.columns, parsed.n_rows, method)
            remaining = self.options.timeout - (time.perf_counter() - t0)
            try:
                preds, used = await asyncio.wait_for(asyncio.shield(fut), max(remaining, 0.0))
            except TimeoutError:
                fut.cancel()
                raise Shed("timeout") from None
        except protocol.RequestError as exc:
            if exc.status == 499:
                return 499
            # One line per refused request: a flood of bad requests must not flood the log.
            logger.info("%s %d %s: %.200s", rid, exc.status, exc.error_code, exc.message)
            body, status, mime = protocol.error_response(exc)
            extra = [(k.encode(), v.encode()) for k, v in exc.headers.items()]
            await self._respond(send, status, body, mime.encode(), rid, version, extra)
            return status
        except Shed as shed:
            self._shed_until = time.monotonic() + 1.0
            self.metrics.shed.labels(shed.reason).inc()
            msg = (
                f"request not scored within {self.options.timeout:g}s; retry later"
                if shed.reason == "timeout"
                else "the server is saturated; retry later"
            )
            return await self._unavailable(send, msg, rid, version)
        except Exception as exc:
            # The model refused the input (400): one line; the traceback only at DEBUG.
            logger.warning("%s prediction failed: %s: %.200s", rid, type(exc).__name__, exc)
            logger.debug("prediction failure traceback", exc_info=True)
            body = protocol.error_body(
                "BAD_REQUEST",
                "Encountered an unexpected error while evaluating the model. Verify that the "
                f"input is compatible with the model for inference. ({type(exc).__name__})",
            )
            await self._respond(send, 400, body, _JSON, rid, version)
            return 400
        finally:
            if arriving:
                batcher.arriving -= 1
        used_version = str(used.version)
        ts_us = time.time_ns() // 1000
        # The server's own id for the records: X-Request-Id is the client's and may repeat.
        uid = uuid.uuid4().hex
        record_header: list[tuple[bytes, bytes]] | None = None
        if method == "predict":
            labels, proba, out = preds, None, protocol.predictions_body(preds)
        else:
            labels, proba = used.labels(preds), preds
            out = protocol.probabilities_body(preds, used.proba_classes)
        if self.log is not None:
            self.log.append(
                LogItem(
                    rid,
                    ts_us,
                    used.name,
                    used_version,
                    "champion",
                    parsed.columns,
                    _kinds(used),
                    labels,
                    uid,
                    proba,
                    tuple(str(c) for c in used.proba_classes) if proba is not None else (),
                )
            )
            record_header = [(b"x-record-id-prefix", uid.encode())]
        await self._respond(send, 200, out, _JSON, rid, used_version.encode(), record_header)
        if self._shadow_batcher is not None and self.shadow is not None:
            self._score_shadow(rid, ts_us, parsed.columns, parsed.n_rows, uid)
        return 200

    def _score_shadow(self, rid: str, ts_us: int, columns: Any, n: int, uid: str) -> None:
        sb = self._shadow_batcher
        assert sb is not None
        try:
            fut = sb.submit(columns, n)
        except Shed:
            self.metrics.shed.labels("shadow_saturated").inc()
            return

        async def finish() -> None:
            try:
                preds, used = await fut
            except Exception:
                logger.warning("shadow scoring failed", exc_info=True)
                return
            if self.log is not None:
                self.log.append(
                    LogItem(
                        rid,
                        ts_us,
                        used.name,
                        str(used.version),
                        "shadow",
                        columns,
                        _kinds(used),
                        preds,
                        uid,
                    )
                )

        task = asyncio.get_running_loop().create_task(finish())
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)


def _kinds(predictor: Any) -> tuple[tuple[str, str], ...]:
    kinds = getattr(predictor, "_log_kinds", None)
    if kinds is None:
        kinds = tuple((c.name, c.kind) for c in predictor.schema.columns)
        with contextlib.suppress(AttributeError):  # slotted test doubles
            predictor._log_kinds = kinds
    return kinds


def create_app(
    source: ModelSource,
    options: ServeOptions | None = None,
    inference_log: InferenceLog | None = None,
    workers: int = 1,
    shared_dir: str | None = None,
) -> ServingApp:
    """Build the ASGI app for ``source``.

    Args:
        source: where predictors come from (see :class:`ModelSource`).
        options: limits, batching and reload settings.
        inference_log: where scored records go (``None``: not logged).
        workers: worker processes of the server; ``/ready`` is 200 only once all have a model.
        shared_dir: directory the workers share (``PROMETHEUS_MULTIPROC_DIR``) where each
            marks its model loaded; needed when ``workers > 1``.
    """
    return ServingApp(source, options or ServeOptions(), inference_log, workers, shared_dir)
