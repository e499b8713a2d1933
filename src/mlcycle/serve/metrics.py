"""Prometheus metrics of one server.

API: :class:`ServeMetrics`, :func:`multiprocess_dir`.

Each app has its own registry (tests build many apps in one process). With ``--workers N``
the server sets ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums the workers' counters;
gauges read at scrape time (queue depth, model info) are then per worker, labelled ``pid``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, Summary, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

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


#: prometheus_client's variable naming the directory its multiprocess mode shares.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[str]:
    """``PROMETHEUS_MULTIPROC_DIR`` for the workers of one server, removed when it stops.

    A directory the user set is used and kept; otherwise a fresh ``mlcycle-metrics-*``
    directory is made and deleted on the way out (a clean shutdown, an error, or SIGTERM, which
    ``mlcycle serve`` turns into a normal return), so servers leave nothing in the temp dir.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        yield given
        return
    path = tempfile.mkdtemp(prefix="mlcycle-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


class _StateCollector(Collector):
    """Values read when scraped: model info, readiness, queue depths, inference-log counts."""

    def __init__(self, state: Callable[[], dict[str, Any]]) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        s = self.state()
        pid = str(os.getpid())
        info = GaugeMetricFamily(
            "mlcycle_model_info",
            "Model served (1) by name, version, role and backend.",
            labels=["name", "version", "role", "backend", "pid"],
        )
        for role, m in s.get("models", {}).items():
            info.add_metric([m["name"], m["version"], role, m["backend"], pid], 1)
        yield info
        for key, help_text in (
            ("ready", "1 when the server accepts traffic (/ready is 200)."),
            ("batch_queue_rows", "Rows waiting for a model call."),
            ("inference_log_queue_records", "Inference-log records waiting to be written."),
        ):
            g = GaugeMetricFamily(f"mlcycle_{key}", help_text, labels=["pid"])
            g.add_metric([pid], float(s.get(key, 0)))
            yield g
        for key, help_text in (
            ("inference_log_dropped", "Inference-log records dropped (queue full or write error)."),
            ("inference_log_written", "Inference-log records written."),
            ("model_reloads", "Model versions swapped in by hot reload."),
            ("model_reload_failures", "Hot reloads that failed (the old version kept serving)."),
            ("model_refused", "Model versions the trust policy refused (never loaded)."),
        ):
            c = CounterMetricFamily(f"mlcycle_{key}", help_text, labels=["pid"])
            c.add_metric([pid], float(s.get(key, 0)))
            yield c


class ServeMetrics:
    """Counters and histograms of requests, batches and predictions."""

    def __init__(self, state: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "mlcycle_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "mlcycle_request_duration_seconds",
            "Request latency by route.",
            ["route"],
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
        self._multiproc = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.state_collector = _StateCollector(state)
        r.register(self.state_collector)
        self._latency_children: dict[str, Any] = {}
        self._request_children: dict[tuple[str, int], Any] = {}

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        child = self._request_children.get((route, status))
        if child is None:
            child = self._request_children[(route, status)] = self.requests.labels(
                route, str(status)
            )
        child.inc()
        lat = self._latency_children.get(route)
        if lat is None:
            lat = self._latency_children[route] = self.latency.labels(route)
        lat.observe(seconds)

    def observe_predictions(
        self, role: str, version: str, preds: np.ndarray, classifier: bool
    ) -> None:
        """Count labels (classifiers) or add values to the summary (regressors)."""
        if classifier:
            labels, counts = np.unique(preds, return_counts=True)
            for label, count in zip(labels.tolist(), counts.tolist(), strict=True):
                self.predictions.labels(role, version, str(label)).inc(count)
        else:
            values = np.asarray(preds, dtype=float)
            s = self.prediction_value.labels(role, version)
            # One observation per record keeps count == records; sum is what matters.
            for v in values.tolist():
                s.observe(v)

    def render(self) -> bytes:
        """Prometheus text exposition."""
        if self._multiproc:
            from prometheus_client import multiprocess

            reg = CollectorRegistry()
            multiprocess.MultiProcessCollector(reg)
            reg.register(self.state_collector)
            return generate_latest(reg)
        return generate_latest(self.registry)
