"""Evidently's private stat-test registry, used through one function: fail loudly if it moves."""

from __future__ import annotations

import json
import re

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


def _drift_report(lean: bool, snapshots: list | None = None) -> tuple[dict, list]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"a": rng.normal(0, 1, 400), "b": rng.choice(["x", "y"], 400)})
    cur = pd.DataFrame({"a": rng.normal(1, 1, 400), "b": rng.choice(["x", "y"], 400)})
    dd = DataDefinition(numerical_columns=["a"], categorical_columns=["b"])
    report = Report([DataDriftPreset(columns=["a", "b"], drift_share=0.3)])
    args = (
        Dataset.from_pandas(cur, data_definition=dd),
        Dataset.from_pandas(ref, data_definition=dd),
    )
    if lean:
        with evidently_api.lean_drift_report(hidden=["a", "b"]):
            snapshot = report.run(*args)
    else:
        snapshot = report.run(*args)
    metrics = {m["metric_name"]: m["value"] for m in snapshot.dict()["metrics"]}
    if snapshots is not None:
        snapshots.append(snapshot)
    return metrics, snapshot._widgets


def _figures(value: object) -> list[str]:
    """Every plotly figure in widgets, as JSON (widget ids, random per run, left out)."""
    from evidently.legacy.utils import NumpyEncoder

    found: list[str] = []

    def walk(v: object) -> None:
        if hasattr(v, "dict"):
            v = v.dict()  # type: ignore[attr-defined]
        if isinstance(v, dict):
            if "data" in v and "layout" in v:
                found.append(json.dumps(v, cls=NumpyEncoder))
                return
            for k, w in v.items():
                if k != "id":
                    walk(w)
        elif isinstance(v, list | tuple):
            for w in v:
                walk(w)

    walk(value)
    return found


def test_the_lean_drift_tables_figures_are_the_stock_ones() -> None:
    # Written as plotly JSON directly: the same figures, key order included.
    stock = _figures(_drift_report(lean=False)[1])
    lean = _figures(_drift_report(lean=True)[1])
    assert len(stock) == 3 and lean == stock
    assert any('"type": "bar"' in f for f in lean) and any("mean +/- std" in f for f in lean)


def _json(figure: object) -> str:
    from evidently.legacy.utils import NumpyEncoder

    return json.dumps(figure.to_plotly_json(), cls=NumpyEncoder)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("x", "count"),
    [
        (np.array(["a", "b", "<c>"]), np.array([3, 0, 5])),
        (np.array([0.5, 1.5, 2.5, 3.5]), np.array([1, 2, 3])),
        (np.array([1, 2, 3], dtype=np.int32), np.array([7, 7, 7], dtype=np.int64)),
    ],
)
def test_the_table_distribution_figure_is_evidentlys(x: np.ndarray, count: np.ndarray) -> None:
    from evidently.legacy.metric_results import Distribution, HistogramData
    from evidently.legacy.options.color_scheme import ColorOptions
    from evidently.legacy.utils.visualizations import (
        plot_agg_line_data,
        plot_distr_with_perc_button,
    )

    from mlcycle.monitoring.report_figures import Figure, table_figures

    fast, _ = table_figures(plot_distr_with_perc_button, plot_agg_line_data)
    hist = HistogramData.from_distribution(Distribution(x=x, y=count))
    other = HistogramData.from_distribution(Distribution(x=x, y=count[::-1] + 1))
    kwargs = dict(
        hist_curr=hist,
        hist_ref=other,
        xaxis_name="",
        yaxis_name="Count",
        yaxis_name_perc="Percent",
        same_color=False,
        color_options=ColorOptions(),
        subplots=False,
        to_json=False,
    )
    figure = fast(**kwargs)
    assert isinstance(figure, Figure)
    assert _json(figure) == _json(plot_distr_with_perc_button(**kwargs))
    # A call the table does not make goes to Evidently's own function.
    assert not isinstance(fast(**{**kwargs, "subplots": True}), Figure)


