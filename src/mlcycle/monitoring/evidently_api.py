"""The one place mlcycle touches Evidently's private stat-test registry.

API: :func:`stattest_registry`, :func:`run_stattest`, :func:`register_verdict`,
:func:`unregister`.

Evidently 0.7 has no public way to run one stat test on two series, nor to make a report
show a score computed elsewhere; both live in ``evidently.legacy.calculations.stattests.
registry``. Everything that needs it goes through :func:`stattest_registry`, which checks the
names mlcycle uses are still there and fails with a clear error (and
``tests/unit/monitoring/test_evidently_api.py`` fails loudly) when Evidently changes them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlcycle.errors import MonitoringError
from mlcycle.monitoring.results import ColumnDrift

#: What mlcycle uses of the private registry module.
REGISTRY_NAMES = (
    "StatTest",
    "get_stattest",
    "register_stattest",
    "_registered_stat_tests",
    "_impls",
    "_registered_stat_test_funcs",
)


def stattest_registry() -> Any:
    """Evidently's stat-test registry module, checked to have what mlcycle uses.

    Raises:
        MonitoringError: this Evidently version moved or renamed it.
    """
    try:
        from evidently.legacy.calculations.stattests import registry
    except ImportError as exc:
        raise MonitoringError(
            f"this Evidently version has no legacy stat-test registry ({exc}); "
            "mlcycle needs evidently 0.7.x"
        ) from exc
    missing = [n for n in REGISTRY_NAMES if not hasattr(registry, n)]
    if missing:
        raise MonitoringError(
            f"Evidently's stat-test registry changed (no {', '.join(missing)}); "
            "mlcycle needs evidently 0.7.x"
        )
    return registry


def _column_type(kind: str) -> Any:
    from evidently.legacy.core import ColumnType

    return ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical


def run_stattest(
    method: str, kind: str, ref: pd.Series, cur: pd.Series, threshold: float | None
) -> tuple[float, bool, float]:
    """Evidently's stat test ``method`` (``evidently``: its own choice) on two series.

    Returns:
        ``(score, drifted, threshold used)``.

    Raises:
        MonitoringError: the method is unknown or failed.
    """
    registry = stattest_registry()
    ctype = _column_type(kind)
    try:
        test = registry.get_stattest(ref, cur, ctype, None if method == "evidently" else method)
        res = test(ref, cur, ctype, threshold)
    except Exception as exc:
        raise MonitoringError(f"drift method '{method}' failed: {exc}") from exc
    return float(res.drift_score), bool(res.drifted), float(res.actual_threshold)


def register_verdict(verdict: ColumnDrift, registered: list[str]) -> str:
    """An Evidently stat test, under a one-off name, that answers with mlcycle's verdict.

    Evidently re-computes drift on its bounded sample and could disagree with the verdict
    near a threshold; a stat test that returns the whole-window score makes the report show
    exactly what mlcycle decided.
    """
    import uuid

    registry = stattest_registry()
    name = f"mlcycle_{uuid.uuid4().hex[:12]}"
    score, drifted = float(verdict.score), bool(verdict.drifted)
    test = registry.StatTest(
        name=name,
        display_name=f"{verdict.method} (mlcycle, whole window)",
        allowed_feature_types=[_column_type("numeric"), _column_type("categorical")],
        default_threshold=float(verdict.threshold),
    )
    registry.register_stattest(test, lambda ref, cur, kind, threshold: (score, drifted))
    registered.append(name)
    return name


def unregister(names: list[str]) -> None:
    """Remove the stat tests :func:`register_verdict` added (the registry is process-global)."""
    registry = stattest_registry()
    for name in names:
        tests = registry._registered_stat_tests.pop(name, {})
        for test in set(tests.values()):
            impls = registry._impls.pop(test, {})
            for impl in impls.values():
                registry._registered_stat_test_funcs.pop(getattr(impl, "func", None), None)
