"""One monitoring cycle of a claimed window: read → detect → record → decide → act.

API: :class:`MonitorOutcome`, :data:`ENGINES`, :func:`monitor_window`, :func:`summarise_log`,
:func:`window_summary`.

:func:`mlcycle.monitoring.loop.run_once` resolves the window, takes its lock and claims it,
then calls :func:`monitor_window`, which reads the window (whole, streamed or on Spark),
detects drift (:mod:`mlcycle.monitoring.drift`), writes the report, records the run
(:mod:`mlcycle.monitoring.record`), applies the retrain policy
(:mod:`mlcycle.monitoring.policy`) and retrains when it says so
(:mod:`mlcycle.monitoring.trigger`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from mlcycle.config import Settings
from mlcycle.monitoring import record
from mlcycle.monitoring.drift import (
    DriftConfig,
    DriftResult,
    Finding,
    analyse_summary,
    analyse_window,
    new_summary,
)
from mlcycle.monitoring.inputs import (
    ReferenceData,
    Window,
    join_labels,
    read_inference_log,
    stream_inference_log,
)
from mlcycle.monitoring.policy import Decision, RetrainPolicy, WindowOutcome, decide
from mlcycle.monitoring.project import project_retrain
from mlcycle.monitoring.summary import WindowSummary
from mlcycle.monitoring.trigger import RetrainOutcome
from mlcycle.tags import (
    MLCYCLE_RETRAIN_PROMOTED,
    MLCYCLE_RETRAIN_RUN_ID,
    MLCYCLE_RETRAIN_SKIPPED,
    MLCYCLE_RETRAIN_VERSION,
)

logger = logging.getLogger(__name__)

RetrainFn = Callable[..., RetrainOutcome]
Engine = Literal["pandas", "arrow", "spark"]
#: How a window from the inference log is read: whole into pandas, streamed as Arrow
#: record batches (bounded memory), or summarised by Spark where the log lies.
ENGINES: tuple[str, ...] = ("pandas", "arrow", "spark")


@dataclass(frozen=True)
class MonitorOutcome:
    """What one monitoring pass did (``note``: how the window asked for was narrowed)."""

    window: str | None
    run_id: str | None
    result: DriftResult | None
    decision: Decision | None
    retrain: RetrainOutcome | None = None
    skipped: str | None = None
    source: str = "log"
    stale: tuple[str, ...] = ()
    note: str | None = None
    #: Why the policy's ``retrain`` was not acted on (``--no-retrain``, too few labels).
    retrain_skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (what ``mlcycle monitor --json`` prints)."""
        return {
            "window": self.window,
            "run_id": self.run_id,
            "skipped": self.skipped,
            "result": self.result.as_dict() if self.result else None,
            "decision": asdict(self.decision) if self.decision else None,
            "retrain": asdict(self.retrain) if self.retrain else None,
            "stale": list(self.stale),
            "note": self.note,
            "retrain_skipped": self.retrain_skipped,
        }


