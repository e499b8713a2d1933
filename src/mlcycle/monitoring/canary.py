"""Canary evidence and decision: compare the two arms of a traffic split, then judge them.

API:

- statistics — :func:`wilson_interval`, :func:`two_proportions` (difference of proportions
  with a Newcombe hybrid-score interval and a pooled two-proportion z-test),
  :func:`two_means` (difference of means with a Welch interval and test) →
  :class:`Difference`.
- detect — :func:`compare_arms` → :class:`ArmComparison`: per arm (:class:`ArmEvidence`)
  request/error counts and latency, drift against the reference, the prediction
  distribution, quality once labels joined; between the arms the prediction shift and the
  quality difference with its interval and p-value. :func:`arm_traffic` reads the per-arm
  counters out of a server's Prometheus text.
- decide — :func:`decide` with :class:`CanaryPolicy` → :class:`CanaryDecision`
  (``promote``, ``rollback`` or ``continue``, optionally with the next traffic share).

Pure functions: the rows come from :func:`mlcycle.monitoring.inputs.read_inference_log` (and
:func:`~mlcycle.monitoring.inputs.join_labels`); :mod:`mlcycle.monitoring.canary_run` reads,
records and acts.

Every difference is *challenger minus champion, oriented so that positive is better* (for a
loss such as MAE it is ``champion - challenger``); its interval is the evidence the policy
reads, so "at least as good" means the interval's lower bound is above ``-tolerance`` and
"significantly worse" means its upper bound is below zero.

The parts live in :mod:`~mlcycle.monitoring.canary_stats`,
:mod:`~mlcycle.monitoring.canary_traffic`, :mod:`~mlcycle.monitoring.canary_compare` and
:mod:`~mlcycle.monitoring.canary_policy`; this module gathers their API.
"""

from mlcycle.monitoring.canary_compare import (
    CHALLENGER,
    CHAMPION,
    METRICS,
    ArmComparison,
    ArmEvidence,
    compare_arms,
    prediction_shift,
    quality_difference,
)
from mlcycle.monitoring.canary_policy import (
    Action,
    CanaryDecision,
    CanaryPolicy,
    decide,
    next_step,
)
from mlcycle.monitoring.canary_stats import (
    Difference,
    two_means,
    two_proportions,
    wilson_interval,
)
from mlcycle.monitoring.canary_traffic import Traffic, arm_traffic

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "METRICS",
    "Action",
    "ArmComparison",
    "ArmEvidence",
    "CanaryDecision",
    "CanaryPolicy",
    "Difference",
    "Traffic",
    "arm_traffic",
    "compare_arms",
    "decide",
    "next_step",
    "prediction_shift",
    "quality_difference",
    "two_means",
    "two_proportions",
    "wilson_interval",
]
