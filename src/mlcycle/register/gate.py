"""The champion/challenger gate: both models scored on the same data, thresholds as data.

API: :func:`gate` (the version facts and schema check it uses, :func:`model_facts` and
:func:`check_schema`, live in :mod:`mlcycle.register.facts`; the scoring in
:mod:`mlcycle.register.scoring`).

Both models are scored in two nested runs under a ``gate`` run of the audit experiment, with
the metrics training logs (:mod:`mlcycle.model_metrics`, under the same names). The
thresholds are compared here rather than with ``mlflow.validate_evaluation_results``:
MLflow's ``MetricThreshold`` cannot express "no worse than the champion" (its
``min_absolute_change`` must be > 0) and reports failures as one exception message, while
mlcycle records a reason per threshold.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd

from mlcycle import fluent
from mlcycle.config import Settings
from mlcycle.errors import SchemaMismatch
from mlcycle.model_metrics import HIGHER_IS_BETTER, canonical_metric, why_missing
from mlcycle.register import audit
from mlcycle.register.core import champion_version
from mlcycle.register.facts import check_schema, model_facts
from mlcycle.register.scoring import LATENCY, eval_frame, score
from mlcycle.register.types import CHALLENGER, DEFAULT_METRIC, GateDecision, GatePolicy
from mlcycle.tags import (
    MLCYCLE_GATE_AUDIT_RUN_ID,
    MLCYCLE_GATE_METRIC,
    MLCYCLE_GATE_MODE,
    MLCYCLE_GATE_PASSED,
    MLCYCLE_GATE_REASONS,
    MLCYCLE_GATE_SCORE,
)
from mlcycle.uris import resolve_version

__all__ = ["LATENCY", "check_schema", "gate", "model_facts"]

logger = logging.getLogger(__name__)


def _judge(
    policy: GatePolicy,
    metric: str,
    challenger: dict[str, float],
    champion: dict[str, float],
    missing: dict[str, str] | None = None,
    task: str = "",
) -> list[str]:
    """Failed thresholds as sentences; empty means the challenger passes.

    ``missing`` says why the challenger lacks a metric (from :func:`score`).
    """
    key = metric = canonical_metric(metric)
    higher = HIGHER_IS_BETTER.get(metric, True)
    value = challenger.get(key)
    if value is None or math.isnan(value):
        why = (missing or {}).get(metric) or why_missing(task, None, metric)
        return [f"challenger has no {metric}: {why}"]
    failures = []
    if policy.min_score is not None:
        ok = value >= policy.min_score if higher else value <= policy.min_score
        if not ok:
            bound = ">=" if higher else "<="
            failures.append(f"{metric} {value:.4f} is not {bound} min_score {policy.min_score}")
    base = champion.get(key)
    if base is not None and not math.isnan(base):
        gain = value - base if higher else base - value
        if gain < policy.min_improvement:
            failures.append(
                f"{metric} {value:.4f} vs champion {base:.4f}: improvement {gain:+.4f} "
                f"< min_improvement {policy.min_improvement}"
            )
    if policy.max_latency_ms_per_row is not None:
        latency = challenger.get(LATENCY, math.inf)
        if latency > policy.max_latency_ms_per_row:
            failures.append(
                f"latency {latency:.4f} ms/row > max_latency_ms_per_row "
                f"{policy.max_latency_ms_per_row}"
            )
    return failures


def _record(
    client: Any,
    name: str,
    decision: GateDecision,
    metric: str,
    audit_run_id: str | None,
) -> None:
    # The version keeps what users filter on; reasons and the full metric sets are on the
    # audit run (tags and metrics) that mlcycle.gate.audit_run_id names.
    key = canonical_metric(metric)
    score = ""
    if key in decision.challenger_metrics:
        score = f"{metric} {decision.challenger_metrics[key]:.4g}"
        if key in decision.champion_metrics:
            score += f" vs {decision.champion_metrics[key]:.4g} (v{decision.champion_version})"
    tags = {
        MLCYCLE_GATE_PASSED: str(decision.passed).lower(),
        MLCYCLE_GATE_SCORE: score,
        MLCYCLE_GATE_AUDIT_RUN_ID: audit_run_id or "",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, decision.challenger_version, key, value)


def gate(
    client: Any,
    name: str,
    version: str | None = None,
    policy: GatePolicy = GatePolicy(),  # noqa: B008 - frozen dataclass, safe as default
    eval_data: pd.DataFrame | None = None,
    target: str | None = None,
    *,
    settings: Settings | None = None,
) -> GateDecision:
    """Score challenger and champion on the same data and apply the policy's thresholds.

    The decision and both metric sets are written as version tags ``mlcycle.gate.*`` on the
    challenger and as a ``gate`` run in the audit experiment. Stages and aliases are never
    touched. With no champion, the absolute thresholds alone decide. In ``dry_run`` mode the
    decision is computed and recorded but :func:`mlcycle.register.promote` does not enforce
    it; in ``disabled`` mode nothing is evaluated.

    Args:
        client: an ``MlflowClient``; evaluation logs to its tracking store through
            :func:`mlcycle.fluent.start_run`.
        name: registered model name.
        version: the challenger; ``None`` means the version ``@challenger`` names.
        policy: thresholds and mode.
        eval_data: features and target; default the challenger run's held-out test split.
        target: the column the models predict, for versions whose contract does not say.
        settings: the CLI's settings (where a new audit experiment keeps artifacts).

    Raises:
        ModelNotFound: unknown model or version, or no ``@challenger``.
        DataError: evaluation data missing or lacking columns.
        MissingPiece: no target or no evaluation data, neither on the version nor given.
    """
    import mlflow

    mv = resolve_version(client, name, version, alias=CHALLENGER)
    challenger = model_facts(client, mv, target)
    champ_v = champion_version(client, name)
    if champ_v == challenger.version:
        champ_v = None  # the champion re-gated against itself: absolute thresholds only
    metric = canonical_metric(policy.metric or DEFAULT_METRIC.get(challenger.task, "roc_auc"))
    if policy.mode == "disabled":
        decision = GateDecision(
            True, "disabled", ["gate disabled"], {}, {}, challenger.version, champ_v
        )
        _record(client, name, decision, metric, None)
        return decision

    champion = (
        model_facts(client, resolve_version(client, name, champ_v), target) if champ_v else None
    )
    reasons: list[str] = []
    if champion is not None:
        try:
            check_schema(challenger, champion)
        except SchemaMismatch as exc:
            reasons.append(str(exc))
            champion = None
    data = eval_frame(client, challenger, champion, eval_data)

    parent = audit.record(
        client,
        name,
        "gate",
        to_version=challenger.version,
        from_version=champ_v,
        tags={MLCYCLE_GATE_MODE: policy.mode, MLCYCLE_GATE_METRIC: metric},
        settings=settings,
    )
    # The audit run, resumed, holds each model's nested scoring run.
    with fluent.start_run(client, run_id=parent, nested=True):
        challenger_metrics, missing = score(
            client, challenger, data, "challenger", policy.allow_pickle
        )
        champion_metrics = (
            score(client, champion, data, "champion", policy.allow_pickle)[0] if champion else {}
        )
        reasons = (
            _judge(policy, metric, challenger_metrics, champion_metrics, missing, challenger.task)
            + reasons
        )
        passed = not reasons
        mlflow.set_tags(
            {
                MLCYCLE_GATE_PASSED: str(passed).lower(),
                MLCYCLE_GATE_REASONS: "; ".join(reasons)[:4900],
            }
        )
        mlflow.log_metrics(
            {f"challenger_{k}": v for k, v in challenger_metrics.items() if math.isfinite(v)}
            | {f"champion_{k}": v for k, v in champion_metrics.items() if math.isfinite(v)}
        )
    if passed:
        key = metric
        numbers = f"{metric} {challenger_metrics[key]:.4f}"
        if key in champion_metrics:
            numbers += f" vs champion {champion_metrics[key]:.4f}"
        reasons = [
            f"{numbers} passes every threshold"
            + (f" against champion v{champ_v}" if champ_v else " (no champion yet)")
        ]
    decision = GateDecision(
        passed,
        policy.mode,
        reasons,
        challenger_metrics,
        champion_metrics,
        challenger.version,
        champ_v,
    )
    _record(client, name, decision, metric, parent)
    logger.info(
        "gate %s v%s: %s (%s)",
        name,
        challenger.version,
        "pass" if passed else "fail",
        "; ".join(reasons),
    )
    return decision
