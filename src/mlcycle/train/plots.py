"""The SVG plots of a training run.

API: :func:`make_plots`, and the pure renderers it writes: :func:`confusion_matrix_svg`,
:func:`roc_svg`, :func:`residuals_svg`, :func:`predicted_vs_actual_svg`,
:func:`importance_svg`.

The SVG text is written here (through :mod:`mlcycle.train.svg`), not drawn by a plotting
library: no figure, canvas or font rasteriser to import or run in the worker thread that
draws the plots beside the model logging, and no ~96 MB of matplotlib, fonttools, pillow in
the install. Class labels and column names are user data and are escaped as such; long
ones are cut (the full text is the element's tooltip). Output is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlcycle.data import Task
from mlcycle.train.evaluate import Predictions
from mlcycle.train.svg import (
    Frame,
    Svg,
    clip,
    labels_width,
    nice_ticks,
    num,
    padded,
    text_width,
    tick_labels,
)

#: Importance bars drawn (the largest).
TOP_FEATURES = 20
#: Points drawn in a regression scatter (a seeded sample of the test split above this).
MAX_SCATTER_POINTS = 5_000
#: Points kept of one ROC curve (evenly along it); the AUC uses every point.
MAX_CURVE_POINTS = 1_000
#: Classes in the confusion matrix and ROC curves (the most frequent in the test split).
MAX_MATRIX_CLASSES = 40
MAX_ROC_CURVES = 10
#: Characters of a class label or column name shown (the rest is in the tooltip).
MAX_LABEL_CHARS = 40
#: Size of the x-y plots; the space above (title), below (x axis) and right (half a tick label).
WIDTH, HEIGHT, TOP, BOTTOM, RIGHT = 480.0, 420.0, 40.0, 50.0, 24.0
TICK = 11.0
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
_BLUES = ((247, 251, 255), (107, 174, 214), (8, 48, 107))


def _shade(share: float) -> str:
    """A colour from white-blue (0) to dark blue (1), through a middle blue."""
    lo, hi, t = (
        (_BLUES[0], _BLUES[1], share * 2) if share < 0.5 else (_BLUES[1], _BLUES[2], share * 2 - 1)
    )
    return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(lo, hi, strict=True))


def _title_room(title: str) -> float:
    """Half the width a bold 14 px title needs, with a little air."""
    return text_width(title, 14) * 0.55 + 6


def _frequent(y_true: np.ndarray, labels: np.ndarray, keep: int) -> tuple[np.ndarray, str]:
    """At most ``keep`` of ``labels``, the most frequent in ``y_true`` first kept, in order."""
    if len(labels) <= keep:
        return labels, ""
    counts = np.array([np.sum(y_true == label) for label in labels])
    chosen = np.sort(np.argsort(-counts, kind="stable")[:keep])
    return labels[chosen], f", {keep} most frequent of {len(labels)} classes"


def confusion_matrix_svg(labels: Sequence[object], cm: np.ndarray, note: str = "") -> str:
    """Cells shaded by count with the count written in them; rows true, columns predicted."""
    n = len(labels)
    names = [clip(label, MAX_LABEL_CHARS) for label in labels]
    cell = min(120.0, max(18.0, 300.0 / max(n, 1)))
    widest = labels_width(names, TICK)
    turned = widest > cell - 6
    title = f"Confusion matrix (test{note})"
    left = max(34.0 + widest + 8, widest * 0.71 - cell / 2 + 12)
    area = n * cell
    left = max(left, _title_room(title) - area / 2)
    below = (widest + TICK) * 0.71 + 14 if turned else 22.0
    width = max(left + area + RIGHT, left + area / 2 + _title_room(title))
    svg = Svg(width, TOP + area + below + 30, TICK)
    frame = Frame(left, TOP, area, area, (0.0, 1.0), (0.0, 1.0))
    peak = max(1, int(cm.max(initial=0)))
    for i in range(n):
        for j in range(n):
            count = int(cm[i, j])
            x, y = left + j * cell, TOP + i * cell
            share = count / peak
            tip = f"true {labels[i]}, predicted {labels[j]}: {count}"
            svg.rect(x, y, cell, cell, f'fill="{_shade(share)}"', tip)
            size = min(14.0, (cell - 4) / (0.64 * len(str(count))))
            if size >= 6:
                ink = "#fff" if share > 0.5 else "#000"
                svg.text(x + cell / 2, y + cell / 2 + size * 0.36, count, size=size, fill=ink)
    for k, (name, label) in enumerate(zip(names, labels, strict=True)):
        mid = k * cell + cell / 2
        svg.text(left - 6, TOP + mid + 4, name, anchor="end", tooltip=label)
        if turned:
            svg.text(left + mid + 4, TOP + area + 12, name, anchor="end", rotate=-45, tooltip=label)
        else:
            svg.text(left + mid, TOP + area + 16, name, tooltip=label)
    svg.rect(left, TOP, area, area, 'fill="none" stroke="#333"')
    frame.labels(svg, title, "Predicted label", "True label")
    return svg.render()


def _thin(x: np.ndarray, y: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= keep:
        return x, y
    idx = np.unique(np.linspace(0, len(x) - 1, keep).round().astype(int))
    return x[idx], y[idx]


def roc_svg(
    curves: Sequence[tuple[str, np.ndarray | None, np.ndarray | None]], note: str = ""
) -> str:
    """ROC curves ``(legend text, fpr, tpr)``; a curve without points is only a legend line."""
    left = 35.0 + labels_width(["0.00"], TICK)
    title = f"ROC curve (test{note})"
    plot_w = WIDTH - left - RIGHT
    svg = Svg(max(WIDTH, left + plot_w / 2 + _title_room(title)), HEIGHT, TICK)
    frame = Frame(left, TOP, plot_w, HEIGHT - TOP - BOTTOM, (-0.02, 1.02), (-0.02, 1.02))
    frame.axes(svg, title, "False positive rate", "True positive rate")
    svg.line(frame.x(0), frame.y(0), frame.x(1), frame.y(1), 'stroke="#555" stroke-dasharray="4 3"')
    for k, (_, fpr, tpr) in enumerate(curves):
        if fpr is not None and tpr is not None:
            fx, ty = _thin(fpr, tpr, MAX_CURVE_POINTS)
            points = zip((frame.x(v) for v in fx), (frame.y(v) for v in ty), strict=True)
            svg.polyline(points, f'stroke="{COLORS[k % len(COLORS)]}" stroke-width="1.8"')
    texts = [text for text, _, _ in curves]
    box_w = labels_width(texts, 10) + 36
    box_h = 17 * len(texts) + 8
    x0 = frame.left + frame.width - box_w - 8
    y0 = frame.top + frame.height - box_h - 8
    svg.rect(x0, y0, box_w, box_h, 'fill="#fff" fill-opacity="0.9" stroke="#bbb"')
    for k, text in enumerate(texts):
        y = y0 + 15 + 17 * k
        svg.line(
            x0 + 6, y - 4, x0 + 26, y - 4, f'stroke="{COLORS[k % len(COLORS)]}" stroke-width="2.5"'
        )
        svg.text(x0 + 30, y, text, size=10, anchor="start")
    return svg.render()


def _scatter_svg(
    x: np.ndarray, y: np.ndarray, title: str, x_label: str, y_label: str, *, diagonal: bool
) -> str:
    """Points of ``(x, y)`` with the diagonal ``y = x``, or else a horizontal line at 0."""
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    x_lo, x_hi = (float(x.min()), float(x.max())) if len(x) else (0.0, 1.0)
    y_lo, y_hi = (float(y.min()), float(y.max())) if len(y) else (0.0, 1.0)
    if not diagonal:
        y_lo, y_hi = min(y_lo, 0.0), max(y_hi, 0.0)
    x_dom, y_dom = padded(x_lo, x_hi), padded(y_lo, y_hi)
    left = 35.0 + labels_width(tick_labels(nice_ticks(*y_dom)), TICK)
    svg = Svg(WIDTH, HEIGHT, TICK)
    frame = Frame(left, TOP, WIDTH - left - RIGHT, HEIGHT - TOP - BOTTOM, x_dom, y_dom)
    frame.axes(svg, title, x_label, y_label)
    dots = "".join(
        f'<circle cx="{num(frame.x(a))}" cy="{num(frame.y(b))}" r="2"/>'
        for a, b in zip(x.tolist(), y.tolist(), strict=True)
    )
    svg.add(f'<g fill="#1f77b4" fill-opacity="0.4">{dots}</g>')
    if not diagonal:
        svg.line(frame.left, frame.y(0), frame.left + frame.width, frame.y(0), 'stroke="#000"')
    else:
        lo = max(x_dom[0], y_dom[0])
        hi = min(x_dom[1], y_dom[1])
        style = 'stroke="#000" stroke-dasharray="4 3"'
        svg.line(frame.x(lo), frame.y(lo), frame.x(hi), frame.y(hi), style)
    return svg.render()


def importance_svg(importances: pd.Series) -> str:
    """Horizontal bars of the largest ``TOP_FEATURES`` importances, the largest on top."""
    finite = importances[np.isfinite(importances.to_numpy(dtype=float))]
    top = finite.sort_values(ascending=False, kind="stable").head(TOP_FEATURES)
    labels = [str(c) for c in top.index]
    names = [clip(label, MAX_LABEL_CHARS) for label in labels]
    values = top.to_numpy(dtype=float)
    title = "Feature importance"
    row = 22.0
    left = labels_width(names, TICK) + 16
    plot_w = 300.0
    left = max(left, _title_room(title) - plot_w / 2)
    lo = min(0.0, float(values.min(initial=0.0)))
    hi = max(0.0, float(values.max(initial=0.0)))
    svg = Svg(left + plot_w + RIGHT + 8, TOP + row * max(1, len(values)) + BOTTOM, TICK)
    area_h = row * max(1, len(values))
    frame = Frame(left, TOP, plot_w, area_h, padded(lo, hi), (0.0, 1.0))
    frame.axes(svg, title, "Permutation importance (validation)", "", y_ticks=False)
    for k, (name, label, value) in enumerate(zip(names, labels, values, strict=True)):
        y = TOP + k * row
        x0, x1 = sorted((frame.x(0.0), frame.x(value)))
        svg.rect(x0, y + 4, max(x1 - x0, 0.5), row - 8, 'fill="#1f77b4"', f"{label}: {value:.4g}")
        svg.text(left - 6, y + row / 2 + 4, name, anchor="end", tooltip=label)
    svg.line(frame.x(0.0), TOP, frame.x(0.0), TOP + area_h, 'stroke="#333"')
    return svg.render()


def residuals_svg(y_true: np.ndarray, y_pred: np.ndarray) -> str:
    """Residual (actual − predicted) against the prediction."""
    return _scatter_svg(
        y_pred, y_true - y_pred, "Residuals (test)", "Predicted", "Residual", diagonal=False
    )


def predicted_vs_actual_svg(y_true: np.ndarray, y_pred: np.ndarray) -> str:
    """Prediction against the actual value, with the diagonal of a perfect model."""
    return _scatter_svg(
        y_true, y_pred, "Predicted vs actual (test)", "Actual", "Predicted", diagonal=True
    )


def _roc_curves(
    p: Predictions,
) -> tuple[list[tuple[str, np.ndarray | None, np.ndarray | None]], str]:
    assert p.proba is not None and p.classes is not None
    multi = len(p.classes) > 2
    columns = list(range(len(p.classes))) if multi else [1]
    note = ""
    if multi and len(columns) > MAX_ROC_CURVES:
        kept, note = _frequent(p.y_true, p.classes, MAX_ROC_CURVES)
        columns = [i for i, cls in enumerate(p.classes) if cls in set(kept.tolist())]
    curves: list[tuple[str, np.ndarray | None, np.ndarray | None]] = []
    for i in columns:
        cls = p.classes[i]
        positive = p.y_true == cls
        if positive.all() or not positive.any():
            curves.append((f"{clip(cls, 30)} (not defined: one class in test)", None, None))
            continue
        fpr, tpr, _ = skm.roc_curve(positive, p.proba[:, i])
        curves.append((f"{clip(cls, 30)} (AUC {skm.auc(fpr, tpr):.3f})", fpr, tpr))
    return curves, note


def _classification(p: Predictions, out_dir: Path) -> list[Path]:
    labels = p.classes if p.classes is not None else np.unique(p.y_true)
    labels, note = _frequent(p.y_true, np.asarray(labels), MAX_MATRIX_CLASSES)
    cm = skm.confusion_matrix(p.y_true, p.y_pred, labels=labels)
    paths = [_write(out_dir / "confusion_matrix.svg", confusion_matrix_svg(list(labels), cm, note))]
    if p.proba is not None and p.classes is not None:
        curves, note = _roc_curves(p)
        paths.append(_write(out_dir / "roc_curve.svg", roc_svg(curves, note)))
    return paths


def _regression(p: Predictions, out_dir: Path) -> list[Path]:
    y_true, y_pred = np.asarray(p.y_true, dtype=float), np.asarray(p.y_pred, dtype=float)
    if len(y_true) > MAX_SCATTER_POINTS:
        # Past a few thousand points a scatter shows the same cloud and only costs bytes.
        keep = np.random.default_rng(0).choice(len(y_true), MAX_SCATTER_POINTS, replace=False)
        y_true, y_pred = y_true[keep], y_pred[keep]
    return [
        _write(out_dir / "residuals.svg", residuals_svg(y_true, y_pred)),
        _write(out_dir / "predicted_vs_actual.svg", predicted_vs_actual_svg(y_true, y_pred)),
    ]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def make_plots(
    task: Task,
    p: Predictions,
    importances: pd.Series | None,
    out_dir: Path,
) -> list[Path]:
    """Write the run's SVG plots into ``out_dir`` and return their paths.

    Classification: confusion matrix and ROC curve(s); regression: residuals and
    predicted-vs-actual; both: feature importance when given.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = _classification(p, out_dir) if task == "classification" else _regression(p, out_dir)
    if importances is not None and len(importances):
        paths.append(_write(out_dir / "feature_importance.svg", importance_svg(importances)))
    return paths
