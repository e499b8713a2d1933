"""Predictions of each split, and permutation importance.

API: :func:`predict_all`, :func:`permutation_importances`. What those predictions score is
:mod:`mlcycle.model_metrics` (the gate scores with the same code); ``Predictions`` is
re-exported from there for the plots.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from mlcycle.data import Task
from mlcycle.model_metrics import Predictions

__all__ = ["Predictions", "permutation_importances", "predict_all"]

logger = logging.getLogger(__name__)


def predict_all(pipe: Pipeline, X: pd.DataFrame, y: pd.Series, task: Task) -> Predictions:
    """Predict one split (probabilities too for classifiers)."""
    if task == "classification" and hasattr(pipe, "predict_proba"):
        # One pass: these estimators' predict() is classes_[argmax(predict_proba)] (first
        # class wins ties), so the labels need no second traversal of the model.
        proba = np.asarray(pipe.predict_proba(X))
        classes = np.asarray(pipe.classes_)
        return Predictions(np.asarray(y), classes[np.argmax(proba, axis=1)], proba, classes)
    return Predictions(np.asarray(y), np.asarray(pipe.predict(X)), None, None)


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
