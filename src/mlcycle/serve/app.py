"""The ASGI app: MLflow's ``/invocations`` plus operations endpoints.

API: :class:`ServingApp`, :func:`create_app` (and, for callers of ``create_app``,
:class:`~mlcycle.serve.holder.ModelSource` and :class:`~mlcycle.serve.options.ServeOptions`).

A hand-written ASGI callable (no framework on the hot path) of routes over
:mod:`~mlcycle.serve.protocol`; the models come from a :class:`~mlcycle.serve.holder.ModelHolder`
(load with backoff, hot reload, the challenger). Routes: ``POST /invocations``, ``GET /ping``
and ``/health`` (liveness), ``/ready`` (503 until the model is loaded, while draining, when
saturated and until every worker has its model), ``/version`` (the MLflow version, as
``mlflow models serve``), ``/info`` (model and versions as JSON), ``/metrics``. Every response
carries ``X-Request-Id`` and ``X-Model-Version`` (the version that produced the predictions);
a logged prediction also carries ``X-Record-Id-Prefix``: record ``i`` of the request is
``{prefix}-{i}`` in the inference log, the key to send its label with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
import uuid
from typing import Any

import orjson

from mlcycle.inference_log import InferenceLog, LogItem
from mlcycle.serve import protocol, status
from mlcycle.serve.asgi import Receive, Scope, Send, read_request, request_id, respond
from mlcycle.serve.asgi import run_lifespan as _run_lifespan
from mlcycle.serve.batching import MicroBatcher, Shed
from mlcycle.serve.canary import CanaryRouter
from mlcycle.serve.holder import ModelHolder, ModelSource, WorkerMarks
from mlcycle.serve.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from mlcycle.serve.metrics import ServeMetrics
from mlcycle.serve.options import ServeOptions
from mlcycle.serve.shadow import ShadowScorer, log_kinds

__all__ = ["ModelSource", "ServeOptions", "ServingApp", "create_app"]

logger = logging.getLogger(__name__)

_JSON = b"application/json"
_OPS = ("/ping", "/health", "/ready", "/version", "/info", "/metrics")


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
        self.options = options
        self.log = inference_log
        self.workers = workers
        #: Where the workers of one server mark their model loaded (``--workers N``).
        self.shared_dir = shared_dir if workers > 1 else None
        self.holder = ModelHolder(source, options, WorkerMarks(self.shared_dir))
        self.draining = False
        self._shed_until = 0.0
        self.batcher = MicroBatcher(
            lambda: self.holder.champion,
            max_rows=options.max_batch_rows,
            max_wait=options.max_wait,
            max_queue_rows=options.max_queue_rows,
            on_batch=lambda *batch: self.metrics.observe_batch("champion", *batch),
            arm="champion",
        )
        #: ``--canary``: which requests @challenger answers.
        self.router: CanaryRouter | None = None
        if options.canary:
            self.router = CanaryRouter(options.canary, options.canary_key, options.canary_seed)
            # The same queue and predict thread as the champion: one turn scores both arms,
            # rather than a 1-row challenger call between every champion batch.
            self.batcher.add_arm(
                "challenger",
                # The last challenger, not None: a request routed to it just before its alias
                # moved is still answered by the version it was parsed for.
                lambda: self.holder.last_challenger,
                lambda *batch: self.metrics.observe_batch("challenger", *batch),
            )
        self.metrics = ServeMetrics(lambda: status.state(self))
        #: Scores copies of requests on @challenger off the response path (``--shadow``).
        self.shadow_scorer: ShadowScorer | None = None
        if options.shadow:
            self.shadow_scorer = ShadowScorer(
                lambda: self.holder.last_challenger,
                self.metrics,
                inference_log,
                max_rows=options.max_batch_rows,
                max_queue_rows=options.max_queue_rows,
            )

    # ------------------------------------------------------------------ state

    @property
    def predictor(self) -> Any:
        """The champion answering requests (``None`` until loaded)."""
        return self.holder.champion

    @property
    def shadow(self) -> Any:
        """The @challenger scored in shadow (``None`` without ``--shadow`` or a challenger)."""
        return self.holder.challenger if self.options.shadow else None

    @property
    def saturated(self) -> bool:
        """Queue near its bound, or requests shed in the last second."""
        return self.depth() >= self.options.max_queue_rows or time.monotonic() < self._shed_until

    def depth(self) -> int:
        """Rows waiting for a model call, both arms."""
        return self.batcher.depth

    @property
    def loaded(self) -> bool:
        """This worker has a model and is not draining."""
        return self.holder.champion is not None and not self.draining

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
        return self.holder.marks.count()

    def _version(self) -> bytes:
        p = self.holder.champion
        return str(p.version).encode() if p is not None else b"none"

    # ------------------------------------------------------------------ lifecycle

    async def startup(self) -> None:
        """Start batching, load the model in the background, start hot reload."""
        self.batcher.start()
        if self.shadow_scorer is not None:
            self.shadow_scorer.start()
        if self.log is not None:
            self.log.start()
        self._hook_sigterm()
        self.holder.start()
        if self.metrics.shared is not None:
            stopped = self.holder.stopped
            self.holder.spawn(lambda: self.metrics.sync_until(stopped), "metrics-sync")

    async def shutdown(self) -> None:
        """Drain: finish queued work, stop reloading, flush the inference log."""
        self.draining = True
        self.holder.stop()
        await self.batcher.stop()
        if self.shadow_scorer is not None:
            await self.shadow_scorer.stop()
        if self.log is not None:
            await asyncio.to_thread(self.log.close)
        self.metrics.worker_stopped()
        await asyncio.to_thread(self.holder.close)
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
            self.holder.marks.mark(False)
            if callable(previous):
                previous(sig, frame)

        with contextlib.suppress(ValueError):  # not the interpreter's main thread
            signal.signal(signal.SIGTERM, on_term)

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await _run_lifespan(receive, send, self.startup, self.shutdown)

    async def _respond(
        self,
        send: Send,
        status: int,
        body: bytes,
        mimetype: bytes,
        rid: str,
        version: bytes,
        extra: list[tuple[bytes, bytes]] | None = None,
        role: bytes = b"champion",
    ) -> None:
        headers = [
            (b"x-request-id", rid.encode()),
            (b"x-model-version", version),
            (b"x-model-role", role),
        ]
        if extra:
            headers.extend(extra)
        await respond(send, status, body, mimetype, headers)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter()
        path, method, rid = scope["path"], scope["method"], request_id(scope)
        version = role = ""  # of the model that answered: none for other routes
        if path == "/invocations" and method == "POST":
            status, version, role = await self._invocations(scope, receive, send, rid, t0)
            route = path
        else:
            extra: list[tuple[bytes, bytes]] = []
            if path in _OPS and method in ("GET", "HEAD"):
                body, status, mime = self._ops(path)
                route = path
                if status == 503:
                    extra.append((b"retry-after", b"1"))
            elif path == "/invocations":
                body, status, mime = protocol.error_body("BAD_REQUEST", "use POST"), 405, _JSON
                route = path
            else:
                body = protocol.error_body("ENDPOINT_NOT_FOUND", "no such endpoint")
                status, mime, route = 404, _JSON, "other"
            await self._respond(send, status, body, mime, rid, self._version(), extra)
        self.metrics.observe_request(route, status, time.perf_counter() - t0, version, role)

    def _ops(self, path: str) -> tuple[bytes, int, bytes]:
        """``(body, status, mimetype)`` of an operations endpoint."""
        if path in ("/ping", "/health"):
            return b"\n", 200, _JSON
        if path == "/ready":
            return (
                (b'{"status":"ready"}', 200, _JSON)
                if self.ready
                else (status.not_ready(self), 503, _JSON)
            )
        if path == "/version":
            import mlflow.version

            # What `mlflow models serve` answers and ScoringServerClient.get_version() reads.
            return mlflow.version.VERSION.encode(), 200, _JSON
        if path == "/info":
            return orjson.dumps(status.info(self)), 200, _JSON
        return self.metrics.render(), 200, METRICS_CONTENT_TYPE.encode()

    async def _unavailable(
        self, send: Send, why: str, rid: str, version: bytes, role: bytes = b"champion"
    ) -> int:
        """503 with Retry-After: not loaded, draining, saturated or timed out."""
        await self._respond(
            send,
            503,
            protocol.error_body("TEMPORARILY_UNAVAILABLE", why),
            _JSON,
            rid,
            version,
            [(b"retry-after", str(self.options.retry_after).encode())],
            role,
        )
        return 503

    async def _invocations(
        self, scope: Scope, receive: Receive, send: Send, rid: str, t0: float
    ) -> tuple[int, str, str]:
        """Answer one request; return its status and the version and role that answered."""
        arms = self.holder.arms  # read once: both arms from the same registry state
        predictor = arms.champion
        if predictor is None or self.draining:
            why = (
                "the model is not loaded yet"
                if predictor is None
                else "the server is shutting down"
            )
            return await self._unavailable(send, why, rid, self._version()), "", ""
        batcher, role = self.batcher, "champion"  # one batcher; the role names the arm
        router = self.router
        if router is not None and arms.split and router.to_challenger(scope["headers"], arms.share):
            predictor, role = arms.challenger, "challenger"
        version = str(predictor.version)
        vb, rb = version.encode(), role.encode()
        batcher.arriving += 1
        arriving = True
        try:
            parsed, method = await read_request(scope, receive, predictor, self.options)
            batcher.arriving -= 1
            arriving = False
            fut = batcher.submit(parsed.columns, parsed.n_rows, method, role)
            remaining = self.options.timeout - (time.perf_counter() - t0)
            try:
                preds, used = await asyncio.wait_for(asyncio.shield(fut), max(remaining, 0.0))
            except TimeoutError:
                fut.cancel()
                raise Shed("timeout") from None
        except protocol.RequestError as exc:
            if exc.status == 499:
                return 499, version, role
            # One line per refused request: a flood of bad requests must not flood the log.
            logger.info("%s %d %s: %.200s", rid, exc.status, exc.error_code, exc.message)
            body, status, mime = protocol.error_response(exc)
            extra = [(k.encode(), v.encode()) for k, v in exc.headers.items()]
            await self._respond(send, status, body, mime.encode(), rid, vb, extra, rb)
            return status, version, role
        except Shed as shed:
            self._shed_until = time.monotonic() + 1.0
            self.metrics.shed.labels(shed.reason).inc()
            msg = (
                f"request not scored within {self.options.timeout:g}s; retry later"
                if shed.reason == "timeout"
                else "the server is saturated; retry later"
            )
            return await self._unavailable(send, msg, rid, vb, rb), version, role
        except Exception as exc:
            # The model refused the input (400): one line; the traceback only at DEBUG.
            logger.warning("%s prediction failed: %s: %.200s", rid, type(exc).__name__, exc)
            logger.debug("prediction failure traceback", exc_info=True)
            body = protocol.error_body(
                "BAD_REQUEST",
                "Encountered an unexpected error while evaluating the model. Verify that the "
                f"input is compatible with the model for inference. ({type(exc).__name__})",
            )
            await self._respond(send, 400, body, _JSON, rid, vb, None, rb)
            return 400, version, role
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
                    role,
                    parsed.columns,
                    log_kinds(used),
                    labels,
                    uid,
                    proba,
                    tuple(str(c) for c in used.proba_classes) if proba is not None else (),
                )
            )
            record_header = [(b"x-record-id-prefix", uid.encode())]
        await self._respond(send, 200, out, _JSON, rid, used_version.encode(), record_header, rb)
        if self.shadow_scorer is not None and arms.challenger is not None:
            self.shadow_scorer.score(rid, ts_us, parsed.columns, parsed.n_rows, uid)
        return 200, used_version, role


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
