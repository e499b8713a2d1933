"""The drift table's two figures per column as plotly JSON, without building plotly objects.

API: :func:`table_figures` — stand-ins for Evidently's ``plot_distr_with_perc_button`` and
``plot_agg_line_data`` while :func:`mlcycle.monitoring.evidently_api.lean_drift_report`
renders the drift table.

Evidently draws each column's distribution and its drift over the index as plotly figures
and keeps only their JSON (``figure.to_plotly_json()``); building them through plotly's
validated objects is most of the table's cost. For the calls the table makes (one-cell grid,
numbers or text on the axes) these write the same JSON directly; any other call goes to
Evidently's own function. ``tests/unit/monitoring/test_evidently_api.py`` compares both
with Evidently's output, key order included.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

#: numpy kinds written the same whether plotly or this module hands them to the encoder.
_PLAIN = frozenset("iuf")
_PLAIN_OR_TEXT = frozenset("iufOU")


class Figure:
    """What Evidently's ``GraphData.figure`` reads of a plotly figure."""

    def __init__(self, data: list[dict[str, Any]], layout: dict[str, Any]) -> None:
        self.data, self.layout = data, layout

    def to_plotly_json(self) -> dict[str, Any]:
        return {"data": self.data, "layout": self.layout}


def _trace(kind: str, **props: Any) -> dict[str, Any]:
    """A trace as plotly writes it: set properties in name order, type, then the axes."""
    out = {k: props[k] for k in sorted(props) if props[k] is not None}
    out.update(type=kind, xaxis="x", yaxis="y")
    return out


def _axes(template: Any, x_title: str, y_title: str) -> dict[str, Any]:
    layout: dict[str, Any] = {} if template is None else {"template": template}
    layout["xaxis"] = {"anchor": "y", "domain": [0.0, 1.0], "title": {"text": x_title}}
    layout["yaxis"] = {"anchor": "x", "domain": [0.0, 1.0], "title": {"text": y_title}}
    return layout


def _kinds(series: Any, kinds: frozenset[str]) -> bool:
    return isinstance(series, pd.Series) and series.dtype.kind in kinds


def table_figures(distribution: Any, drift_line: Any) -> tuple[Any, Any]:
    """Stand-ins for Evidently's ``plot_distr_with_perc_button`` and ``plot_agg_line_data``.

    Args:
        distribution: Evidently's ``plot_distr_with_perc_button`` (other calls go to it).
        drift_line: Evidently's ``plot_agg_line_data`` (other calls go to it).
    """
    import plotly.graph_objects as go

    # The default template, as every new figure carries it (shared: nothing edits it).
    template = go.Figure().to_plotly_json()["layout"].get("template")

    def fast_distribution(**kwargs: Any) -> Any:
        cur, ref = kwargs.get("hist_curr"), kwargs.get("hist_ref")
        names = (kwargs.get("xaxis_name", ""), kwargs.get("yaxis_name", ""))
        percent = kwargs.get("yaxis_name_perc", "")
        if (
            cur is None
            or ref is None
            or kwargs.get("subplots", True)
            or kwargs.get("to_json", True)
            or kwargs.get("same_color", False)
            or not all(isinstance(n, str) for n in (*names, percent))
            or not all(_kinds(h.x, _PLAIN_OR_TEXT) and _kinds(h.count, _PLAIN) for h in (cur, ref))
        ):
            return distribution(**kwargs)
        colors = kwargs["color_options"]
        data = []
        for hist, color, name in (
            (cur, colors.get_current_data_color(), kwargs.get("current_name", "current")),
            (ref, colors.get_reference_data_color(), kwargs.get("reference_name", "reference")),
        ):
            x, count = hist.x.to_numpy(), hist.count.to_numpy()
            for visible, y in ((True, count), (False, (count / count.sum()) * 100)):
                data.append(
                    _trace("bar", x=x, y=y, visible=visible, marker={"color": color}, name=name)
                )
        layout = _axes(template, names[0], names[1])
        shown, hidden = [True, False, True, False], [False, True, False, True]
        layout["updatemenus"] = [
            {
                "buttons": [
                    {
                        "args": [{"visible": shown}, {"yaxis": {"title": names[1]}}],
                        "label": "abs",
                        "method": "update",
                    },
                    {
                        "args": [{"visible": hidden}, {"yaxis": {"title": percent}}],
                        "label": "perc",
                        "method": "update",
                    },
                ],
                "direction": "right",
                "type": "buttons",
                "x": 1.05,
                "y": 1.2,
                "yanchor": "top",
            }
        ]
        return Figure(data, layout)

    def fast_drift_line(*args: Any, **kwargs: Any) -> Any:
        curr = kwargs.get("curr_data")
        line, std = kwargs.get("line"), kwargs.get("std")
        titles = (kwargs.get("xaxis_name"), kwargs.get("yaxis_name"))
        line_name = kwargs.get("line_name")
        frame = next(iter(curr.values())) if isinstance(curr, dict) and len(curr) == 1 else None
        if (
            args
            or frame is None
            or kwargs.get("ref_data") is not None
            or kwargs.get("return_json", True)
            or line is None
            or std is None
            or not all(isinstance(t, str) for t in titles)
            or not (line_name is None or isinstance(line_name, str))
            or not isinstance(frame, pd.DataFrame)
            or not all(_kinds(frame.get(c), _PLAIN) for c in ("per", "mean", "std"))
        ):
            return drift_line(*args, **kwargs)
        assert isinstance(curr, dict)
        colors = kwargs["color_options"]
        name = next(iter(curr))
        per, mean, spread = frame["per"], frame["mean"], frame["std"].fillna(0)
        color, fill = colors.get_current_data_color(), colors.fill_color
        data = [
            _trace(
                "scatter",
                x=per.to_numpy(),
                y=[line] * len(per),
                mode="lines",
                marker={"color": colors.zero_line_color},
                name=line_name,
                showlegend=line_name is not None,
            ),
            _trace(
                "scatter",
                x=[per.min(), per.max(), per.max(), per.min()],
                y=[line + std, line + std, line - std, line - std],
                fill="toself",
                fillcolor=fill,
                opacity=0.5,
                name="reference (+/- 1std)",
                line={"color": fill, "dash": "solid", "width": 0},
                marker={"size": 0},
            ),
            _trace(
                "scatter",
                x=[*per, *per[::-1]],
                y=[*(mean + spread), *list(mean - spread)[::-1]],
                fill="toself",
                fillcolor=color,
                opacity=0.2,
                line={"color": color},
                hoverinfo="skip",
                showlegend=False,
            ),
            _trace(
                "scatter",
                x=per.to_numpy(),
                y=mean.to_numpy(),
                line={"color": color},
                mode="lines",
                name=name,
                legendgroup=name,
                showlegend=True,
            ),
        ]
        return Figure(data, _axes(template, str(titles[0]), str(titles[1])))

    return fast_distribution, fast_drift_line
