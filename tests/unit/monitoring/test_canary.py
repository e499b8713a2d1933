"""Canary statistics, arm comparison and the declared decision policy."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mlcycle.data import DatasetSpec
from mlcycle.errors import ConfigError, DataError
from mlcycle.monitoring.canary import (
    ArmComparison,
    ArmEvidence,
    CanaryPolicy,
    Difference,
    arm_traffic,
    compare_arms,
    decide,
    next_step,
    prediction_shift,
    two_means,
    two_proportions,
    wilson_interval,
)
from mlcycle.monitoring.inputs import reference_from_frame

# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize(("x", "n"), [(0, 10), (3, 10), (81, 100), (999, 1000), (500, 1000)])
def test_the_wilson_interval_matches_statsmodels(x: int, n: int) -> None:
    pytest.importorskip("statsmodels", reason="statsmodels comes with the monitoring extra")
    from statsmodels.stats.proportion import proportion_confint

    low, high = wilson_interval(x, n)
    ref = proportion_confint(x, n, alpha=0.05, method="wilson")
    assert (low, high) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize(
    ("x0", "n0", "x1", "n1"),
    [(160, 200, 172, 200), (850, 1000, 700, 1000), (5, 40, 1, 30), (300, 400, 300, 400)],
)
def test_a_difference_of_proportions_has_newcombes_interval_and_the_pooled_z_test(
    x0: int, n0: int, x1: int, n1: int
) -> None:
    pytest.importorskip("statsmodels", reason="statsmodels comes with the monitoring extra")
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

    d = two_proportions("accuracy", x0, n0, x1, n1)
    low, high = confint_proportions_2indep(x1, n1, x0, n0, method="newcomb", compare="diff")
    _, p = proportions_ztest([x1, x0], [n1, n0])
    assert d.gain == pytest.approx(x1 / n1 - x0 / n0)
    assert (d.ci_low, d.ci_high) == pytest.approx((low, high), abs=1e-9)
    if x0 / n0 == x1 / n1:
        assert d.p_value == pytest.approx(1.0)
    else:
        assert d.p_value == pytest.approx(p, rel=1e-9)
    assert (d.champion, d.challenger, d.n_champion, d.n_challenger) == (x0 / n0, x1 / n1, n0, n1)


def test_a_known_difference_of_proportions_gives_known_numbers() -> None:
    # 80 % vs 86 % on 200 each: hand-checked with the Newcombe (1998) method-10 formula.
    d = two_proportions("accuracy", 160, 200, 172, 200)
    assert d.gain == pytest.approx(0.06)
    assert d.ci_low == pytest.approx(-0.0140, abs=5e-4)
    assert d.ci_high == pytest.approx(0.1339, abs=5e-4)
    # pooled p = 0.83, se = sqrt(0.83 * 0.17 * 2 / 200) = 0.03756, z = 1.597
    assert d.p_value == pytest.approx(0.1102, abs=5e-4)


def test_a_lower_is_better_proportion_is_oriented_so_positive_gain_is_better() -> None:
    # Error rate: the challenger fails less, which is a gain.
    d = two_proportions("error_rate", 30, 1000, 10, 1000, higher_is_better=False)
    plain = two_proportions("error_rate", 30, 1000, 10, 1000)
    assert d.gain == pytest.approx(0.02)
    assert (d.ci_low, d.ci_high) == pytest.approx((-plain.ci_high, -plain.ci_low))
    assert d.p_value == plain.p_value


def test_a_difference_of_means_has_welchs_interval_and_t_test() -> None:
    from scipy import stats

    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 1.0, 300)  # champion absolute errors
    b = rng.normal(0.8, 2.0, 150)  # challenger: smaller errors, more spread
    d = two_means("mae", a, b, higher_is_better=False)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    diff = a.mean() - b.mean()
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    p = 2 * stats.t.sf(abs(diff) / math.sqrt(va + vb), df)
    assert d.gain == pytest.approx(diff)
    assert (d.ci_low, d.ci_high) == pytest.approx((diff - half, diff + half), rel=1e-9)
    assert d.p_value == pytest.approx(p, rel=1e-9)


def test_comparing_arms_without_observations_is_refused() -> None:
    with pytest.raises(DataError, match="both arms"):
        two_proportions("accuracy", 0, 0, 3, 10)
    with pytest.raises(DataError, match="larger than its total"):
        two_proportions("accuracy", 11, 10, 3, 10)
    with pytest.raises(DataError, match="at least two"):
        two_means("mae", [1.0], [1.0, 2.0])


def test_prediction_shift_tests_class_counts_with_chi_square_and_numbers_with_ks() -> None:
    from scipy import stats

    a = pd.Series(["yes"] * 30 + ["no"] * 70)
    b = pd.Series(["yes"] * 60 + ["no"] * 40)
    shift = prediction_shift(a, b, "classification")
    assert shift is not None
    expected = stats.chi2_contingency([[70, 30], [40, 60]])
    assert shift["p_value"] == pytest.approx(expected.pvalue)
    assert shift["test"] == "chi2"
    x, y = pd.Series(np.arange(100.0)), pd.Series(np.arange(100.0) + 30)
    ks = prediction_shift(x, y, "regression")
    assert ks is not None and ks["statistic"] == pytest.approx(0.3)
    assert ks["mean_difference"] == pytest.approx(30.0)
    assert prediction_shift(pd.Series(dtype=float), y, "regression") is None


# --------------------------------------------------------------------------- traffic

METRICS_TEXT = """\
# HELP mlcycle_requests_total HTTP requests.
# TYPE mlcycle_requests_total counter
mlcycle_requests_total{route="/invocations",status="200",role="champion",version="1"} 900.0
mlcycle_requests_total{route="/invocations",status="500",role="champion",version="1"} 1.0
mlcycle_requests_total{route="/invocations",status="200",role="challenger",version="2"} 80.0
mlcycle_requests_total{route="/invocations",status="503",role="challenger",version="2"} 20.0
mlcycle_requests_total{route="/invocations",status="400",role="challenger",version="2"} 5.0
mlcycle_requests_total{route="/ready",status="200"} 50.0
# HELP mlcycle_request_duration_seconds Latency.
# TYPE mlcycle_request_duration_seconds histogram
mlcycle_request_duration_seconds_bucket{role="challenger",version="2",le="0.01"} 50.0
mlcycle_request_duration_seconds_bucket{role="challenger",version="2",le="0.1"} 100.0
mlcycle_request_duration_seconds_bucket{role="challenger",version="2",le="+Inf"} 105.0
mlcycle_request_duration_seconds_count{role="challenger",version="2"} 105.0
mlcycle_request_duration_seconds_sum{role="challenger",version="2"} 3.0
"""


def test_per_arm_requests_errors_and_p99_are_read_from_the_servers_metrics() -> None:
    traffic = arm_traffic(METRICS_TEXT)
    assert set(traffic) == {("champion", "1"), ("challenger", "2")}
    champ, chal = traffic[("champion", "1")], traffic[("challenger", "2")]
    assert (champ.requests, champ.errors, champ.p99_ms) == (901, 1, None)
    assert (chal.requests, chal.errors) == (105, 20)  # a 400 is the client's fault
    # histogram_quantile(0.99): rank 103.95 falls in (+Inf] -> the last finite bound.
    assert chal.p99_ms == pytest.approx(100.0)


def test_metrics_without_per_arm_labels_give_no_traffic() -> None:
    assert arm_traffic('mlcycle_requests_total{route="/invocations",status="200"} 3\n') == {}


# --------------------------------------------------------------------------- compare


def _reference(n: int = 600) -> object:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(0, 1, n), "y": rng.integers(0, 2, n).astype(str)})
    frame["prediction"] = frame["y"]
    spec = DatasetSpec(target="y", task="classification", numeric=("x",), categorical=())
    return reference_from_frame(frame, spec=spec)


def _log_rows(role: str, version: str, n: int, accuracy: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(str)
    right = rng.random(n) < accuracy
    pred = np.where(right, y, np.where(y == "1", "0", "1"))
    uid = [f"{role}{i}" for i in range(n)]
    return pd.DataFrame(
        {
            "record_id": [f"{u}-0" for u in uid],
            "request_id": uid,
            "record_index": 0,
            "timestamp": pd.Timestamp("2026-01-01", tz="UTC"),
            "model_name": "m",
            "model_version": version,
            "role": role,
            "x": rng.normal(0, 1, n),
            "prediction": pred,
            "y": y,
        }
    )


def test_the_arms_are_compared_on_the_same_window_with_drift_quality_and_counts() -> None:
    rows = pd.concat(
        [
            _log_rows("champion", "1", 800, 0.80, 1),
            _log_rows("challenger", "2", 400, 0.90, 2),
            _log_rows("shadow", "3", 50, 0.5, 3),  # neither arm
            _log_rows("champion", "0", 50, 0.5, 4),  # an older champion's rows
        ],
        ignore_index=True,
    )
    rows.loc[rows.index[::2], "y"] = None  # half the labels have arrived
    cmp = compare_arms(
        "m", rows, _reference(), champion_version="1", challenger_version="2", window="w"
    )
    assert (cmp.champion.records, cmp.challenger.records) == (800, 400)
    assert (cmp.champion.requests, cmp.challenger.requests) == (800, 400)
    assert (cmp.champion.labelled, cmp.challenger.labelled) == (400, 200)
    assert cmp.champion.errors is None and cmp.error_rate is None  # no server counters given
    # Each arm is judged against the reference by the monitoring stage's own drift tests.
    assert {cmp.champion.drift_status, cmp.challenger.drift_status} <= {"ok", "drift"}
    assert cmp.challenger.drift_share in (0.0, 1.0) and cmp.challenger.prediction_drift
    assert cmp.quality is not None and cmp.quality.measure == "accuracy"
    assert (cmp.quality.n_champion, cmp.quality.n_challenger) == (400, 200)
    assert cmp.quality.challenger == pytest.approx(cmp.challenger.quality["accuracy"])
    assert cmp.quality.gain > 0 and cmp.quality.ci_low < cmp.quality.gain < cmp.quality.ci_high
    doc = cmp.as_dict()
    assert doc["quality"]["p_value"] == cmp.quality.p_value
    assert doc["challenger"]["version"] == "2" and doc["window"] == "w"
    metrics = cmp.metrics()
    assert metrics["challenger/labelled"] == 200 and "quality_ci_low" in metrics
    assert all(math.isfinite(v) for v in metrics.values())


def test_server_counters_give_each_arm_errors_and_an_error_rate_difference() -> None:
    rows = pd.concat(
        [_log_rows("champion", "1", 300, 0.8, 1), _log_rows("challenger", "2", 300, 0.8, 2)]
    )
    cmp = compare_arms(
        "m",
        rows,
        _reference(),
        champion_version="1",
        challenger_version="2",
        traffic=arm_traffic(METRICS_TEXT),
    )
    assert cmp.challenger.error_rate == pytest.approx(20 / 105)
    assert cmp.error_rate is not None and cmp.error_rate.gain < 0
    assert cmp.challenger.p99_ms == pytest.approx(100.0)


def test_an_unknown_metric_is_refused() -> None:
    with pytest.raises(ConfigError, match="accuracy, mae, mse"):
        compare_arms("m", pd.DataFrame(), _reference(), champion_version="1",
                     challenger_version="2", metric="auc")  # fmt: skip


# --------------------------------------------------------------------------- decide


def _arm(role: str, labelled: int = 500, requests: int = 1000, errors: int | None = 0,
         p99: float | None = 10.0) -> ArmEvidence:  # fmt: skip
    return ArmEvidence(
        role, "2" if role == "challenger" else "1", requests, requests, errors, p99,
        labelled, "ok", 0.0, 0.01, {},
    )  # fmt: skip


def _comparison(low: float, high: float, **challenger: object) -> ArmComparison:
    q = Difference("accuracy", 0.8, 0.8 + (low + high) / 2, (low + high) / 2, low, high, 0.04,
                   "newcombe", 500, 500)  # fmt: skip
    return ArmComparison(
        "m", "w", "accuracy", _arm("champion"), _arm("challenger", **challenger),  # type: ignore[arg-type]
        q, None, None,
    )  # fmt: skip


ONE_STEP = CanaryPolicy(min_labelled=200, steps=(1.0,))


def test_a_challenger_at_least_as_good_with_enough_evidence_is_promoted() -> None:
    d = decide(_comparison(0.001, 0.05), ONE_STEP)
    assert d.action == "promote" and "at least as good" in d.reasons[-1]
    # Within the declared tolerance counts as at least as good.
    assert decide(_comparison(-0.005, 0.05), replace(ONE_STEP, tolerance=0.01)).action == "promote"


def test_a_significantly_worse_challenger_is_rolled_back() -> None:
    d = decide(_comparison(-0.2, -0.05), ONE_STEP)
    assert d.action == "rollback" and "significantly worse" in d.reasons[-1]


def test_an_interval_straddling_the_tolerance_continues() -> None:
    d = decide(_comparison(-0.03, 0.04), ONE_STEP)
    assert d.action == "continue" and "inconclusive" in d.reasons[-1]


def test_without_enough_labelled_records_the_canary_continues_whatever_the_interval() -> None:
    d = decide(_comparison(0.1, 0.2, labelled=199), ONE_STEP)
    assert d.action == "continue" and "not enough evidence" in d.reasons[0]
    assert "challenger 199" in d.reasons[0]


def test_an_error_rate_over_the_limit_rolls_back_before_labels_arrive() -> None:
    d = decide(_comparison(0.1, 0.2, labelled=0, errors=30), ONE_STEP)
    assert d.action == "rollback" and "30 of 1000" in d.reasons[0]
    # Too few requests to judge the rate: keep waiting.
    few = decide(_comparison(0.1, 0.2, labelled=0, errors=3, requests=50), ONE_STEP)
    assert few.action == "continue"


def test_a_p99_latency_over_the_limit_rolls_back() -> None:
    d = decide(_comparison(0.1, 0.2, p99=250.0), replace(ONE_STEP, max_p99_ms=200))
    assert d.action == "rollback" and "p99" in d.reasons[0]


def test_good_evidence_raises_the_share_step_by_step_then_promotes() -> None:
    policy = CanaryPolicy(min_labelled=200, steps=(0.1, 0.5, 1.0))
    good = _comparison(0.01, 0.05)
    first = decide(good, policy)  # share unknown: the first step
    assert (first.action, first.share, first.next_share) == ("continue", 0.1, 0.5)
    assert decide(good, policy, share=0.5).action == "promote"
    assert next_step((0.1, 0.5, 1.0), 0.2) == 0.5
    assert next_step((0.2, 1.0), 0.2) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "auc"}, "metric"),
        ({"min_labelled": 0}, "min_labelled"),
        ({"tolerance": -0.1}, "tolerance"),
        ({"max_error_rate": 1.5}, "max_error_rate"),
        ({"max_p99_ms": 0}, "max_p99_ms"),
        ({"steps": (0.5, 0.1)}, "steps"),
        ({"steps": (0.0, 1.0)}, "steps"),
        ({"confidence": 1.0}, "confidence"),
    ],
)
def test_a_policy_with_values_out_of_range_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CanaryPolicy(**kwargs)
