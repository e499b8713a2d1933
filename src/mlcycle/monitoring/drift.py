"""Detect: compare a window of production data with the training reference.

API:

- :func:`detect` → :class:`DriftResult` — per-column drift, prediction drift, data-quality
  findings and quality metrics (when labels exist) of a window's
  :class:`~mlcycle.monitoring.summary.WindowSummary`; no side effect.
- :func:`new_summary` starts a summary of the reference; :func:`summarise` fills one from an
  in-memory frame (a window streamed in batches or summarised on Spark arrives as one too).
- :func:`analyse_summary` / :func:`analyse_window` — :func:`detect`, then, when given an
  output directory, the Evidently report
  (:func:`mlcycle.monitoring.report.write_window_report`) as a separate step.
- Re-exported values (:mod:`mlcycle.monitoring.results`): :class:`DriftConfig`,
  :class:`ColumnDrift`, :class:`Finding`, :class:`DriftResult`; and :func:`findings_of`
  (:mod:`mlcycle.monitoring.sanitise`).

Verdicts are computed over the *whole* window against the reference profile that training
stored (quantile function, bins, category counts of the full training split), with the same
default methods Evidently picks for large data (normed Wasserstein for numbers, Jensen–Shannon
for categories and numbers with at most five values). The window is read once, into a
mergeable summary (counts over the reference's quantile points, category counts, a bounded
row sample), so the verdicts are the same whether it was one frame, a stream of Arrow batches
or Spark partitions (:mod:`mlcycle.monitoring.statistics`). Methods without a profile form
(``ks``, ``chisquare``, ``z``, …) run through Evidently's own stat tests on the bounded
samples.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from mlcycle.inference_log import PREDICTION
from mlcycle.monitoring.quality import quality_drop, quality_metrics
from mlcycle.monitoring.results import (
    DEFAULT_THRESHOLDS,
    PROFILE_METHODS,
    ColumnDrift,
    DriftConfig,
    DriftResult,
    Finding,
    Status,
)
from mlcycle.monitoring.sanitise import class_labels, clean_numeric, findings_of, numeric_findings
from mlcycle.monitoring.statistics import column_drift
from mlcycle.monitoring.summary import NumericStats, WindowSummary

__all__ = [
    "DEFAULT_THRESHOLDS",
    "PROFILE_METHODS",
    "ColumnDrift",
    "DriftConfig",
    "DriftResult",
    "Finding",
    "Status",
    "analyse_summary",
    "analyse_window",
    "detect",
    "findings_of",
    "new_summary",
    "summarise",
]

logger = logging.getLogger(__name__)


def new_summary(
    reference: Any, config: DriftConfig, label_keys: dict[str, frozenset[str]] | None = None
) -> WindowSummary:
    """An empty :class:`WindowSummary` for ``reference`` with the config's sample size."""
    pred_profile = None
    if PREDICTION in reference.sample.columns:
        pred_profile = reference.prediction_profile()
    return WindowSummary(
        reference.profile, pred_profile, config.report_rows, config.seed, label_keys
    )


def summarise(reference: Any, current: pd.DataFrame, config: DriftConfig) -> WindowSummary:
    """The summary of an in-memory window (only its row count when below ``min_rows``)."""
    summary = new_summary(reference, config)
    if len(current) >= config.min_rows:
        summary.add(current)
    else:
        summary.rows = len(current)
    return summary


def analyse_window(
    reference: Any,
    current: pd.DataFrame,
    config: DriftConfig | None = None,
    output_dir: str | Path | None = None,
) -> DriftResult:
    """Compare ``current`` with ``reference``; never raises on bad data, reports it instead.

    The window is summarised in one pass (:mod:`mlcycle.monitoring.summary`) and judged by
    :func:`detect`, exactly as a streamed or Spark-computed summary would be.

    Args:
        reference: a :class:`mlcycle.monitoring.inputs.ReferenceData` (profile, sample, spec,
            reference quality).
        current: the window: feature columns, ``prediction`` and, when labels joined, the
            target column (inference-log bookkeeping columns are ignored).
        config: thresholds and methods.
        output_dir: where the Evidently HTML/JSON report goes; no report when ``None``.

    Raises:
        MonitoringError: a configured method is unknown, or the report failed.
    """
    config = config or DriftConfig()
    summary = summarise(reference, current, config)
    target = reference.profile.get("target")
    labelled = current if target and target in current.columns else None
    return analyse_summary(reference, summary, config, output_dir, labelled=labelled)


