"""Model metrics: the one owner of what a model's predictions score, for training and the gate.

API: :class:`Predictions`, :func:`compute_metrics`, :func:`why_missing`,
:func:`primary_metric`, :func:`canonical_metric`, :data:`METRICS`, :data:`HIGHER_IS_BETTER`,
:data:`LEGACY_NAMES`.

Training logs these numbers with split prefixes (``test_roc_auc``); the champion/challenger
gate scores both models with the same function, so a gate threshold means what the training
run showed. Names are mlcycle's (``rmse``, not ``root_mean_squared_error``); the names
``mlflow.models.evaluate`` reports, which earlier gates recorded, are accepted as aliases.
This module imports numpy (scikit-learn when it computes; no MLflow, no plotting), so the
CLI can check a metric name without loading either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: The metrics of each task, in the order they are reported.
METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "f1", "precision", "recall", "roc_auc", "log_loss"),
    "regression": ("rmse", "mae", "mse", "r2"),
}
#: Classification metrics that need class probabilities, not just labels.
PROBABILITY_METRICS = ("roc_auc", "log_loss")
#: Whether a higher value is better, for every metric of :data:`METRICS`.
HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "f1": True,
    "precision": True,
    "recall": True,
    "roc_auc": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
    "mse": False,
    "r2": True,
}
#: The names ``mlflow.models.evaluate`` reports → mlcycle's.
LEGACY_NAMES = {
    "accuracy_score": "accuracy",
    "f1_score": "f1",
    "precision_score": "precision",
    "recall_score": "recall",
    "root_mean_squared_error": "rmse",
    "mean_absolute_error": "mae",
    "mean_squared_error": "mse",
    "r2_score": "r2",
}


@dataclass(frozen=True)
class Predictions:
    """Predictions of one split: labels/values and, for classifiers, class probabilities.

    ``classes`` names the columns of ``proba`` (``None`` when there are no probabilities).
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray | None
    classes: np.ndarray | None


def canonical_metric(name: str) -> str:
    """mlcycle's name for ``name`` (``root_mean_squared_error`` → ``rmse``); others unchanged."""
    return LEGACY_NAMES.get(name, name)


def primary_metric(task: str) -> tuple[str, bool]:
    """The metric (without split prefix) that ranks trials, and whether higher is better."""
    return ("roc_auc", True) if task == "classification" else ("rmse", False)


def _labels(p: Predictions) -> np.ndarray:
    """Every class the metrics consider: the model's, else those seen in truth or prediction."""
    if p.classes is not None:
        return np.asarray(p.classes)
    return np.unique(np.concatenate([np.asarray(p.y_true), np.asarray(p.y_pred)]))


def _positive(labels: np.ndarray, pos_label: Any) -> Any:
    # The contract's label when it is a class, else the second class in sorted order (what
    # sklearn's classes_ and MLflow's evaluator take).
    if pos_label is not None:
        for value in labels:
            if value == pos_label or str(value) == str(pos_label):
                return value
    return labels[1] if len(labels) > 1 else labels[0]


def _proba_usable(p: Predictions) -> bool:
    if p.proba is None or p.classes is None:
        return False
    return bool(np.isin(np.unique(p.y_true), p.classes).all())


def compute_metrics(
    task: str, p: Predictions, prefix: str = "", pos_label: Any = None
) -> dict[str, float]:
    """Classification: accuracy, F1, precision, recall, ROC AUC, log loss; regression: RMSE,
    MAE, MSE, R².

    A binary classifier's F1, precision, recall and ROC AUC are those of ``pos_label`` (the
    second class when ``None``); a multiclass one's are macro averages (ROC AUC one-vs-rest).
    ROC AUC and log loss need probabilities whose classes cover every true label, ROC AUC
    also every class present; :func:`why_missing` says why one is absent.
    """
    from sklearn import metrics as skm

    out: dict[str, float] = {}
    if task == "classification":
        labels = _labels(p)
        # Binary only when the data hold no label beyond the two (else sklearn refuses).
        binary = len(labels) == 2 and bool(
            np.isin(p.y_true, labels).all() and np.isin(p.y_pred, labels).all()
        )
        out["accuracy"] = skm.accuracy_score(p.y_true, p.y_pred)
        # One call for the three: f1_score, precision_score and recall_score each run this
        # function (and its confusion matrix) and keep one of its numbers.
        if binary:
            pos = _positive(labels, pos_label)
            prf = skm.precision_recall_fscore_support(
                p.y_true, p.y_pred, pos_label=pos, average="binary", zero_division=0
            )
        else:
            prf = skm.precision_recall_fscore_support(
                p.y_true, p.y_pred, average="macro", zero_division=0
            )
        out["f1"], out["precision"], out["recall"] = prf[2], prf[0], prf[1]
        if _proba_usable(p):
            assert p.proba is not None and p.classes is not None
            if len(np.unique(p.y_true)) == len(p.classes):
                if len(p.classes) == 2:
                    col = list(p.classes).index(_positive(p.classes, pos_label))
                    out["roc_auc"] = skm.roc_auc_score(p.y_true == p.classes[col], p.proba[:, col])
                else:
                    out["roc_auc"] = skm.roc_auc_score(
                        p.y_true, p.proba, multi_class="ovr", labels=p.classes
                    )
            out["log_loss"] = skm.log_loss(p.y_true, p.proba, labels=p.classes)
    else:
        mse = skm.mean_squared_error(p.y_true, p.y_pred)
        out["rmse"] = float(np.sqrt(mse))
        out["mae"] = skm.mean_absolute_error(p.y_true, p.y_pred)
        out["mse"] = mse
        out["r2"] = skm.r2_score(p.y_true, p.y_pred)
    return {f"{prefix}{k}": float(v) for k, v in out.items()}


def why_missing(task: str, p: Predictions | None, name: str) -> str:
    """Why :func:`compute_metrics` gives no ``name`` for these predictions, as a clause."""
    name = canonical_metric(name)
    if name not in HIGHER_IS_BETTER:
        return f"not a metric mlcycle computes ({', '.join(HIGHER_IS_BETTER)})"
    if task in METRICS and name not in METRICS[task]:
        return f"not a metric of {task} ({', '.join(METRICS[task])})"
    if name in PROBABILITY_METRICS and p is not None:
        if p.proba is None:
            return (
                "it needs class probabilities and the model returns labels only; "
                "gate on accuracy, f1, precision or recall"
            )
        if not _proba_usable(p):
            return "the evaluation data hold labels that are not classes of the model"
        if name == "roc_auc":
            return "the evaluation data lack some of the model's classes"
    return "it could not be computed"
