"""The SVG training plots: what they draw, escaping of user labels, bounds, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer

from mlcycle.train import plots, svg
from mlcycle.train.evaluate import Predictions

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = ["<script>alert(1)</script>", "Tom & Jerry", 'say "hi"', "it's", "nul\x00bell\x07"]


def _parse(path_or_text: Path | str) -> ET.Element:
    text = path_or_text.read_text("utf-8") if isinstance(path_or_text, Path) else path_or_text
    return ET.fromstring(text)


def _texts(root: ET.Element) -> list[str]:
    """The visible text of every <text> element (tooltips in <title> left out)."""
    return [(el.text or "") + "".join((c.tail or "") for c in el) for el in root.iter(f"{NS}text")]


def _tags(root: ET.Element) -> set[str]:
    return {el.tag.removeprefix(NS) for el in root.iter()}


def _classification(labels: list[object], n: int = 600, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    classes = np.asarray(labels)
    y = rng.integers(0, len(classes), n)
    proba = rng.dirichlet(np.ones(len(classes)), n)
    proba[np.arange(n), y] += 0.4
    proba /= proba.sum(axis=1, keepdims=True)
    return Predictions(classes[y], classes[proba.argmax(axis=1)], proba, classes)


def test_markup_in_class_labels_and_column_names_is_written_as_text(tmp_path: Path) -> None:
    p = _classification(HOSTILE)
    imp = pd.Series([0.3, 0.2, 0.1, 0.05, 0.01], index=HOSTILE)
    paths = plots.make_plots("classification", p, imp, tmp_path)
    assert sorted(path.name for path in paths) == [
        "confusion_matrix.svg",
        "feature_importance.svg",
        "roc_curve.svg",
    ]
    expected = [
        "<script>alert(1)</script>",
        "Tom & Jerry",
        'say "hi"',
        "it's",
        "nul\ufffdbell\ufffd",
    ]
    for path in paths:
        raw = path.read_text("utf-8")
        root = _parse(raw)  # well formed despite the labels
        assert "<script" not in raw and "\x00" not in raw
        assert _tags(root) <= {"svg", "rect", "text", "title", "line", "polyline", "g", "circle"}
        shown = " ".join(_texts(root))
        for label in expected:
            assert label in shown, (path.name, label)


def test_the_confusion_matrix_writes_every_count_and_the_axis_names(tmp_path: Path) -> None:
    p = _classification(["no", "yes"], n=500)
    (path,) = [
        x for x in plots.make_plots("classification", p, None, tmp_path) if "confusion" in x.name
    ]
    texts = _texts(_parse(path))
    cm = skm.confusion_matrix(p.y_true, p.y_pred, labels=p.classes)
    for count in cm.ravel():
        assert str(count) in texts
    assert {"Confusion matrix (test)", "Predicted label", "True label", "no", "yes"} <= set(texts)
    # The largest count has the darkest cell.
    fills = [
        el.get("fill") for el in _parse(path).iter(f"{NS}rect") if el.find(f"{NS}title") is not None
    ]
    assert fills[int(np.argmax(cm.ravel()))] == "#08306b"


def test_the_roc_legend_carries_the_auc_sklearn_computes(tmp_path: Path) -> None:
    p = _classification([0, 1], n=400)
    plots.make_plots("classification", p, None, tmp_path)
    root = _parse(tmp_path / "roc_curve.svg")
    texts = _texts(root)
    auc = skm.roc_auc_score(p.y_true == 1, p.proba[:, 1])  # type: ignore[index]
    assert f"1 (AUC {auc:.3f})" in texts
    assert {"ROC curve (test)", "False positive rate", "True positive rate"} <= set(texts)
    assert len(list(root.iter(f"{NS}polyline"))) == 1


def test_a_multiclass_roc_has_a_curve_per_class_and_notes_a_class_absent_from_test(
    tmp_path: Path,
) -> None:
    p = _classification(["a", "b", "c", "d"], n=300)
    # No "d" in the test labels: its curve is undefined, said in the legend.
    y_true = np.where(p.y_true == "d", "a", p.y_true)
    plots.make_plots(
        "classification", Predictions(y_true, p.y_pred, p.proba, p.classes), None, tmp_path
    )
    root = _parse(tmp_path / "roc_curve.svg")
    assert len(list(root.iter(f"{NS}polyline"))) == 3
    assert "d (not defined: one class in test)" in _texts(root)


def test_many_classes_draw_only_the_most_frequent_and_say_so(tmp_path: Path) -> None:
    labels = [f"class{i:02d}" for i in range(50)]
    p = _classification(labels, n=3000)
    # class07 is the most frequent: it must be among the drawn classes.
    y_true = np.where(np.isin(p.y_true, labels[40:45]), "class07", p.y_true)
    p = Predictions(y_true, p.y_pred, p.proba, p.classes)
    plots.make_plots("classification", p, None, tmp_path)
    matrix = _parse(tmp_path / "confusion_matrix.svg")
    cells = [el for el in matrix.iter(f"{NS}rect") if el.find(f"{NS}title") is not None]
    assert len(cells) == plots.MAX_MATRIX_CLASSES**2
    assert "Confusion matrix (test, 40 most frequent of 50 classes)" in _texts(matrix)
    roc = _parse(tmp_path / "roc_curve.svg")
    assert len(list(roc.iter(f"{NS}polyline"))) == plots.MAX_ROC_CURVES
    assert "ROC curve (test, 10 most frequent of 50 classes)" in _texts(roc)
    assert any(t.startswith("class07 (AUC") for t in _texts(roc))


def test_regression_scatters_are_bounded_and_the_importance_keeps_the_top_features(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(100, 20, plots.MAX_SCATTER_POINTS * 3)
    p = Predictions(y, y + rng.normal(0, 5, len(y)), None, None)
    imp = pd.Series(np.arange(30, dtype=float) - 3, index=[f"col{i}" for i in range(30)])
    paths = plots.make_plots("regression", p, imp, tmp_path)
    assert [x.name for x in paths] == [
        "residuals.svg",
        "predicted_vs_actual.svg",
        "feature_importance.svg",
    ]
    for name, labels in (
        ("residuals", {"Predicted", "Residual"}),
        ("predicted_vs_actual", {"Actual", "Predicted"}),
    ):
        root = _parse(tmp_path / f"{name}.svg")
        assert len(list(root.iter(f"{NS}circle"))) == plots.MAX_SCATTER_POINTS
        assert labels <= set(_texts(root))
    bars = _texts(_parse(tmp_path / "feature_importance.svg"))
    shown = [t for t in bars if t.startswith("col")]
    assert shown == [f"col{i}" for i in range(29, 29 - plots.TOP_FEATURES, -1)]


def test_the_same_predictions_give_the_same_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(0, 1, 12_000)
    p = Predictions(y, y * 0.9, None, None)
    imp = pd.Series([0.5, -0.1], index=["a", "b"])
    first = [x.read_bytes() for x in plots.make_plots("regression", p, imp, tmp_path / "1")]
    second = [x.read_bytes() for x in plots.make_plots("regression", p, imp, tmp_path / "2")]
    assert first == second


def test_long_labels_are_cut_with_the_whole_label_kept_as_tooltip() -> None:
    long = "x" * 100
    text = plots.confusion_matrix_svg([long, "b"], np.array([[3, 1], [0, 2]]))
    root = _parse(text)
    assert "x" * (plots.MAX_LABEL_CHARS - 1) + "\u2026" in _texts(root)
    assert long in [el.text for el in root.iter(f"{NS}title")]


@pytest.mark.parametrize(
    ("lo", "hi", "labels"),
    [
        (-0.02, 1.02, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]),
        (-130.0, 400.0, ["-100", "0", "100", "200", "300", "400"]),
        (0.0, 10.0, ["0", "2", "4", "6", "8", "10"]),
        (-0.3, 0.1, ["-0.3", "-0.2", "-0.1", "0.0", "0.1"]),
    ],
)
def test_ticks_are_round_values_inside_the_range(lo: float, hi: float, labels: list[str]) -> None:
    ticks = svg.nice_ticks(lo, hi)
    assert all(lo <= t <= hi for t in ticks)
    assert svg.tick_labels(ticks) == labels


_NO_MATPLOTLIB = """
import json, sys
attempts = []
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "matplotlib":
            attempts.append(name)
            raise ImportError("matplotlib is blocked in this test")
sys.meta_path.insert(0, Block())
from click.testing import CliRunner
from mlflow import MlflowClient
from mlcycle.cli import cli
result = CliRunner().invoke(
    cli, ["train", "--data", sys.argv[1], "--target", "target", "--model", "linear"]
)
runs = MlflowClient().search_runs(["1"])
plots = [a.path for a in MlflowClient().list_artifacts(runs[0].info.run_id, "plots")]
print(json.dumps({"exit": result.exit_code, "attempts": attempts, "plots": plots}))
"""


def test_training_draws_and_logs_the_plots_without_matplotlib_importable(tmp_path: Path) -> None:
    data = tmp_path / "cancer.csv"
    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(data, index=False)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'store.db'}"}
    done = subprocess.run(
        [sys.executable, "-c", _NO_MATPLOTLIB, str(data)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["exit"] == 0
    assert out["attempts"] == []
    assert sorted(out["plots"]) == [
        "plots/confusion_matrix.svg",
        "plots/feature_importance.svg",
        "plots/roc_curve.svg",
    ]
