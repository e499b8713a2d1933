"""Monitoring runs in MLflow: one run per window in experiment ``mlcycle-monitoring``.

API: :data:`EXPERIMENT`, :func:`start_window_run`, :func:`log_result`, :func:`finish`,
:func:`history`, :func:`finished_run_for`, :func:`claim`, :func:`trend_run`,
:func:`covered_windows`, :func:`covered_until`, :func:`stale_runs`, :func:`run_name`.

Each window run is named ``monitor-<model>-v<version>-<window>``. MLflow draws one dot per run,
so the same metrics also go to one *trend* run per model version and month
(``monitor-trend-<model>-v<version>-<YYYY-MM>``, tag ``mlcycle.kind=monitor-trend``), stepped
by the window's index (windows already monitored for the version) and stamped with the
window's end: its charts draw drift scores, drifted share, missing shares and quality as
lines over time. Window runs are nested under their month's trend run. Tags link the model
name and version, the window, the decision and a retrain's training run and version. Runs
are written with the client API (no fluent state), so two monitors in one process do not
share an active run.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mlflow.entities import Metric, RunTag

from mlcycle.monitoring.drift import DriftResult
from mlcycle.monitoring.policy import Decision, WindowOutcome
from mlcycle.tags import (
    MLCYCLE_DECISION,
    MLCYCLE_DECISION_REASONS,
    MLCYCLE_DRIFT_THRESHOLD,
    MLCYCLE_DRIFTED,
    MLCYCLE_FINDINGS,
    MLCYCLE_KIND,
    MLCYCLE_MODEL,
    MLCYCLE_MODEL_VERSION,
    MLCYCLE_MONTH,
    MLCYCLE_SOURCE,
    MLCYCLE_STATUS,
    MLCYCLE_WINDOW,
    MLCYCLE_WINDOW_INDEX,
)

logger = logging.getLogger(__name__)

EXPERIMENT = "mlcycle-monitoring"
KIND = "monitor"
TREND_KIND = "monitor-trend"


def _esc(value: str) -> str:
    return value.replace("'", "\\'")


def run_name(name: str, version: str | None, window_key: str | None, source: str = "file") -> str:
    """``monitor-<model>-v<version>-<window>``; the window as ``<start>..<end>`` in UTC."""
    if window_key:
        start, _, end = window_key.partition("/")
        label = f"{start.removesuffix(':00Z')}..{end.removesuffix(':00Z')}"
    else:
        label = source
    return f"monitor-{name}-v{version or '?'}-{label}"


def start_window_run(
    client: Any,
    experiment_id: str,
    name: str,
    version: str | None,
    window_key: str | None,
    source: str = "file",
) -> str:
    """Create the run of one window (status RUNNING) and return its id."""
    tags = {
        MLCYCLE_KIND: KIND,
        MLCYCLE_MODEL: name,
        MLCYCLE_MODEL_VERSION: version or "",
        MLCYCLE_WINDOW: window_key or "",
        MLCYCLE_SOURCE: source,
    }
    run = client.create_run(
        experiment_id, tags=tags, run_name=run_name(name, version, window_key, source)
    )
    return str(run.info.run_id)


def trend_run(client: Any, experiment_id: str, name: str, version: str | None, month: str) -> str:
    """The trend run of a model version and month (``YYYY-MM``), created when missing."""
    runs = _runs(
        client,
        experiment_id,
        f"tags.`{MLCYCLE_KIND}` = '{TREND_KIND}' and tags.`{MLCYCLE_MODEL}` = '{_esc(name)}' "
        f"and tags.`{MLCYCLE_MODEL_VERSION}` = '{_esc(version or '')}' "
        f"and tags.`{MLCYCLE_MONTH}` = '{_esc(month)}'",
        max_results=1,
    )
    if runs:
        return str(runs[0].info.run_id)
    run = client.create_run(
        experiment_id,
        tags={
            MLCYCLE_KIND: TREND_KIND,
            MLCYCLE_MODEL: name,
            MLCYCLE_MODEL_VERSION: version or "",
            MLCYCLE_MONTH: month,
        },
        run_name=f"monitor-trend-{name}-v{version or '?'}-{month}",
    )
    # Finished at once: it only collects the windows' metrics, and MLflow accepts metrics
    # on finished runs, so a killed monitor never leaves it RUNNING.
    client.set_terminated(run.info.run_id, "FINISHED")
    return str(run.info.run_id)


def _window_bounds(key: str) -> tuple[Any, Any] | None:
    import pandas as pd

    start, sep, end = key.partition("/")
    if not sep:
        return None
    try:
        return pd.Timestamp(start), pd.Timestamp(end)
    except ValueError:
        return None


def covered_windows(
    client: Any, experiment_id: str, name: str, version: str | None
) -> list[tuple[Any, Any, str]]:
    """The time ranges monitored for a model version: ``(start, end, run id)`` by start.

    Each finished window run covers its window's data; runs of files have no range.
    """
    runs = _runs(
        client,
        experiment_id,
        f"tags.`{MLCYCLE_KIND}` = '{KIND}' and tags.`{MLCYCLE_MODEL}` = '{_esc(name)}' "
        f"and tags.`{MLCYCLE_MODEL_VERSION}` = '{_esc(version or '')}' "
        "and attributes.status = 'FINISHED'",
        max_results=1000,
    )
    out = []
    for r in runs:
        bounds = _window_bounds(r.data.tags.get(MLCYCLE_WINDOW, ""))
        if bounds is not None:
            out.append((*bounds, str(r.info.run_id)))
    return sorted(out, key=lambda c: (c[0], c[1]))


def covered_until(
    client: Any, experiment_id: str, name: str, version: str | None
) -> tuple[Any, str | None]:
    """The latest window end monitored for a model version (and its run), or ``(None, None)``."""
    best: tuple[Any, str | None] = (None, None)
    for _, end, run_id in covered_windows(client, experiment_id, name, version):
        if best[0] is None or end > best[0]:
            best = (end, run_id)
    return best


def stale_runs(
    client: Any, experiment_id: str, name: str, started_before_ms: int, exclude: str | None = None
) -> list[Any]:
    """Window runs of ``name`` still RUNNING that started before ``started_before_ms``."""
    runs = _runs(
        client,
        experiment_id,
        f"tags.`{MLCYCLE_KIND}` = '{KIND}' and tags.`{MLCYCLE_MODEL}` = '{_esc(name)}' "
        "and attributes.status = 'RUNNING'",
        max_results=1000,
    )
    return [r for r in runs if r.info.start_time < started_before_ms and r.info.run_id != exclude]


def _runs(client: Any, experiment_id: str, filter_string: str, max_results: int = 200) -> list[Any]:
    return list(
        client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            order_by=["attributes.start_time ASC"],
            max_results=max_results,
        )
    )


def claim(client: Any, experiment_id: str, run_id: str, window_key: str, name: str) -> str | None:
    """Whether ``run_id`` owns the window; the id of the run that does when it does not.

    Every contender creates its run first and then looks: the earliest live run for the window
    wins, so monitors on different machines sharing one tracking server agree.
    """
    live = [
        r
        for r in _runs(
            client,
            experiment_id,
            f"tags.`{MLCYCLE_WINDOW}` = '{_esc(window_key)}' "
            f"and tags.`{MLCYCLE_MODEL}` = '{_esc(name)}'",
        )
        if r.info.status in ("RUNNING", "FINISHED")
    ]
    live.sort(key=lambda r: (r.info.start_time, r.info.run_id))
    if not live or live[0].info.run_id == run_id:
        return None
    return str(live[0].info.run_id)


def finished_run_for(client: Any, experiment_id: str, name: str, window_key: str) -> str | None:
    """The id of a completed monitoring run of this window, if any."""
    runs = _runs(
        client,
        experiment_id,
        f"tags.`{MLCYCLE_WINDOW}` = '{_esc(window_key)}' "
        f"and tags.`{MLCYCLE_MODEL}` = '{_esc(name)}' and attributes.status = 'FINISHED'",
        max_results=5,
    )
    return str(runs[0].info.run_id) if runs else None


def history(
    client: Any, experiment_id: str, name: str, version: str | None, limit: int = 50
) -> list[WindowOutcome]:
    """Completed windows of a model version, oldest first."""
    flt = (
        f"tags.`{MLCYCLE_KIND}` = '{KIND}' and tags.`{MLCYCLE_MODEL}` = '{_esc(name)}' "
        f"and tags.`{MLCYCLE_MODEL_VERSION}` = '{_esc(version or '')}' "
        "and attributes.status = 'FINISHED'"
    )
    runs = list(
        client.search_runs(
            [experiment_id],
            filter_string=flt,
            order_by=["attributes.start_time DESC"],
            max_results=limit,
        )
    )
    out = []
    for r in reversed(runs):
        drop = r.data.metrics.get("quality_drop")
        drifted = r.data.tags.get(MLCYCLE_DRIFTED, "")
        out.append(
            WindowOutcome(
                key=r.data.tags.get(MLCYCLE_WINDOW, r.info.run_id),
                status=r.data.tags.get(MLCYCLE_STATUS, "ok"),
                drift_share=float(r.data.metrics.get("drift_share", 0.0)),
                quality_drop=float(drop) if drop is not None else None,
                drifted=tuple(c for c in drifted.split(",") if c),
                drift_threshold=_float(r.data.tags.get(MLCYCLE_DRIFT_THRESHOLD)),
            )
        )
    return out


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def log_result(
    client: Any,
    run_id: str,
    result: DriftResult,
    step: int,
    trend_run_id: str | None = None,
    timestamp_ms: int | None = None,
    drift_share: float | None = None,
) -> None:
    """Metrics (stepped by window), status tags and the Evidently report as artifacts.

    With ``trend_run_id`` the metrics also go to that run at ``step`` and ``timestamp_ms``
    (the window's end), which is what the MLflow UI draws as a line.
    """
    now = int(time.time() * 1000)
    values = result.metrics()
    metrics = [Metric(k, float(v), now, step) for k, v in values.items()]
    if trend_run_id:
        stamp = timestamp_ms or now
        trend = [Metric(k, float(v), stamp, step) for k, v in values.items()]
        for i in range(0, len(trend), 900):
            client.log_batch(trend_run_id, metrics=trend[i : i + 900])
    tags = [
        RunTag(MLCYCLE_STATUS, result.status),
        RunTag(MLCYCLE_DRIFTED, ",".join(result.drifted)[:5000]),
        RunTag(
            MLCYCLE_FINDINGS, "; ".join(f"{f.column}: {f.kind}" for f in result.findings)[:5000]
        ),
        RunTag(MLCYCLE_WINDOW_INDEX, str(step)),
        *([RunTag(MLCYCLE_DRIFT_THRESHOLD, f"{drift_share:g}")] if drift_share else []),
        *([RunTag("mlflow.parentRunId", trend_run_id)] if trend_run_id else []),
    ]
    for i in range(0, len(metrics), 900):
        client.log_batch(run_id, metrics=metrics[i : i + 900], tags=tags if i == 0 else [])
    if not metrics:
        client.log_batch(run_id, tags=tags)
    for path in (result.report_html, result.report_json):
        if path:
            client.log_artifact(run_id, path, "report")


def finish(
    client: Any,
    run_id: str,
    decision: Decision | None,
    extra: dict[str, str] | None = None,
    status: str = "FINISHED",
) -> None:
    """Record the decision and any links, then end the run."""
    tags = dict(extra or {})
    if decision is not None:
        tags[MLCYCLE_DECISION] = "retrain" if decision.retrain else "none"
        tags[MLCYCLE_DECISION_REASONS] = " | ".join(decision.reasons)[:5000]
    if tags:
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    client.set_terminated(run_id, status)
