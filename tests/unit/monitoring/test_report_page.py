"""The report page's data block: Evidently's widgets written as their ``.dict()`` would be."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mlcycle.monitoring import analyse_window
from mlcycle.monitoring.report import script_json


def _data(page: str) -> tuple[object, object]:
    """The dashboard and its additional graphs, parsed from the page's script block."""
    found = re.search(r"var metric_\w+ = (.*);\n    var additional_graphs_metric_\w+ = (.*);", page)
    assert found is not None
    return json.loads(found.group(1)), json.loads(found.group(2))


def _stock_data(snapshot: object, first: list) -> tuple[object, object]:
    """The same block through pydantic's ``.dict()``, as the page was first written."""
    from evidently.legacy.model.dashboard import DashboardInfo
    from evidently.legacy.model.widget import AdditionalGraphInfo
    from evidently.legacy.renderers.html_widgets import group_widget

    widgets = [
        *first,
        group_widget(title="", widgets=snapshot._widgets),  # type: ignore[attr-defined]
        *snapshot._tests_widgets,  # type: ignore[attr-defined]
    ]
    graphs = {}
    for info in widgets:
        for extra in info.get_additional_graphs():
            params = extra.params if isinstance(extra, AdditionalGraphInfo) else extra
            graphs[str(extra.id)] = params.dict() if hasattr(params, "dict") else params
    dashboard = DashboardInfo(name="Report", widgets=widgets).dict()
    for widget in dashboard["widgets"]:
        widget.pop("additionalGraphs", None)
    return json.loads(script_json(dashboard)), json.loads(script_json(graphs))


def test_the_page_holds_what_pydantics_dict_of_the_widgets_holds(
    scenario_reference, covariate_window, tmp_path: Path, monkeypatch
) -> None:
    from mlcycle.monitoring import report

    snapshots: list[tuple[object, list]] = []
    page = report.safe_report_html

    def keep(snapshot: object, first: list) -> str:
        snapshots.append((snapshot, first))
        return page(snapshot, first)

    monkeypatch.setattr(report, "safe_report_html", keep)
    result = analyse_window(scenario_reference, covariate_window, output_dir=tmp_path)
    assert result.report_html and len(snapshots) == 1
    written = _data(Path(result.report_html).read_text(encoding="utf-8"))
    dashboard, graphs = _stock_data(*snapshots[0])
    # mlcycle's own section first (report_header), then Evidently's group widget.
    assert len(snapshots[0][1]) == 3
    for page_data in (written[0], dashboard):  # the page's group widget is made per call
        page_data["widgets"][3].pop("id")  # type: ignore[index]
    assert written == (dashboard, graphs)
    assert "Detected" in json.dumps(dashboard) and len(json.dumps(dashboard)) > 10_000
