"""The gate's scoring: the one frame both models see, each evaluated in a nested run.

API: :func:`eval_frame`, :func:`score`, :data:`LATENCY`.

Scoring uses ``mlflow.models.evaluate`` (the default evaluator, explainability off); the
model is loaded through the trust policy (:func:`mlcycle.trust.load_pyfunc`) into a
temporary copy that lives as long as the evaluation.
"""

from __future__ import annotations

import logging
import tempfile
import time
from typing import Any

import pandas as pd

from mlcycle import contract, fluent, trust
from mlcycle.errors import DataError
from mlcycle.register.facts import ModelFacts
from mlcycle.tags import MLCYCLE_GATE_ROLE, MLCYCLE_GATE_VERSION

logger = logging.getLogger(__name__)

#: The metric holding each model's prediction latency, per row.
LATENCY = "latency_ms_per_row"


def _default_eval_data(client: Any, facts: ModelFacts) -> pd.DataFrame:
    return contract.load_eval_split(client, facts.run_id, f"version {facts.version}")


def _missing(data: pd.DataFrame, models: list[ModelFacts]) -> list[str]:
    needed = dict.fromkeys(c for m in models for c in (*m.required, m.target))
    return [c for c in needed if c not in data.columns]


def eval_frame(
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


def score(
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