@pytest.mark.parametrize("line_name", ["reference (mean)", None])
def test_the_table_drift_line_figure_is_evidentlys(line_name: str | None) -> None:
    from evidently.legacy.options.color_scheme import ColorOptions
    from evidently.legacy.utils.visualizations import (
        plot_agg_line_data,
        plot_distr_with_perc_button,
    )

    from mlcycle.monitoring.report_figures import Figure, table_figures

    _, fast = table_figures(plot_distr_with_perc_button, plot_agg_line_data)
    frame = pd.DataFrame(
        {"per": [0, 1, 2, 3], "mean": [1.0, 2.5, np.nan, 0.5], "std": [0.1, np.nan, 0.3, 0.2]}
    )
    kwargs = dict(
        curr_data={"current": frame},
        ref_data=None,
        line=1.25,
        std=0.75,
        xaxis_name="index (binned)",
        xaxis_name_ref=None,
        yaxis_name="a (mean +/- std)",
        color_options=ColorOptions(),
        return_json=False,
        line_name=line_name,
    )
    figure = fast(**kwargs)
    assert isinstance(figure, Figure)
    assert _json(figure) == _json(plot_agg_line_data(**kwargs))
    assert not isinstance(fast(**{**kwargs, "ref_data": {"reference": frame}}), Figure)


@pytest.mark.parametrize(
    "grid",
    [
        {"rows": 1, "cols": 1, "shared_yaxes": True, "subplot_titles": ""},
        {"rows": 1, "cols": 2, "shared_yaxes": True, "subplot_titles": ["current", "reference"]},
    ],
)
def test_a_copied_subplot_grid_is_plotlys(grid: dict) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    subplots = evidently_api._subplots_once(make_subplots)
    subplots(**grid)
    drawn = [subplots(**grid), make_subplots(**grid)]
    for figure in drawn:
        figure.add_trace(go.Bar(x=[1, 2], y=[3, 4]), 1, grid["cols"])
        figure.update_xaxes(title_text="x", row=1, col=1)
    assert drawn[0].to_plotly_json() == drawn[1].to_plotly_json()
    # Drawing on a copy leaves the next copy blank.
    assert subplots(**grid).to_plotly_json() == make_subplots(**grid).to_plotly_json()


def test_the_lean_drift_report_shows_and_stores_what_the_stock_one_does() -> None:
    from evidently.legacy.metrics.data_drift import data_drift_table, dataset_drift_metric
    from evidently.metrics import column_statistics

    before = (
        column_statistics.ValueDriftCalculation._render,
        column_statistics.get_one_column_drift,
        data_drift_table.get_drift_for_columns,
        dataset_drift_metric.get_drift_for_columns,
    )
    stock_values, stock_widgets = _drift_report(lean=False)
    lean_values, lean_widgets = _drift_report(lean=True)
    assert lean_values == stock_values and any("ValueDrift" in k for k in lean_values)

    def shown(widgets: list) -> list:
        # The page: headline counter and table rows (ids and figures' uids aside).
        text = str([w.dict() for w in widgets])
        return sorted(set(re.findall(r"'(?:Not )?Detected'|Dataset Drift is[^']*", text)))

    assert shown(lean_widgets) == shown(stock_widgets) != []
    # Everything patched is put back.
    assert before == (
        column_statistics.ValueDriftCalculation._render,
        column_statistics.get_one_column_drift,
        data_drift_table.get_drift_for_columns,
        dataset_drift_metric.get_drift_for_columns,
    )


def test_the_lean_report_fails_loudly_when_evidently_moves_a_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from evidently.legacy.metrics.data_drift import data_drift_table

    evidently_api._lean_targets()  # today's Evidently has every name
    monkeypatch.delattr(data_drift_table, "get_drift_for_columns")
    with (
        pytest.raises(MonitoringError, match="drift calculations or its plots changed"),
        evidently_api.lean_drift_report(hidden=[]),
    ):
        pass
