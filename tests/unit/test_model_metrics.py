"""Model metrics (training's and the gate's): sklearn's numbers under mlcycle's names."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlcycle.model_metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    Predictions,
    canonical_metric,
    compute_metrics,
    why_missing,
)

RNG = np.random.default_rng(0)
Y = RNG.integers(0, 2, 200)
P1 = np.clip(Y * 0.3 + RNG.random(200) * 0.7, 0, 1)
PROBA = np.column_stack([1 - P1, P1])
PRED = (P1 > 0.5).astype(int)
CLASSES = np.array([0, 1])


def test_binary_scores_are_sklearns_for_the_second_class_by_default() -> None:
    got = compute_metrics("classification", Predictions(Y, PRED, PROBA, CLASSES), "test_")
    assert got == pytest.approx(
        {
            "test_accuracy": skm.accuracy_score(Y, PRED),
            "test_f1": skm.f1_score(Y, PRED),
            "test_precision": skm.precision_score(Y, PRED),
            "test_recall": skm.recall_score(Y, PRED),
            "test_roc_auc": skm.roc_auc_score(Y, P1),
            "test_log_loss": skm.log_loss(Y, PROBA),
        }
    )


def test_a_positive_label_given_as_text_picks_that_class() -> None:
    got = compute_metrics("classification", Predictions(Y, PRED, PROBA, CLASSES), pos_label="0")
    assert got["f1"] == pytest.approx(skm.f1_score(Y, PRED, pos_label=0))
    assert got["recall"] == pytest.approx(skm.recall_score(Y, PRED, pos_label=0))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(Y == 0, PROBA[:, 0]))


def test_labels_alone_give_the_label_metrics_and_say_why_the_others_are_missing() -> None:
    p = Predictions(Y, PRED, None, None)
    got = compute_metrics("classification", p)
    assert set(got) == {"accuracy", "f1", "precision", "recall"}
    assert got["f1"] == pytest.approx(skm.f1_score(Y, PRED))  # binary, not macro
    assert "needs class probabilities" in why_missing("classification", p, "roc_auc")
    assert "needs class probabilities" in why_missing("classification", p, "log_loss")


def test_true_labels_the_model_does_not_know_leave_out_the_probability_metrics() -> None:
    y = Y.copy()
    y[0] = 2
    p = Predictions(y, PRED, PROBA, CLASSES)
    got = compute_metrics("classification", p)
    assert "roc_auc" not in got and "log_loss" not in got
    assert "not classes of the model" in why_missing("classification", p, "roc_auc")


def test_multiclass_scores_are_macro_averages() -> None:
    y = RNG.integers(0, 3, 300)
    proba = RNG.dirichlet([1, 1, 1], 300)
    proba[np.arange(300), y] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    classes = np.array([0, 1, 2])
    got = compute_metrics("classification", Predictions(y, pred, proba, classes))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    # A class missing from the data: no ROC AUC, and the reason says so.
    p = Predictions(y[y != 2], pred[y != 2], proba[y != 2], classes)
    assert "roc_auc" not in compute_metrics("classification", p)
    assert "lack some of the model's classes" in why_missing("classification", p, "roc_auc")


def test_regression_scores_are_sklearns() -> None:
    y, pred = RNG.normal(size=100), RNG.normal(size=100)
    got = compute_metrics("regression", Predictions(y, pred, None, None))
    assert got == pytest.approx(
        {
            "rmse": np.sqrt(skm.mean_squared_error(y, pred)),
            "mae": skm.mean_absolute_error(y, pred),
            "mse": skm.mean_squared_error(y, pred),
            "r2": skm.r2_score(y, pred),
        }
    )


def test_every_metric_has_a_direction_and_the_old_names_map_to_it() -> None:
    assert set(HIGHER_IS_BETTER) == {m for names in METRICS.values() for m in names}
    assert canonical_metric("root_mean_squared_error") == "rmse"
    assert canonical_metric("accuracy_score") == "accuracy"
    assert canonical_metric("roc_auc") == "roc_auc"
    assert "not a metric mlcycle computes" in why_missing("classification", None, "auc")
    assert "not a metric of regression" in why_missing("regression", None, "f1_score")


@pytest.mark.parametrize("average", ["binary", "macro"])
def test_f1_precision_recall_equal_sklearns_own_functions_exactly(average: str) -> None:
    # One shared call computes the three; each must be the number its own function gives,
    # including the zero-division cases (no predicted positives; a class never predicted).
    y = np.array([0, 1, 1, 0, 2, 1] * 50) if average == "macro" else Y
    for pred in (PRED, np.zeros_like(Y)) if average == "binary" else (y % 2, np.ones_like(y)):
        classes = np.unique(y) if average == "macro" else CLASSES
        got = compute_metrics("classification", Predictions(y, pred, None, classes))
        kw = {"average": average, "zero_division": 0}
        assert got["f1"] == skm.f1_score(y, pred, **kw)
        assert got["precision"] == skm.precision_score(y, pred, **kw)
        assert got["recall"] == skm.recall_score(y, pred, **kw)
