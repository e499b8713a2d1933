"""Predictions and metrics per split, and permutation importance.

API: :func:`predict_all`, :func:`compute_metrics`, :func:`primary_metric`,
:func:`permutation_importances`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from mlcycle.data import Task

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Predictions:
    """Predictions of one split: labels/values and, for classifiers, class probabilities."""

    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray | None
    classes: np.ndarray | None


def predict_all(pipe: Pipeline, X: pd.DataFrame, y: pd.Series, task: Task) -> Predictions:
    """Predict one split (probabilities too for classifiers)."""
    if task == "classification" and hasattr(pipe, "predict_proba"):
        # One pass: these estimators' predict() is classes_[argmax(predict_proba)] (first
        # class wins ties), so the labels need no second traversal of the model.
        proba = np.asarray(pipe.predict_proba(X))
        classes = np.asarray(pipe.classes_)
        return Predictions(np.asarray(y), classes[np.argmax(proba, axis=1)], proba, classes)
    return Predictions(np.asarray(y), np.asarray(pipe.predict(X)), None, None)


def compute_metrics(task: Task, p: Predictions, prefix: str) -> dict[str, float]:
    """Classification: accuracy, F1, ROC AUC, log loss; regression: RMSE, MAE, R²."""
    out: dict[str, float] = {}
    if task == "classification":
        binary = p.classes is not None and len(p.classes) == 2
        out["accuracy"] = skm.accuracy_score(p.y_true, p.y_pred)
        if binary:
            assert p.classes is not None
            out["f1"] = skm.f1_score(p.y_true, p.y_pred, pos_label=p.classes[1])
        else:
            out["f1"] = skm.f1_score(p.y_true, p.y_pred, average="macro")
        if p.proba is not None and p.classes is not None:
            present = np.unique(p.y_true)
            if len(present) == len(p.classes):
                if binary:
                    out["roc_auc"] = skm.roc_auc_score(p.y_true == p.classes[1], p.proba[:, 1])
                else:
                    out["roc_auc"] = skm.roc_auc_score(
                        p.y_true, p.proba, multi_class="ovr", labels=p.classes
                    )
            out["log_loss"] = skm.log_loss(p.y_true, p.proba, labels=p.classes)
    else:
        out["rmse"] = float(np.sqrt(skm.mean_squared_error(p.y_true, p.y_pred)))
        out["mae"] = skm.mean_absolute_error(p.y_true, p.y_pred)
        out["r2"] = skm.r2_score(p.y_true, p.y_pred)
    return {f"{prefix}{k}": float(v) for k, v in out.items()}


def primary_metric(task: Task) -> tuple[str, bool]:
    """The metric (without split prefix) that ranks trials, and whether higher is better."""
    return ("roc_auc", True) if task == "classification" else ("rmse", False)


def permutation_importances(
    pipe: Pipeline,
    X: pd.DataFrame,
    y: pd.Series,
    seed: int,
    max_rows: int = 1000,
    n_repeats: int = 2,
) -> pd.Series:
    """Permutation importance of each input column on a bounded sample.

    The same quantity as ``sklearn.inspection.permutation_importance`` with the estimator's
    default score (accuracy or R²), but every permuted copy is stacked into one frame and
    predicted in a single call: one model traversal instead of ``columns × repeats + 1``,
    which matters for boosted models whose per-call overhead dominates small batches.
    """
    if len(X) > max_rows:
        X = X.sample(max_rows, random_state=seed)
        y = y.loc[X.index]
    X = X.reset_index(drop=True)
    y_true = np.asarray(y)
    rng = np.random.default_rng(seed)
    blocks = [X]
    for col in X.columns:
        for _ in range(n_repeats):
            shuffled = X.copy()
            shuffled[col] = X[col].to_numpy()[rng.permutation(len(X))]
            blocks.append(shuffled)
    pred = np.asarray(pipe.predict(pd.concat(blocks, ignore_index=True))).reshape(
        len(blocks), len(X)
    )

    def score(p: np.ndarray) -> float:
        if is_classifier(pipe):
            return float(np.mean(p == y_true))
        return float(skm.r2_score(y_true, p))

    base = score(pred[0])
    drops = [base - score(p) for p in pred[1:]]
    per_col = np.asarray(drops).reshape(len(X.columns), n_repeats).mean(axis=1)
    return pd.Series(per_col, index=X.columns)
