"""The one place mlcycle touches Evidently's private stat-test registry.

API: :func:`stattest_registry`, :func:`run_stattest`, :func:`register_verdict`,
:func:`unregister`, :func:`lean_drift_report`.

Evidently 0.7 has no public way to run one stat test on two series, nor to make a report
show a score computed elsewhere; both live in ``evidently.legacy.calculations.stattests.
registry``. Everything that needs it goes through :func:`stattest_registry`, which checks the
names mlcycle uses are still there and fails with a clear error (and
``tests/unit/monitoring/test_evidently_api.py`` fails loudly) when Evidently changes them.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd

from mlcycle.errors import MonitoringError
from mlcycle.monitoring.report_figures import table_figures
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


@contextlib.contextmanager
def lean_drift_report(hidden: Iterable[str]) -> Iterator[None]:
    """Evidently's ``DataDriftPreset`` without the work its page never shows, while inside.

    The preset computes a ``ValueDrift`` per column and then renders its own table instead
    of their widgets, so their plotly figures (two per column, a third of the report's CPU)
    are built and thrown away: for the ``hidden`` columns their rendering is skipped (their
    values stay in ``report.json``). Its headline metric and its table also compute the
    same per-column statistics twice over the same frames: the second asks for what the
    first computed. The table's own figures (two per column) are written as plotly JSON
    directly (:func:`mlcycle.monitoring.report_figures.table_figures`), and other figures'
    ``make_subplots``, which lays out the same one-cell grid every time at half a figure's
    cost, lays it out once and copies it (:func:`_subplots_once`). The patches are private
    Evidently names, checked by :func:`_lean_targets` (and
    ``tests/unit/monitoring/test_evidently_api.py``, which compares the pages).

    Raises:
        MonitoringError: this Evidently version moved a name the patches need.
    """
    column_statistics, modules, visualizations = _lean_targets()
    calc = column_statistics.ValueDriftCalculation
    render = calc._render
    skip = frozenset(hidden)

    def lean_render(self: Any, result: Any, *args: Any, **kwargs: Any) -> Any:
        if self.metric.column in skip:
            return []
        return render(self, result, *args, **kwargs)

    originals = [(m, m.get_drift_for_columns) for m in modules]
    seen: list[tuple[dict[str, Any], Any]] = []

    def once(**kwargs: Any) -> Any:
        for key, value in seen:
            if _same_call(key, kwargs):
                return _with_threshold(value, kwargs)
        value = originals[0][1](**kwargs)
        seen.append((kwargs, value))
        return value

    one_column = column_statistics.get_one_column_drift

    def column_once(**kwargs: Any) -> Any:
        # A ValueDrift of a column the headline already computed, on the same frames.
        name, kind = kwargs["column_name"], kwargs["column_type"].value
        options = kwargs["options"]
        for key, value in seen:
            done = value.drift_by_columns.get(name)
            other = key["data_drift_options"]
            if (
                done is not None
                and key["current_data"] is kwargs["current_data"]
                and key["reference_data"] is kwargs["reference_data"]
                and key["agg_data"] == kwargs["agg_data"]
                and other.get_feature_stattest_func(name, kind)
                == options.get_feature_stattest_func(name, kind)
                and other.get_threshold(name, kind) == options.get_threshold(name, kind)
            ):
                return done
        return one_column(**kwargs)

    make_subplots = visualizations.make_subplots
    table = modules[1]
    plots = (table.plot_distr_with_perc_button, table.plot_agg_line_data)
    calc._render = lean_render
    column_statistics.get_one_column_drift = column_once
    visualizations.make_subplots = _subplots_once(make_subplots)
    table.plot_distr_with_perc_button, table.plot_agg_line_data = table_figures(*plots)
    for m, _ in originals:
        m.get_drift_for_columns = once
    try:
        yield
    finally:
        calc._render = render
        column_statistics.get_one_column_drift = one_column
        visualizations.make_subplots = make_subplots
        table.plot_distr_with_perc_button, table.plot_agg_line_data = plots
        for m, f in originals:
            m.get_drift_for_columns = f


def _subplots_once(make_subplots: Any) -> Any:
    """``make_subplots`` that lays out each distinct grid once and copies it after.

    The copy is a new figure (plotly's default template, as ``make_subplots`` starts from)
    given the first figure's layout and subplot grid: the same figure, without re-deriving
    and re-validating the grid each time. The layout is plotly's own, already validated.
    """
    import plotly.graph_objects as go

    grids: dict[str, tuple[dict[str, Any], Any, Any]] = {}

    def subplots(*args: Any, **kwargs: Any) -> Any:
        key = repr((args, sorted(kwargs.items())))
        if key not in grids:
            first = make_subplots(*args, **kwargs)
            layout = first.layout.to_plotly_json()
            layout.pop("template", None)
            grids[key] = (layout, first._grid_ref, first._grid_str)
            return first
        layout, grid_ref, grid_str = grids[key]
        fig = go.Figure()
        fig._layout_obj._validate = False
        try:
            fig.update_layout(copy.deepcopy(layout))
        finally:
            fig._layout_obj._validate = True
        # Plain attributes (plotly's own __setattr__ would validate them as figure properties).
        object.__setattr__(fig, "_grid_ref", copy.deepcopy(grid_ref))
        object.__setattr__(fig, "_grid_str", grid_str)
        return fig

    return subplots


def _same_call(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same statistics: the same frames (identity) and equal options and columns."""
    # The drift share only sets the dataset verdict, recomputed by _with_threshold.
    keys = (a.keys() | b.keys()) - {"drift_share_threshold"}
    for k in keys:
        if k not in a or k not in b:
            return False
        v, w = a[k], b[k]
        if isinstance(v, pd.DataFrame) or isinstance(w, pd.DataFrame):
            if v is not w:
                return False
        elif v != w:
            return False
    return True


def _with_threshold(value: Any, kwargs: dict[str, Any]) -> Any:
    """The dataset verdict of the same per-column results under this call's drift share."""
    from evidently.legacy.calculations.data_drift import get_dataset_drift

    threshold = kwargs.get("drift_share_threshold")
    if threshold is None:
        threshold = kwargs["data_drift_options"].drift_share
    verdict = get_dataset_drift(value.drift_by_columns, threshold)
    return value.copy(
        update={
            "number_of_drifted_columns": verdict.number_of_drifted_columns,
            "share_of_drifted_columns": verdict.dataset_drift_score,
            "dataset_drift": verdict.dataset_drift,
        }
    )


def _lean_targets() -> tuple[Any, list[Any], Any]:
    """The Evidently modules :func:`lean_drift_report` patches, checked to have the names."""
    try:
        from evidently.legacy.metrics.data_drift import data_drift_table, dataset_drift_metric
        from evidently.legacy.utils import visualizations
        from evidently.metrics import column_statistics
    except ImportError as exc:
        raise MonitoringError(
            f"this Evidently version moved its drift metrics ({exc}); mlcycle needs 0.7.x"
        ) from exc
    calc = getattr(column_statistics, "ValueDriftCalculation", None)
    modules = [dataset_drift_metric, data_drift_table]
    if (
        calc is None
        or not callable(getattr(calc, "_render", None))
        or not callable(getattr(column_statistics, "get_one_column_drift", None))
        or not all(callable(getattr(m, "get_drift_for_columns", None)) for m in modules)
        or not callable(getattr(visualizations, "make_subplots", None))
        or not callable(getattr(data_drift_table, "plot_distr_with_perc_button", None))
        or not callable(getattr(data_drift_table, "plot_agg_line_data", None))
    ):
        raise MonitoringError(
            "Evidently's ValueDrift, its drift calculations or its plots changed; "
            "mlcycle needs 0.7.x"
        )
    return column_statistics, modules, visualizations
