"""Metrics per split and the PNG plots of a training run.

API: :func:`predict_all`, :func:`compute_metrics`, :func:`primary_metric`, :func:`make_plots`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

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


def make_plots(
    task: Task,
    p: Predictions,
    importances: pd.Series | None,
    out_dir: Path,
) -> list[Path]:
    """Write the run's PNG plots into ``out_dir`` and return their paths.

    Classification: confusion matrix and ROC curve(s); regression: residuals and
    predicted-vs-actual; both: feature importance when given.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []

    def save(fig: object, name: str) -> None:
        path = out_dir / name
        fig.tight_layout()  # type: ignore[attr-defined]
        fig.savefig(path, dpi=90)  # type: ignore[attr-defined]
        plt.close(fig)  # type: ignore[arg-type]
        paths.append(path)

    if task == "classification":
        labels = p.classes if p.classes is not None else np.unique(p.y_true)
        cm = skm.confusion_matrix(p.y_true, p.y_pred, labels=labels)
        fig, ax = plt.subplots(figsize=(4.5, 4))
        skm.ConfusionMatrixDisplay(cm, display_labels=labels).plot(ax=ax, colorbar=False)
        ax.set_title("Confusion matrix (test)")
        save(fig, "confusion_matrix.png")
        if p.proba is not None and p.classes is not None:
            fig, ax = plt.subplots(figsize=(4.5, 4))
            for i, cls in enumerate(p.classes if len(p.classes) > 2 else p.classes[1:]):
                col = i if len(p.classes) > 2 else 1
                fpr, tpr, _ = skm.roc_curve(p.y_true == cls, p.proba[:, col])
                ax.plot(fpr, tpr, label=f"{cls} (AUC {skm.auc(fpr, tpr):.3f})")
            ax.plot([0, 1], [0, 1], "k--", lw=0.8)
            ax.set_xlabel("False positive rate")
            ax.set_ylabel("True positive rate")
            ax.set_title("ROC (test)")
            ax.legend(loc="lower right", fontsize=8)
            save(fig, "roc_curve.png")
    else:
        resid = p.y_true - p.y_pred
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.scatter(p.y_pred, resid, s=4, alpha=0.4)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("Predicted")
        ax.set_ylabel("Residual")
        ax.set_title("Residuals (test)")
        save(fig, "residuals.png")
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.scatter(p.y_true, p.y_pred, s=4, alpha=0.4)
        lo, hi = float(np.min(p.y_true)), float(np.max(p.y_true))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel("Actual")
        ax.set_ylabel("Predicted")
        ax.set_title("Predicted vs actual (test)")
        save(fig, "predicted_vs_actual.png")
    if importances is not None and len(importances):
        top = importances.sort_values().tail(20)
        fig, ax = plt.subplots(figsize=(5, 0.3 * len(top) + 1.2))
        ax.barh(top.index.astype(str), top.to_numpy())
        ax.set_xlabel("Permutation importance (validation)")
        ax.set_title("Feature importance")
        save(fig, "feature_importance.png")
    return paths


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
