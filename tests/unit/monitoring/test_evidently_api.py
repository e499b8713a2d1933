"""Evidently's private stat-test registry, used through one function: fail loudly if it moves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.errors import MonitoringError
from mlcycle.monitoring import evidently_api
from mlcycle.monitoring.results import ColumnDrift


def test_the_registry_still_has_every_name_mlcycle_uses() -> None:
    registry = evidently_api.stattest_registry()
    for name in evidently_api.REGISTRY_NAMES:
        assert hasattr(registry, name), f"Evidently's stat-test registry lost {name}"


def test_a_named_stat_test_runs_on_two_series() -> None:
    rng = np.random.default_rng(0)
    ref = pd.Series(rng.normal(0, 1, 500))
    score, drifted, threshold = evidently_api.run_stattest(
        "ks", "numeric", ref, pd.Series(rng.normal(2, 1, 500)), None
    )
    assert drifted and score < threshold == pytest.approx(0.05)


def test_a_registered_verdict_answers_with_its_score_and_leaves_no_trace() -> None:
    registry = evidently_api.stattest_registry()
    verdict = ColumnDrift("x", "numeric", "wasserstein", 0.42, 0.1, True, 0.0, 1000)
    names: list[str] = []
    name = evidently_api.register_verdict(verdict, names)
    assert names == [name] and name in registry._registered_stat_tests
    ref = pd.Series(np.arange(100.0))
    test = registry.get_stattest(ref, ref, evidently_api._column_type("numeric"), name)
    assert test(ref, ref, evidently_api._column_type("numeric"), 0.1).drift_score == 0.42
    evidently_api.unregister(names)
    assert name not in registry._registered_stat_tests


def test_a_missing_registry_name_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evidently_api, "REGISTRY_NAMES", (*evidently_api.REGISTRY_NAMES, "gone"))
    with pytest.raises(MonitoringError, match=r"stat-test registry changed .*gone"):
        evidently_api.stattest_registry()


def test_an_unknown_method_is_a_monitoring_error() -> None:
    s = pd.Series(np.arange(50.0))
    with pytest.raises(MonitoringError, match="drift method 'nope' failed"):
        evidently_api.run_stattest("nope", "numeric", s, s, None)