def analyse_summary(
    reference: Any,
    summary: WindowSummary,
    config: DriftConfig | None = None,
    output_dir: str | Path | None = None,
    labelled: pd.DataFrame | None = None,
) -> DriftResult:
    """:func:`detect`, then the report into ``output_dir`` when one is given.

    Raises:
        MonitoringError: a configured method is unknown, or the report failed.
    """
    config = config or DriftConfig()
    result = detect(reference, summary, config, labelled)
    if output_dir is None:
        return result
    from mlcycle.monitoring.report import write_window_report

    return write_window_report(reference, summary, result, config, Path(output_dir))


def detect(
    reference: Any,
    summary: WindowSummary,
    config: DriftConfig | None = None,
    labelled: pd.DataFrame | None = None,
) -> DriftResult:
    """Verdicts, findings and quality of a window's summary; reads nothing, writes nothing.

    Args:
        reference: the :class:`mlcycle.monitoring.inputs.ReferenceData`.
        summary: the window's statistics (any engine).
        config: thresholds and methods.
        labelled: rows with the target column joined (quality metrics), if any.

    Raises:
        MonitoringError: a configured method is unknown or failed.
    """
    config = config or DriftConfig()
    profile = reference.profile
    ref_rows = int(profile.get("rows", len(reference.sample)))
    n = summary.rows
    if n < config.min_rows:
        logger.info("window has %d rows (< %d): insufficient data", n, config.min_rows)
        return DriftResult(
            status="insufficient_data",
            rows=n,
            reference_rows=ref_rows,
            findings=(
                Finding("*", "insufficient_data", f"{n} rows; at least {config.min_rows} needed"),
            ),
        )
    findings, usable = findings_of(summary, config)
    sample = reference.sample
    cur_sample = summary.sample if summary.sample is not None else pd.DataFrame()
    drifts: list[ColumnDrift] = []
    for col in usable:
        ref = profile["columns"][col]
        kind: Literal["numeric", "categorical"] = ref["type"]
        st: Any = summary.numeric[col] if kind == "numeric" else summary.categorical[col]
        cur_s = None
        if col in cur_sample.columns:
            cur_s = (
                pd.Series(clean_numeric(cur_sample[col]))
                if kind == "numeric"
                else cur_sample[col].astype("str")
            )
        ref_s = sample[col] if col in sample.columns else None
        drifts.append(column_drift(col, kind, ref, st, cur_s, ref_s, config, ref_rows))

    task = profile.get("task", "classification")
    target = profile.get("target")
    prediction = None
    pred_kind: Literal["numeric", "categorical"] = (
        "categorical" if task == "classification" else "numeric"
    )
    if summary.prediction is not None and PREDICTION in sample.columns:
        assert summary.prediction_profile is not None
        if isinstance(summary.prediction, NumericStats):
            findings += numeric_findings(PREDICTION, summary.prediction)
        cur_p = None
        if PREDICTION in cur_sample.columns:
            cur_p = (
                pd.Series(clean_numeric(cur_sample[PREDICTION]))
                if pred_kind == "numeric"
                else class_labels(cur_sample[PREDICTION])
            )
        prediction = column_drift(
            PREDICTION,
            pred_kind,
            summary.prediction_profile,
            summary.prediction,
            cur_p,
            sample[PREDICTION],
            config,
            ref_rows,
        )
    else:
        findings.append(Finding(PREDICTION, "missing_column", "no predictions to compare"))

    quality: dict[str, float] = {}
    drop = None
    labelled_rows = 0
    if (
        labelled is not None
        and target
        and target in labelled.columns
        and PREDICTION in labelled.columns
    ):
        labelled = labelled[labelled[target].notna()]
        if len(labelled) >= config.min_labels:
            labelled_rows = len(labelled)
            quality = quality_metrics(
                task, labelled[target], labelled[PREDICTION], tuple(reference.classes)
            )
            drop = quality_drop(task, quality, reference.quality)
        elif len(labelled):
            findings.append(
                Finding(
                    target,
                    "few_labels",
                    f"{len(labelled)} labelled rows; {config.min_labels} needed for quality",
                )
            )

    result_share = sum(d.drifted for d in drifts) / len(drifts) if drifts else 0.0
    status: Status = "drift" if drifts and result_share >= config.drift_share else "ok"
    if not drifts:
        status = "insufficient_data"
        findings.append(Finding("*", "insufficient_data", "no column could be analysed"))

    for f in findings:
        logger.info("data quality: %s %s: %s", f.column, f.kind, f.detail)
    return DriftResult(
        status=status,
        rows=n,
        reference_rows=ref_rows,
        columns=tuple(drifts),
        prediction=prediction,
        findings=tuple(findings),
        quality=quality,
        reference_quality=dict(reference.quality),
        quality_drop=drop,
        labelled_rows=labelled_rows,
    )
