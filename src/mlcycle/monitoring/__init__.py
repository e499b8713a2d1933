"""Monitoring stage: detect drift, decide with a declared policy, act by retraining.

API:

- detect — :func:`detect` (a window's summary, no side effect) or :func:`analyse_window`
  (a frame) with :class:`DriftConfig` → :class:`DriftResult` (:mod:`mlcycle.monitoring.drift`);
  the Evidently report is a separate step (:mod:`mlcycle.monitoring.report`); inputs from
  :func:`load_reference`, :func:`reference_for_table`, :func:`read_inference_log`,
  :func:`join_labels` (:mod:`mlcycle.monitoring.inputs`).
- decide — :func:`decide` with :class:`RetrainPolicy` → :class:`Decision`
  (:mod:`mlcycle.monitoring.policy`).
- act — :func:`retrain` → :class:`RetrainOutcome` (:mod:`mlcycle.monitoring.trigger`), by
  mlcycle's trainer or a :class:`ProjectRetrain` (:mod:`mlcycle.monitoring.project`).
- canary — :func:`~mlcycle.monitoring.canary.compare_arms` and
  :func:`~mlcycle.monitoring.canary.decide` with
  :class:`~mlcycle.monitoring.canary.CanaryPolicy` (:mod:`mlcycle.monitoring.canary`, pure);
  :func:`~mlcycle.monitoring.canary_run.evaluate` reads the window, records the check and acts
  (:mod:`mlcycle.monitoring.canary_run`).
- schedule — :func:`run_once` / :func:`loop` → :class:`MonitorOutcome`
  (:mod:`mlcycle.monitoring.loop`), one MLflow run per window in experiment
  ``mlcycle-monitoring`` (:mod:`mlcycle.monitoring.record`).
"""

from mlcycle.monitoring.drift import (
    ColumnDrift,
    DriftConfig,
    DriftResult,
    Finding,
    analyse_window,
    detect,
)
from mlcycle.monitoring.inputs import (
    ReferenceData,
    Window,
    join_labels,
    load_current,
    load_reference,
    read_inference_log,
    reference_for_table,
    reference_from_frame,
)
from mlcycle.monitoring.loop import MonitorOutcome, loop, run_once
from mlcycle.monitoring.policy import Decision, RetrainPolicy, WindowOutcome, decide
from mlcycle.monitoring.project import ProjectRetrain
from mlcycle.monitoring.record import EXPERIMENT
from mlcycle.monitoring.trigger import RetrainOutcome, retrain

__all__ = [
    "EXPERIMENT",
    "ColumnDrift",
    "Decision",
    "DriftConfig",
    "DriftResult",
    "Finding",
    "MonitorOutcome",
    "ProjectRetrain",
    "ReferenceData",
    "RetrainOutcome",
    "RetrainPolicy",
    "Window",
    "WindowOutcome",
    "analyse_window",
    "decide",
    "detect",
    "join_labels",
    "load_current",
    "load_reference",
    "loop",
    "read_inference_log",
    "reference_for_table",
    "reference_from_frame",
    "retrain",
    "run_once",
]
