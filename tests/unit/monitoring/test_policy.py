"""Decide: the declared retrain policy."""

from __future__ import annotations

import pytest

from mlcycle.errors import ConfigError
from mlcycle.monitoring import RetrainPolicy, WindowOutcome, decide


def w(share: float, drop: float | None = None, status: str | None = None) -> WindowOutcome:
    """A window as detection judged it with the default threshold (0.3)."""
    status = status or ("drift" if share >= 0.3 else "ok")
    return WindowOutcome(
        key=f"w{share}{drop}{status}",
        status=status,
        drift_share=share,
        quality_drop=drop,
        drift_threshold=0.3,
    )


def test_two_bad_of_the_last_three_with_the_latest_bad_retrains():
    d = decide([w(0.5), w(0.0), w(0.4)], RetrainPolicy(bad_windows=2, of_last=3))
    assert d.retrain and d.bad == 2
    assert any("drift share 0.40 >= 0.30" in r for r in d.reasons)


def test_one_bad_window_is_not_enough_for_two_of_three():
    assert not decide([w(0.0), w(0.0), w(0.5)], RetrainPolicy(bad_windows=2, of_last=3)).retrain


def test_a_good_latest_window_holds_the_retrain_back():
    d = decide([w(0.5), w(0.5), w(0.0)], RetrainPolicy(bad_windows=2, of_last=3))
    assert not d.retrain and "latest window is fine" in d.reasons


def test_a_quality_drop_alone_makes_a_window_bad():
    d = decide([w(0.0, drop=0.08)], RetrainPolicy(bad_windows=1, of_last=1, quality_drop=0.05))
    assert d.retrain and any("quality drop" in r for r in d.reasons)


def test_windows_older_than_m_do_not_count():
    assert not decide(
        [w(0.9), w(0.9), w(0.0), w(0.0), w(0.9)], RetrainPolicy(bad_windows=2, of_last=3)
    ).retrain


def test_insufficient_data_never_retrains_and_is_skipped_when_counting():
    policy = RetrainPolicy(bad_windows=2, of_last=2)
    assert not decide([w(0.9), w(0.0, status="insufficient_data")], policy).retrain
    assert decide([w(0.9), w(0.0, status="insufficient_data"), w(0.9)], policy).retrain


def test_an_impossible_policy_is_a_config_error():
    with pytest.raises(ConfigError):
        RetrainPolicy(bad_windows=4, of_last=3)


def test_the_policy_judges_drift_by_detections_verdict_not_a_threshold_of_its_own():
    # 0.4 of the features drifted, but detection's threshold was 0.5: the window is ok,
    # and the policy, which has no drift threshold, agrees with it.
    fine = WindowOutcome("a", "ok", drift_share=0.4, drift_threshold=0.5)
    drifted = WindowOutcome("b", "drift", drift_share=0.2, drift_threshold=0.2)
    policy = RetrainPolicy(bad_windows=1, of_last=1)
    assert not decide([fine], policy).retrain
    assert decide([drifted], policy).retrain
    assert not hasattr(policy, "drift_share")
