"""The gate's scoring: the one frame both models see, each scored in a nested run.

API: :func:`eval_frame`, :func:`score`, :data:`LATENCY`.

The model is loaded through the trust policy (:func:`mlcycle.trust.load_pyfunc`) into a
temporary copy that lives as long as the scoring. Its labels come from the pyfunc's
``predict`` (the call whose time is the latency), its class probabilities from
:func:`mlcycle.proba.class_probabilities`, and the metrics from
:func:`mlcycle.model_metrics.compute_metrics`, the code training scores with: a gate
threshold means what the training run showed. A model that gives no probabilities is scored
on its labels; the metrics it lacks are named with the reason (:func:`score`).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd

from mlcycle import contract, fluent, trust
from mlcycle.errors import DataError
from mlcycle.model_metrics import METRICS, Predictions, compute_metrics, why_missing
from mlcycle.proba import class_probabilities
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
) -> tuple[dict[str, float], dict[str, str]]:
    """Score one model in a nested run: its metrics plus latency per row, and why each
    metric of its task that could not be computed is missing (``{"roc_auc": "..."}``).

    Raises:
        UntrustedModel: the trust policy refused the model (nothing of it was loaded).
    """
    # The copy lives as long as the scoring (a pyfunc may read its files lazily).
    with tempfile.TemporaryDirectory(prefix="mlcycle-gate-") as dst:
        model = trust.load_pyfunc(
            facts.download_uri, f"{role} v{facts.version}", allow_pickle=allow_pickle, dst=dst
        )
        return _score_loaded(client, model, facts, data, role)


def _as_labels(out: Any) -> np.ndarray:
    """A pyfunc's ``predict`` output as one value per row (a one-column frame too)."""
    if isinstance(out, pd.DataFrame):
        out = out.iloc[:, 0]
    return np.asarray(out).ravel()


def _predictions(
    model: Any, facts: ModelFacts, features: pd.DataFrame, y_true: pd.Series, labels: Any
) -> Predictions:
    """``labels`` (the model's ``predict`` of ``features``) with, for a classifier, the class
    probabilities when the model gives them (see :mod:`mlcycle.proba`)."""
    y = np.asarray(y_true)
    pred = _as_labels(labels)
    if facts.task != "classification":
        return Predictions(y, pred.astype(np.float64), None, None)
    found = class_probabilities(model, features)
    if found is None:
        return Predictions(y, pred, None, None)
    proba, classes = found
    # A PythonModel's frame names its columns as text; compare with the target's own values.
    by_text = {str(v): v for v in pd.unique(y_true)}
    if not np.isin(classes, y).any() and all(str(c) in by_text for c in classes):
        classes = np.asarray([by_text[str(c)] for c in classes])
    return Predictions(y, pred, proba, classes)


def _score_loaded(
    client: Any, model: Any, facts: ModelFacts, data: pd.DataFrame, role: str
) -> tuple[dict[str, float], dict[str, str]]:
    import mlflow

    # Each model sees only its own inputs (the frame holds the union of both models').
    names = [c for c in facts.inputs if c in data.columns] or [
        c for c in data.columns if c != facts.target
    ]
    features = data[names]
    model.predict(features.head(5))  # warm-up: first calls pay for lazy imports
    start = time.perf_counter()
    labels = model.predict(features)
    latency = (time.perf_counter() - start) * 1000 / max(len(features), 1)
    p = _predictions(model, facts, features, data[facts.target], labels)
    metrics = compute_metrics(facts.task, p, pos_label=facts.pos_label)
    missing = {
        m: why_missing(facts.task, p, m) for m in METRICS.get(facts.task, ()) if m not in metrics
    }
    metrics[LATENCY] = latency
    # Nested in the gate's audit run, in its experiment (see mlcycle.fluent); the MLflow UI
    # shows each model's numbers there.
    with fluent.start_run(client, run_name=f"{role} v{facts.version}", nested=True):
        mlflow.set_tags({MLCYCLE_GATE_ROLE: role, MLCYCLE_GATE_VERSION: facts.version})
        mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
    return metrics, missing
