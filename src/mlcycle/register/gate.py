"""The champion/challenger gate: both models scored on the same data, thresholds as data.

API: :func:`gate`, :func:`check_schema`, :func:`model_facts`.

Scoring uses ``mlflow.models.evaluate`` (the default evaluator, explainability off) in two
nested runs under a ``gate`` run of the audit experiment. The thresholds are compared here
rather than with ``mlflow.validate_evaluation_results``: MLflow's ``MetricThreshold`` cannot
express "no worse than the champion" (its ``min_absolute_change`` must be > 0) and reports
failures as one exception message, while mlcycle records a reason per threshold.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlcycle import contract, fluent, trust
from mlcycle.config import Settings
from mlcycle.errors import DataError, ModelNotFound, SchemaMismatch
from mlcycle.register import audit
from mlcycle.register.core import champion_version
from mlcycle.register.types import (
    CHALLENGER,
    DEFAULT_METRIC,
    HIGHER_IS_BETTER,
    GateDecision,
    GatePolicy,
)
from mlcycle.tags import (
    MLCYCLE_GATE_AUDIT_RUN_ID,
    MLCYCLE_GATE_METRIC,
    MLCYCLE_GATE_MODE,
    MLCYCLE_GATE_PASSED,
    MLCYCLE_GATE_REASONS,
    MLCYCLE_GATE_ROLE,
    MLCYCLE_GATE_SCORE,
    MLCYCLE_GATE_VERSION,
)
from mlcycle.uris import resolve_version

logger = logging.getLogger(__name__)

#: mlcycle's metric names → the names ``mlflow.models.evaluate`` reports.
EVALUATE_NAMES = {
    "accuracy": "accuracy_score",
    "f1": "f1_score",
    "precision": "precision_score",
    "recall": "recall_score",
    "rmse": "root_mean_squared_error",
    "mae": "mean_absolute_error",
    "mse": "mean_squared_error",
    "r2": "r2_score",
}
LATENCY = "latency_ms_per_row"


@dataclass(frozen=True)
class ModelFacts:
    """What the gate needs to know about one registered version."""

    version: str
    download_uri: str
    run_id: str | None
    task: str
    target: str
    inputs: dict[str, str]  # input column → MLflow type
    required: tuple[str, ...]
    pos_label: str | None = None


def model_facts(client: Any, mv: Any, target: str | None = None) -> ModelFacts:
    """Task, target and input schema of a version, from its MLmodel file and its run.

    Args:
        client: an ``MlflowClient``.
        mv: the ``ModelVersion``.
        target: the column it predicts, when the version's contract does not say.

    Raises:
        ModelNotFound: the version's model files cannot be read.
        MissingPiece: neither the version nor ``target`` says which column it predicts.
    """
    import mlflow
    from mlflow.models import Model

    uri = client.get_model_version_download_uri(mv.name, mv.version)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri.rstrip("/") + "/MLmodel")
        model = Model.load(local)
    except Exception as exc:
        raise ModelNotFound(
            f"cannot read the model of {mv.name} version {mv.version}: {exc}"
        ) from exc
    terms = contract.read(dict(mv.tags or {}), (model.metadata or {}).get("mlcycle"))
    inputs: dict[str, str] = {}
    required: list[str] = []
    if model.signature is not None and model.signature.inputs is not None:
        for col in model.signature.inputs.to_dict():
            name = col.get("name")
            if name is None:
                continue
            inputs[name] = str(col.get("type"))
            if col.get("required", True):
                required.append(name)
    target = contract.require_target(terms.target or target, f"{mv.name} version {mv.version}")
    return ModelFacts(
        str(mv.version), uri, mv.run_id, terms.task, target, inputs, tuple(required),
        terms.pos_label,
    )  # fmt: skip


def check_schema(challenger: ModelFacts, champion: ModelFacts) -> None:
    """Refuse a challenger that cannot take the champion's requests.

    Compatible means: every input the challenger requires is one the champion takes, with
    the same type, and both predict the same column for the same task.

    Raises:
        SchemaMismatch: with the offending columns.
    """
    problems = []
    if challenger.target != champion.target:
        problems.append(f"predicts '{challenger.target}', champion predicts '{champion.target}'")
    if challenger.task != champion.task:
        problems.append(f"is a {challenger.task} model, champion is a {champion.task} model")
    if challenger.inputs and champion.inputs:
        new = [c for c in challenger.required if c not in champion.inputs]
        if new:
            problems.append(f"requires inputs the champion does not take: {', '.join(new)}")
        changed = [
            f"{c} ({champion.inputs[c]} → {t})"
            for c, t in challenger.inputs.items()
            if c in champion.inputs and champion.inputs[c] != t
        ]
        if changed:
            problems.append(f"changes input types: {', '.join(changed)}")
    if problems:
        raise SchemaMismatch(
            f"version {challenger.version} is incompatible with champion version "
            f"{champion.version}: " + "; ".join(problems) + " (use --force --reason to override)"
        )


def _default_eval_data(client: Any, facts: ModelFacts) -> pd.DataFrame:
    return contract.load_eval_split(client, facts.run_id, f"version {facts.version}")


def _missing(data: pd.DataFrame, models: list[ModelFacts]) -> list[str]:
    needed = dict.fromkeys(c for m in models for c in (*m.required, m.target))
    return [c for c in needed if c not in data.columns]


def _eval_frame(
    client: Any, challenger: ModelFacts, champion: ModelFacts | None, given: pd.DataFrame | None
) -> pd.DataFrame:
    """The one frame both models are scored on, with every column either of them needs.

    By default the challenger's held-out test split; when that lacks columns the champion
    needs, the champion's test split (the same rows when both were trained on the same data
    and seed).

    Raises:
        DataError: no usable frame, or columns missing.
    """
    models = [challenger] + ([champion] if champion else [])
    if given is not None:
        missing = _missing(given, models)
        if missing:
            raise DataError(f"evaluation data lacks columns: {', '.join(missing)}")
        data = given
    else:
        data = _default_eval_data(client, challenger)
        missing = _missing(data, models)
        if missing and champion is not None:
            logger.info("challenger's test split lacks %s; using the champion's", missing)
            data = _default_eval_data(client, champion)
            missing = _missing(data, models)
        if missing:
            raise DataError(
                f"the default evaluation data lack columns {', '.join(missing)}; "
                "give evaluation data with every column both models use"
            )
    cols = list(dict.fromkeys(c for m in models for c in m.inputs if c in data.columns))
    if not cols:
        cols = [c for c in data.columns if c != challenger.target]
    frame = data[[*cols, challenger.target]].dropna(subset=[challenger.target])
    # Raw tables hold integers where the signature (inferred from prepared features) says
    # double, and MLflow's schema enforcement refuses int64 → float64; cast as training did.
    floats = {
        c for m in models for c, t in m.inputs.items() if t in ("double", "float") and c in cols
    }
    frame = frame.astype({c: "float64" for c in floats if frame[c].dtype.kind in "iub"})
    if frame.empty:
        raise DataError("evaluation data have no labelled rows")
    return frame.reset_index(drop=True)


def _score(
    client: Any, facts: ModelFacts, data: pd.DataFrame, role: str, allow_pickle: bool = False
) -> dict[str, float]:
    """Evaluate one model in a nested run; returns its metrics plus latency per row.

    Raises:
        UntrustedModel: the trust policy refused the model (nothing of it was loaded).
    """
    # The copy lives as long as the evaluation (a pyfunc may read its files lazily).
    with tempfile.TemporaryDirectory(prefix="mlcycle-gate-") as dst:
        model = trust.load_pyfunc(
            facts.download_uri, f"{role} v{facts.version}", allow_pickle=allow_pickle, dst=dst
        )
        return _evaluate(client, model, facts, data, role)


def _evaluator_config(facts: ModelFacts, data: pd.DataFrame) -> dict[str, Any]:
    config: dict[str, Any] = {"log_model_explainability": False}
    if facts.pos_label is not None and facts.task == "classification":
        # The tag is text; MLflow compares the label with the target's own values.
        for value in pd.unique(data[facts.target]):
            if str(value) == facts.pos_label:
                config["pos_label"] = value
    return config


def _evaluate(
    client: Any, model: Any, facts: ModelFacts, data: pd.DataFrame, role: str
) -> dict[str, float]:
    import mlflow

    # Each model sees only its own inputs (the frame holds the union of both models').
    names = [c for c in facts.inputs if c in data.columns] or [
        c for c in data.columns if c != facts.target
    ]
    features = data[names]
    model.predict(features.head(5))  # warm-up: first calls pay for lazy imports
    start = time.perf_counter()
    model.predict(features)
    latency = (time.perf_counter() - start) * 1000 / max(len(features), 1)
    # Nested in the gate's audit run, in its experiment (see mlcycle.fluent).
    with fluent.start_run(client, run_name=f"{role} v{facts.version}", nested=True):
        mlflow.set_tags({MLCYCLE_GATE_ROLE: role, MLCYCLE_GATE_VERSION: facts.version})
        result = mlflow.models.evaluate(
            model,
            data,
            targets=facts.target,
            feature_names=names,
            model_type="classifier" if facts.task == "classification" else "regressor",
            evaluators=["default"],
            evaluator_config={"default": _evaluator_config(facts, data)},
        )
        mlflow.log_metric(LATENCY, latency)
    metrics = {
        k: float(v)
        for k, v in result.metrics.items()
        if isinstance(v, int | float) or hasattr(v, "__float__")
    }
    metrics[LATENCY] = latency
    return metrics


def _judge(
    policy: GatePolicy,
    metric: str,
    challenger: dict[str, float],
    champion: dict[str, float],
) -> list[str]:
    """Failed thresholds as sentences; empty means the challenger passes."""
    key = EVALUATE_NAMES.get(metric, metric)
    higher = HIGHER_IS_BETTER.get(metric, HIGHER_IS_BETTER.get(key, True))
    value = challenger.get(key)
    if value is None or math.isnan(value):
        return [f"challenger has no {metric}"]
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
    key = EVALUATE_NAMES.get(metric, metric)
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
    metric = policy.metric or DEFAULT_METRIC.get(challenger.task, "roc_auc")
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
    data = _eval_frame(client, challenger, champion, eval_data)

    parent = audit.record(
        client,
        name,
        "gate",
        to_version=challenger.version,
        from_version=champ_v,
        tags={MLCYCLE_GATE_MODE: policy.mode, MLCYCLE_GATE_METRIC: metric},
        settings=settings,
    )
    # MLflow's evaluate logs to the fluent active run: the audit run, resumed.
    with fluent.start_run(client, run_id=parent, nested=True):
        challenger_metrics = _score(client, challenger, data, "challenger", policy.allow_pickle)
        champion_metrics = (
            _score(client, champion, data, "champion", policy.allow_pickle) if champion else {}
        )
        reasons = _judge(policy, metric, challenger_metrics, champion_metrics) + reasons
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
        key = EVALUATE_NAMES.get(metric, metric)
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
