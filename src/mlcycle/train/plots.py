"""The PNG plots of a training run.

API: :func:`make_plots`.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas directly, not through
``pyplot``: no global figure registry (the plots are drawn in a worker thread beside the
model logging, and pyplot is not thread-safe) and no backend selection. Margins are set from
the longest tick label instead of ``tight_layout``, which draws every figure once more just
to measure its text (a third of the plotting time).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlcycle.data import Task
from mlcycle.train.evaluate import Predictions

DPI = 90
#: Width of one character of tick text, as a share of the font size (a generous average).
_CHAR_WIDTH = 0.62
_FONT_PT = 10.0
#: Importance bars drawn (the largest).
TOP_FEATURES = 20
#: Points drawn in a regression scatter (a seeded sample of the test split above this).
MAX_SCATTER_POINTS = 5_000


def _figure(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _label_points(labels: Sequence[object]) -> float:
    """Width in points of the longest of ``labels`` in tick text (an upper estimate)."""
    longest = max((len(str(label)) for label in labels), default=1)
    return longest * _FONT_PT * _CHAR_WIDTH


def _left_margin(fig: Any, labels: Sequence[object], minimum: float = 0.14) -> float:
    """Share of the figure's width the y tick labels and the axis label need."""
    points = _label_points(labels) + 2.2 * _FONT_PT
    return float(min(0.6, max(minimum, points / (fig.get_figwidth() * 72))))


def _save(fig: Any, path: Path, left: float = 0.16, bottom: float = 0.13, top: float = 0.9) -> Path:
    fig.subplots_adjust(left=left, bottom=bottom, right=0.96, top=top)
    fig.savefig(path, dpi=DPI)
    return path


def _classification(p: Predictions, out_dir: Path) -> list[Path]:
    labels = p.classes if p.classes is not None else np.unique(p.y_true)
    cm = skm.confusion_matrix(p.y_true, p.y_pred, labels=labels)
    # Long class names: a larger figure, x labels turned 45° with room below them.
    label_pts = _label_points(list(labels))
    size = 4.5 + max(0.0, label_pts - 40) / 72
    rotation = 45.0 if label_pts > 60 else 0.0
    fig, ax = _figure(size, size - 0.5)
    skm.ConfusionMatrixDisplay(cm, display_labels=labels).plot(
        ax=ax, colorbar=False, xticks_rotation=rotation
    )
    ax.set_title("Confusion matrix (test)")
    below = 2.8 * _FONT_PT + (label_pts * 0.71 if rotation else 0.0)
    paths = [
        _save(
            fig,
            out_dir / "confusion_matrix.png",
            left=_left_margin(fig, list(labels), 0.16),
            bottom=below / ((size - 0.5) * 72),
        )
    ]
    if p.proba is not None and p.classes is not None:
        fig, ax = _figure(4.5, 4)
        multi = len(p.classes) > 2
        for i, cls in enumerate(p.classes if multi else p.classes[1:]):
            fpr, tpr, _ = skm.roc_curve(p.y_true == cls, p.proba[:, i if multi else 1])
            ax.plot(fpr, tpr, label=f"{cls} (AUC {skm.auc(fpr, tpr):.3f})")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_xlabel("False positive rate")
        ax.set_ylabel("True positive rate")
        ax.set_title("ROC (test)")
        ax.legend(loc="lower right", fontsize=8)
        paths.append(_save(fig, out_dir / "roc_curve.png"))
    return paths


def _regression(p: Predictions, out_dir: Path) -> list[Path]:
    y_true, y_pred = np.asarray(p.y_true, dtype=float), np.asarray(p.y_pred, dtype=float)
    lo, hi = float(np.min(y_true)), float(np.max(y_true))
    if len(y_true) > MAX_SCATTER_POINTS:
        # Past a few thousand points a scatter shows the same cloud and only costs drawing.
        keep = np.random.default_rng(0).choice(len(y_true), MAX_SCATTER_POINTS, replace=False)
        y_true, y_pred = y_true[keep], y_pred[keep]
    fig, ax = _figure(4.5, 4)
    ax.scatter(y_pred, y_true - y_pred, s=4, alpha=0.4)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Residual")
    ax.set_title("Residuals (test)")
    paths = [_save(fig, out_dir / "residuals.png", left=0.18)]
    fig, ax = _figure(4.5, 4)
    ax.scatter(y_true, y_pred, s=4, alpha=0.4)
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("Actual")
    ax.set_ylabel("Predicted")
    ax.set_title("Predicted vs actual (test)")
    paths.append(_save(fig, out_dir / "predicted_vs_actual.png", left=0.18))
    return paths


def _importance(importances: pd.Series, out_dir: Path) -> Path:
    top = importances.sort_values().tail(TOP_FEATURES)
    names = top.index.astype(str)
    height = 0.3 * len(top) + 1.2
    # Wider for long feature names, so that the bars keep ~250 points and the label fits.
    fig, ax = _figure(max(5.0, (_label_points(list(names)) + 2.2 * _FONT_PT + 260) / 72), height)
    ax.barh(names, top.to_numpy())
    ax.set_xlabel("Permutation importance (validation)")
    ax.set_title("Feature importance")
    # Title and x label take a fixed height in inches, whatever the number of bars.
    return _save(
        fig,
        out_dir / "feature_importance.png",
        left=_left_margin(fig, list(names)),
        bottom=0.6 / height,
        top=1 - 0.35 / height,
    )


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
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = _classification(p, out_dir) if task == "classification" else _regression(p, out_dir)
    if importances is not None and len(importances):
        paths.append(_importance(importances, out_dir))
    return paths
