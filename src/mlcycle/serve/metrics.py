"""Prometheus metrics of one server.

API: :class:`ServeMetrics`, :func:`multiprocess_dir`.

Each app has its own registry (tests build many apps in one process). With ``--workers N``
the server sets ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode), so one
scrape, whichever worker takes it, covers every worker: each worker copies its state
(inference-log counts, reloads, queue depths, model info) into the shared files every
:data:`SYNC_SECONDS` and before answering a scrape; counters are summed, queue gauges summed
over live workers, ``mlcycle_model_info`` kept per worker (label ``pid``), and a worker's
gauges leave with it (:func:`prometheus_client.multiprocess.mark_process_dead`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from mlcycle.config import PROMETHEUS_MULTIPROC_DIR

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)
#: Up to this many predictions are counted in Python rather than with ``np.unique``.
_SMALL_BATCH = 256


#: prometheus_client's variable naming the directory its multiprocess mode shares.
MULTIPROC_ENV = PROMETHEUS_MULTIPROC_DIR.name
#: How often each worker copies its state into the shared files (multiprocess mode).
SYNC_SECONDS = 0.5

_STATE_COUNTERS = (
    ("inference_log_dropped", "Inference-log records dropped (queue full or write error)."),
    ("inference_log_written", "Inference-log records written."),
    ("model_reloads", "Model versions swapped in by hot reload."),
    ("model_reload_failures", "Hot reloads that failed (the old version kept serving)."),
    ("model_refused", "Model versions the trust policy refused (never loaded)."),
)
_STATE_GAUGES = (
    ("batch_queue_rows", "Rows waiting for a model call."),
    ("inference_log_queue_records", "Inference-log records waiting to be written."),
)
_MODEL_INFO = "Model served (1) by name, version, role and backend."
_READY = "1 when the server accepts traffic (/ready is 200)."


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[str]:
    """``PROMETHEUS_MULTIPROC_DIR`` for the workers of one server, removed when it stops.

    A directory the user set is used and kept; otherwise a fresh ``mlcycle-metrics-*``
    directory is made and deleted on the way out (a clean shutdown, an error, or SIGTERM, which
    ``mlcycle serve`` turns into a normal return), so servers leave nothing in the temp dir.
    """
    given = PROMETHEUS_MULTIPROC_DIR.get()
    if given:
        yield given
        return
    path = tempfile.mkdtemp(prefix="mlcycle-metrics-")
    PROMETHEUS_MULTIPROC_DIR.set(path)
    try:
        yield path
    finally:
        PROMETHEUS_MULTIPROC_DIR.unset()
        shutil.rmtree(path, ignore_errors=True)


class _StateCollector(Collector):
    """Values read when scraped: model info, readiness, queue depths, inference-log counts."""

    def __init__(self, state: Callable[[], dict[str, Any]]) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        s = self.state()
        pid = str(os.getpid())
        info = GaugeMetricFamily(
            "mlcycle_model_info", _MODEL_INFO, labels=["name", "version", "role", "backend", "pid"]
        )
        for role, m in s.get("models", {}).items():
            info.add_metric([m["name"], m["version"], role, m["backend"], pid], 1)
        yield info
        for key, help_text in (("ready", _READY), *_STATE_GAUGES):
            g = GaugeMetricFamily(f"mlcycle_{key}", help_text, labels=["pid"])
            g.add_metric([pid], float(s.get(key, 0)))
            yield g
        for key, help_text in _STATE_COUNTERS:
            c = CounterMetricFamily(f"mlcycle_{key}", help_text, labels=["pid"])
            c.add_metric([pid], float(s.get(key, 0)))
            yield c


class _ReadyCollector(Collector):
    """``mlcycle_ready`` of the whole server, read when scraped (multiprocess mode)."""

    def __init__(self, state: Callable[[], dict[str, Any]]) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        g = GaugeMetricFamily("mlcycle_ready", _READY + " Every worker has its model.")
        g.add_metric([], float(self.state().get("ready", 0)))
        yield g


class _SharedState:
    """The state of one worker in prometheus_client's multiprocess files.

    Gauges are per live worker: queue depths summed (``livesum``), ``mlcycle_model_info`` one
    series per worker (``liveall``), ``mlcycle_workers_ready`` the number of workers with a
    model. Counters grow by what changed since the last copy and are summed over workers,
    including stopped ones (a total does not shrink when a worker is replaced).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.info = Gauge(
            "mlcycle_model_info",
            _MODEL_INFO,
            ["name", "version", "role", "backend"],
            multiprocess_mode="liveall",
            registry=r,
        )
        self.workers_ready = Gauge(
            "mlcycle_workers_ready",
            "Workers whose model is loaded (not draining).",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.gauges = {
            key: Gauge(f"mlcycle_{key}", text, multiprocess_mode="livesum", registry=r)
            for key, text in _STATE_GAUGES
        }
        self.counters = {
            key: Counter(f"mlcycle_{key}", text, registry=r) for key, text in _STATE_COUNTERS
        }
        self._counted = dict.fromkeys(self.counters, 0.0)
        self._info_labels: set[tuple[str, str, str, str]] = set()
        self._lock = threading.Lock()

    def sync(self, s: dict[str, Any]) -> None:
        with self._lock:
            current = {
                (m["name"], m["version"], role, m["backend"])
                for role, m in s.get("models", {}).items()
            }
            for labels in self._info_labels - current:
                # A file value cannot be removed, only zeroed: query `mlcycle_model_info == 1`.
                self.info.labels(*labels).set(0)
            for labels in current:
                self.info.labels(*labels).set(1)
            self._info_labels |= current
            self.workers_ready.set(float(s.get("loaded", 0)))
            for key, g in self.gauges.items():
                g.set(float(s.get(key, 0)))
            for key, c in self.counters.items():
                value = float(s.get(key, 0))
                if value > self._counted[key]:
                    c.inc(value - self._counted[key])
                    self._counted[key] = value


class ServeMetrics:
    """Counters and histograms of requests, batches and predictions."""

    def __init__(self, state: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "mlcycle_requests",
            "HTTP requests by route, status and the model version and role that answered "
            "(empty for routes no model answers).",
            ["route", "status", "version", "role"],
            registry=r,
        )
        self.latency = Histogram(
            "mlcycle_request_duration_seconds",
            "Request latency by route and the model version and role that answered.",
            ["route", "version", "role"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "mlcycle_batch_rows", "Rows per model call.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "mlcycle_batch_requests", "Requests per model call.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.predictions = Counter(
            "mlcycle_predictions",
            "Predicted records by role, model version and class.",
            ["role", "version", "label"],
            registry=r,
        )
        self.prediction_value = Summary(
            "mlcycle_prediction_value",
            "Regression outputs (count and sum).",
            ["role", "version"],
            registry=r,
        )
        self.shed = Counter(
            "mlcycle_shed_requests",
            "Requests answered 503 instead of scored, by reason.",
            ["reason"],
            registry=r,
        )
        self._multiproc = PROMETHEUS_MULTIPROC_DIR.is_set()
        self.state = state
        self.state_collector = _StateCollector(state)
        self.shared: _SharedState | None = None
        if self._multiproc:
            self.shared = _SharedState(r)
        else:
            r.register(self.state_collector)
        self._latency_children: dict[tuple[str, str, str], Any] = {}
        self._request_children: dict[tuple[str, int, str, str], Any] = {}

    def observe_request(
        self, route: str, status: int, seconds: float, version: str = "", role: str = ""
    ) -> None:
        """Count one request and its latency, by the version and role that answered it."""
        key = (route, status, version, role)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(
                route, str(status), version, role
            )
        child.inc()
        lat_key = (route, version, role)
        lat = self._latency_children.get(lat_key)
        if lat is None:
            lat = self._latency_children[lat_key] = self.latency.labels(*lat_key)
        lat.observe(seconds)

    def observe_batch(
        self, role: str, n_requests: int, rows: int, preds: np.ndarray, predictor: Any
    ) -> None:
        """One model call of ``predictor`` in ``role``: its size and what it predicted.

        Counted per model call, not per request: one ``np.unique`` per batch.
        """
        if getattr(preds, "ndim", 1) == 2 and predictor.is_classifier:
            # predict_proba: count the labels the probabilities imply
            preds = predictor.labels(preds)
        self.batch_rows.observe(rows)
        self.batch_requests.observe(n_requests)
        self.observe_predictions(role, str(predictor.version), preds, predictor.is_classifier)

    def observe_predictions(
        self, role: str, version: str, preds: np.ndarray, classifier: bool
    ) -> None:
        """Count labels (classifiers) or add values to the summary (regressors)."""
        if classifier:
            if len(preds) <= _SMALL_BATCH:
                # A Counter is ~8x faster than np.unique on a few rows, and a model call of a
                # few rows (one client, a canary's small arm) is the common case.
                pairs: Iterable[tuple[Any, int]] = Tally(np.asarray(preds).tolist()).items()
            else:
                labels, counts = np.unique(preds, return_counts=True)
                pairs = zip(labels.tolist(), counts.tolist(), strict=True)
            for label, count in pairs:
                self.predictions.labels(role, version, str(label)).inc(count)
        else:
            values = np.asarray(preds, dtype=float)
            s = self.prediction_value.labels(role, version)
            # One observation per record keeps count == records; sum is what matters.
            for v in values.tolist():
                s.observe(v)

    def sync(self) -> None:
        """Copy this worker's state into the shared files (multiprocess mode; else nothing)."""
        if self.shared is not None:
            self.shared.sync(self.state())

    def sync_until(self, stop: threading.Event) -> None:
        """Copy this worker's state every :data:`SYNC_SECONDS` until ``stop`` is set: another
        worker may answer the scrape."""
        while not stop.wait(SYNC_SECONDS):
            try:
                self.sync()
            except Exception:
                logger.exception("metrics sync failed")

    def worker_stopped(self) -> None:
        """Last copy of this worker's counters, then drop its live gauges from the files."""
        if self.shared is not None:
            from prometheus_client import multiprocess

            self.sync()
            multiprocess.mark_process_dead(os.getpid())

    def render(self) -> bytes:
        """Prometheus text exposition (of every worker in multiprocess mode)."""
        if self._multiproc:
            from prometheus_client import multiprocess

            self.sync()
            reg = CollectorRegistry()
            multiprocess.MultiProcessCollector(reg)
            reg.register(_ReadyCollector(self.state))
            return generate_latest(reg)
        return generate_latest(self.registry)
