"""Quality metrics of a labelled window, and how far they fell from the reference's.

API: :func:`quality_metrics`, :func:`quality_drop`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlcycle.monitoring.sanitise import class_labels


def quality_metrics(
    task: str, y_true: pd.Series, y_pred: pd.Series, classes: tuple[str, ...]
) -> dict[str, float]:
    """Accuracy and F1 (classification) or RMSE, MAE and R² (regression)."""
    from sklearn import metrics as skm

    if task == "classification":
        t = class_labels(y_true).to_numpy(dtype=object)
        p = class_labels(y_pred).to_numpy(dtype=object)
        labels = sorted(set(classes) | set(t) | set(p))
        out = {"accuracy": float(skm.accuracy_score(t, p))}
        if len(labels) == 2:
            out["f1"] = float(skm.f1_score(t, p, pos_label=labels[1]))
        else:
            out["f1"] = float(skm.f1_score(t, p, average="macro"))
        return out
    t = pd.to_numeric(y_true, errors="coerce").to_numpy(dtype=float)
    p = pd.to_numeric(y_pred, errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(t, p))),
        "mae": float(skm.mean_absolute_error(t, p)),
        "r2": float(skm.r2_score(t, p)) if len(t) > 1 else float("nan"),
    }


def quality_drop(task: str, cur: dict[str, float], ref: dict[str, float]) -> float | None:
    """Accuracy lost (classification) or relative RMSE gained (regression); positive is worse."""
    if task == "classification" and "accuracy" in cur and "accuracy" in ref:
        return ref["accuracy"] - cur["accuracy"]
    if task == "regression" and "rmse" in cur and ref.get("rmse"):
        return (cur["rmse"] - ref["rmse"]) / ref["rmse"]
    return None
