"""The gate's threshold logic, on plain metric dictionaries."""

from __future__ import annotations

import pytest

from mlcycle.errors import ConfigError, GateRejected
from mlcycle.register import GateDecision, GatePolicy
from mlcycle.register.gate import LATENCY, _judge


def test_a_challenger_with_no_champion_is_judged_by_absolute_thresholds_alone() -> None:
    policy = GatePolicy(min_score=0.7, min_improvement=0.5)
    assert _judge(policy, "roc_auc", {"roc_auc": 0.8}, {}) == []
    assert "min_score" in _judge(policy, "roc_auc", {"roc_auc": 0.6}, {})[0]


def test_a_challenger_must_beat_the_champion_by_the_minimum_improvement() -> None:
    policy = GatePolicy(min_improvement=0.01)
    assert _judge(policy, "roc_auc", {"roc_auc": 0.82}, {"roc_auc": 0.80}) == []
    assert "min_improvement" in _judge(policy, "roc_auc", {"roc_auc": 0.805}, {"roc_auc": 0.80})[0]


def test_a_tie_with_the_champion_passes_the_default_policy() -> None:
    assert _judge(GatePolicy(), "roc_auc", {"roc_auc": 0.8}, {"roc_auc": 0.8}) == []


def test_lower_is_better_metrics_are_compared_the_right_way_round() -> None:
    ok = {"rmse": 1.0}
    worse = {"rmse": 2.0}
    assert _judge(GatePolicy(min_score=1.5), "rmse", ok, worse) == []
    reasons = _judge(GatePolicy(min_score=1.5), "rmse", worse, ok)
    assert len(reasons) == 2  # above the maximum and worse than the champion


@pytest.mark.parametrize(("old", "new"), [
    ("root_mean_squared_error", "rmse"),
    ("mean_absolute_error", "mae"),
    ("mean_squared_error", "mse"),
    ("r2_score", "r2"),
    ("accuracy_score", "accuracy"),
    ("f1_score", "f1"),
    ("precision_score", "precision"),
    ("recall_score", "recall"),
])  # fmt: skip
def test_mlflow_evaluate_metric_names_are_aliases_of_mlcycles(old: str, new: str) -> None:
    assert GatePolicy(metric=old).metric == new
    better, worse = ({new: 0.5}, {new: 0.9}) if new in ("rmse", "mae", "mse") else (
        {new: 0.9}, {new: 0.5},
    )  # fmt: skip
    assert _judge(GatePolicy(), old, better, worse) == []
    assert "min_improvement" in _judge(GatePolicy(), old, worse, better)[0]


def test_a_slow_challenger_fails_the_latency_threshold() -> None:
    policy = GatePolicy(max_latency_ms_per_row=0.5)
    assert _judge(policy, "roc_auc", {"roc_auc": 0.9, LATENCY: 0.1}, {}) == []
    assert "latency" in _judge(policy, "roc_auc", {"roc_auc": 0.9, LATENCY: 2.0}, {})[0]


def test_a_missing_metric_fails_the_gate() -> None:
    assert _judge(GatePolicy(metric="nonexistent"), "nonexistent", {"roc_auc": 0.9}, {}) == [
        "challenger has no nonexistent: not a metric mlcycle computes (accuracy, f1, precision, "
        "recall, roc_auc, log_loss, rmse, mae, mse, r2)"
    ]
    reasons = _judge(GatePolicy(), "rmse", {"roc_auc": 0.9}, {}, task="classification")
    assert reasons == [
        "challenger has no rmse: not a metric of classification "
        "(accuracy, f1, precision, recall, roc_auc, log_loss)"
    ]


def test_an_unknown_gate_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="gate mode"):
        GatePolicy(mode="strict")  # type: ignore[arg-type]


@pytest.mark.parametrize(("mode", "passed", "refused"), [
    ("enabled", False, True),
    ("enabled", True, False),
    ("dry_run", False, False),
    ("disabled", True, False),
])  # fmt: skip
def test_only_an_enabled_gate_that_failed_refuses_the_version(
    mode: str, passed: bool, refused: bool
) -> None:
    decision = GateDecision(passed, mode, ["why"], {}, {}, "3", "2")
    if refused:
        with pytest.raises(GateRejected, match="churn version 3 did not pass the gate"):
            decision.enforce("churn")
    else:
        decision.enforce("churn")


def test_an_audit_entry_shows_the_gate_metric_in_mlcycle_names() -> None:
    from mlcycle.register import AuditEntry

    def entry(metrics: dict[str, float]) -> AuditEntry:
        return AuditEntry("m", "promote", "me", "now", None, "1", False, None, metrics)

    assert entry({"challenger_roc_auc": 0.91, "champion_roc_auc": 0.9}).score() == (
        "roc_auc", 0.91,
    )  # fmt: skip
    assert entry({"challenger_rmse": 2.5}).score() == ("rmse", 2.5)
    assert entry({"canary_share": 0.5}).score() is None