def monitor_window(
    client: Any,
    settings: Settings,
    name: str,
    version: str | None,
    window: Window | None,
    current: pd.DataFrame | None,
    ref: ReferenceData,
    labels: pd.DataFrame | None,
    config: DriftConfig,
    policy: RetrainPolicy,
    allow_retrain: bool,
    output_dir: Path,
    retrain_fn: RetrainFn,
    experiment_id: str,
    run_id: str,
    problems: list[str],
    summary: WindowSummary | None = None,
    engine: Engine = "pandas",
    spark_master: str = "local[2]",
) -> MonitorOutcome:
    """Read, detect, record, decide and act on one window whose run ``run_id`` is claimed.

    ``current`` (a frame) or ``summary`` (a streamed file) is the window when given;
    otherwise the window is read from the inference log with ``engine``. The run is
    finished with the decision; a failure leaves finishing it FAILED to the caller.
    """
    key = window.key if window is not None else None
    if current is None and summary is None:
        if engine == "pandas":
            current = read_inference_log(
                settings.inference_log, name, window, version=version, problems=problems
            )
        else:
            summary = summarise_log(
                settings, name, window, version, problems, None, ref, config, labels, engine,
                spark_master,
            )  # fmt: skip
    findings = [Finding("inference_log", "unreadable_file", p) for p in problems]
    refused: list[str] = []
    if summary is not None:
        # Streamed: only the rows labels name were kept; they are the window's labelled
        # rows (quality, retrain data), and the report's sample gets its labels too.
        current = summary.labelled_frame()
        if labels is not None:
            current = join_labels(current, labels, ref.target, problems=refused)
            if summary.sample is not None:
                summary.sample = join_labels(summary.sample, labels, ref.target, problems=[])
    elif labels is not None:
        assert current is not None
        current = join_labels(current, labels, ref.target, problems=refused)
    findings += [Finding(ref.target, "labels_refused", p) for p in refused]
    assert current is not None
    before = record.history(client, experiment_id, name, version)
    step = len(before)
    if summary is not None:
        labelled = current if ref.target in current.columns else None
        result = analyse_summary(ref, summary, config, output_dir / run_id, labelled=labelled)
    else:
        result = analyse_window(ref, current, config, output_dir / run_id)
    if findings:
        result = replace(result, findings=(*findings, *result.findings))
    trend = None
    stamp = None
    if window is not None:
        end = window.end - pd.Timedelta(microseconds=1)
        trend = record.trend_run(client, experiment_id, name, version, f"{end:%Y-%m}")
        stamp = int(window.end.timestamp() * 1000)
    record.log_result(client, run_id, result, step, trend, stamp, config.drift_share)
    outcome = WindowOutcome(
        key=key or run_id,
        status=result.status,
        drift_share=result.drift_share,
        quality_drop=result.quality_drop,
        drifted=tuple(result.drifted),
        drift_threshold=config.drift_share,
    )
    decision = decide([*before, outcome], policy)
    extra: dict[str, str] = {}
    retrained = None
    if decision.retrain:
        labelled = 0
        if ref.target in current.columns:
            labelled = int(current[ref.target].notna().sum())
        if not allow_retrain:
            extra[MLCYCLE_RETRAIN_SKIPPED] = "retrain disabled"
        elif labelled < config.min_labels:
            extra[MLCYCLE_RETRAIN_SKIPPED] = (
                f"{labelled} labelled rows; {config.min_labels} needed to retrain"
            )
            logger.info("retrain wanted for %s but %s", name, extra[MLCYCLE_RETRAIN_SKIPPED])
        else:
            retrained = retrain_fn(
                client,
                name,
                ref,
                current,
                monitoring_run_id=run_id,
                window=key,
                experiment=settings.experiment,
                seed=settings.seed,
                data_path=output_dir / run_id / "retrain.parquet",
                action=project_retrain(settings),
                settings=settings,
            )
            extra.update(
                {
                    MLCYCLE_RETRAIN_RUN_ID: retrained.run_id,
                    MLCYCLE_RETRAIN_VERSION: retrained.version,
                    MLCYCLE_RETRAIN_PROMOTED: str(retrained.promoted).lower(),
                }
            )
    record.finish(client, run_id, decision, extra)
    return MonitorOutcome(
        key,
        run_id,
        result,
        decision,
        retrained,
        retrain_skipped=extra.get(MLCYCLE_RETRAIN_SKIPPED),
    )


def summarise_log(
    settings: Settings,
    name: str,
    window: Window | None,
    version: str | None,
    problems: list[str],
    since: pd.Timestamp | None,
    ref: ReferenceData,
    config: DriftConfig,
    labels: pd.DataFrame | None,
    engine: Engine,
    spark_master: str,
) -> WindowSummary:
    summary = window_summary(ref, config, labels)
    if engine == "spark":
        from mlcycle.monitoring.spark import spark_summary

        return spark_summary(
            settings.inference_log,
            name,
            summary,
            window,
            version,
            since=since,
            master=spark_master,
            problems=problems,
        )
    return stream_inference_log(
        settings.inference_log, name, summary, window, version, problems=problems, since=since
    )


def window_summary(
    ref: ReferenceData, config: DriftConfig, labels: pd.DataFrame | None
) -> WindowSummary:
    """An empty summary that keeps the rows ``labels`` name (they join after the pass)."""
    keys: dict[str, frozenset[str]] = {}
    if labels is not None:
        for col in ("record_id", "request_id"):
            if col in labels.columns:
                keys[col] = frozenset(labels[col].dropna().astype("str"))
    return new_summary(ref, config, keys or None)
