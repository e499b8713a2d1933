"""The Evidently report of a window: a separate step after detection, writing two files.

API: :func:`write_window_report` (a detected window → ``report.html``/``report.json``),
:func:`write_report` (sanitised frames through Evidently), :func:`script_json`,
:func:`safe_report_html`.

The report runs on bounded samples (the window summary's and the reference's), as Evidently's
maintainers recommend for large data, so its cost does not grow with the window. Its scores,
verdicts and dataset-drift headline are mlcycle's own, computed over the whole window.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.errors import MonitoringError
from mlcycle.inference_log import PREDICTION
from mlcycle.monitoring import report_header
from mlcycle.monitoring.evidently_api import lean_drift_report, register_verdict, unregister
from mlcycle.monitoring.results import ColumnDrift, DriftConfig, DriftResult, Finding
from mlcycle.monitoring.sanitise import class_labels, clean_numeric, display_text


def write_window_report(
    reference: Any,
    summary: Any,
    result: DriftResult,
    config: DriftConfig,
    output_dir: Path,
) -> DriftResult:
    """Write the Evidently report of a detected window; ``result`` with the files' paths.

    The report shows ``result``: its scores, verdicts and dataset-drift headline are the ones
    :func:`mlcycle.monitoring.drift.detect` computed over the whole window; Evidently draws
    them on the summary's bounded sample. A window without analysed columns has no report.

    Args:
        reference: the :class:`mlcycle.monitoring.inputs.ReferenceData`.
        summary: the window's :class:`~mlcycle.monitoring.summary.WindowSummary` (its sample).
        result: what detection found.
        config: the thresholds detection used (``drift_share``, ``report_summary``).
        output_dir: where ``report.html`` and ``report.json`` go.

    Raises:
        MonitoringError: Evidently failed.
    """
    if not result.columns:
        return result
    profile = reference.profile
    sample = summary.sample if summary.sample is not None else pd.DataFrame()
    header = report_header.decision(
        result, config, len(sample), len(reference.sample), result.labelled_rows
    )
    html, js = _write(
        reference,
        sample,
        list(result.findings),
        list(result.columns),
        result.prediction,
        config,
        output_dir,
        profile.get("task", "classification"),
        profile.get("target"),
        result.quality,
        header,
    )
    return replace(result, report_html=str(html), report_json=str(js))


def _write(
    reference: Any,
    current: pd.DataFrame,
    findings: list[Finding],
    drifts: list[ColumnDrift],
    prediction: ColumnDrift | None,
    config: DriftConfig,
    output_dir: Path,
    task: str,
    target: str | None,
    quality: dict[str, float],
    header: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """The window's bounded sample and the reference's, sanitised, through Evidently."""
    cur: dict[str, Any] = {}
    analysed = {d.column: d for d in drifts}
    numeric = [
        c
        for c in analysed
        if analysed[c].kind == "numeric" and c in reference.sample.columns and c in current
    ]
    categorical = [
        c
        for c in analysed
        if analysed[c].kind == "categorical" and c in reference.sample.columns and c in current
    ]
    for c in numeric:
        cur[c] = clean_numeric(current[c])
    for c in categorical:
        cur[c] = display_text(current[c].astype("str")).to_numpy()
    ref = reference.sample.copy()
    for c in numeric:
        ref[c] = pd.to_numeric(ref[c], errors="coerce").replace([np.inf, -np.inf], np.nan)
    for c in categorical:
        ref[c] = display_text(ref[c].astype("str"))
    if prediction is not None and PREDICTION in current.columns:
        if prediction.kind == "numeric":
            numeric.append(PREDICTION)
            cur[PREDICTION] = pd.to_numeric(current[PREDICTION], errors="coerce").to_numpy()
        else:
            categorical.append(PREDICTION)
            cur[PREDICTION] = display_text(class_labels(current[PREDICTION])).to_numpy()
            ref[PREDICTION] = display_text(class_labels(ref[PREDICTION]))
    with_target = bool(quality) and target is not None and target in current.columns
    if with_target:
        assert target is not None
        labelled = current[target]
        cur[target] = labelled.to_numpy()
        if task == "classification":
            cur[target] = display_text(class_labels(labelled)).to_numpy()
            ref[target] = display_text(class_labels(ref[target]))
    cur_df = pd.DataFrame(cur, index=range(len(current)))
    if with_target:
        assert target is not None
        cur_df = cur_df[current[target].notna().to_numpy()]
    # Columns constant or empty on either side make Evidently's plots fail; the verdict
    # for them stands, only the report leaves them out.
    usable = [
        c
        for c in [*numeric, *categorical]
        if cur_df[c].notna().any()
        and ref[c].notna().any()
        and pd.concat([cur_df[c], ref[c]]).nunique() > 1
    ]
    flagged = {f.column for f in findings}
    summary = {
        "all": usable,
        "flagged": [c for c in usable if c in flagged],
        "none": [],
    }[config.report_summary]
    verdicts = {d.column: d for d in [*drifts, *([prediction] if prediction else [])]}
    return write_report(
        ref,
        cur_df,
        [c for c in numeric if c in usable],
        [c for c in categorical if c in usable],
        {},
        output_dir,
        task if with_target else None,
        target if with_target else None,
        summary,
        drift_share=config.drift_share,
        verdicts={c: v for c, v in verdicts.items() if c in usable},
        prediction=PREDICTION if prediction is not None else None,
        header=header,
    )


def write_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    methods: dict[str, str],
    output_dir: Path,
    task: str | None = None,
    target: str | None = None,
    summary: list[str] | None = None,
    drift_share: float = DriftConfig.drift_share,
    verdicts: dict[str, ColumnDrift] | None = None,
    prediction: str | None = None,
    header: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Run Evidently 0.7 on (already sanitised, bounded) frames; write ``report.html/.json``.

    The report's dataset-drift headline counts ``numeric`` and ``categorical`` only (the
    features) against ``drift_share``, so it states the same verdict as the result; with
    ``verdicts`` each column's score and decision are mlcycle's own (computed over the whole
    window) rather than Evidently's re-computation on the bounded sample. ``prediction``
    (a column of either list) is shown as its own drift section, not counted.

    Args:
        reference: reference sample.
        current: current sample.
        numeric: numeric columns to show (including ``prediction`` for regressors).
        categorical: categorical columns to show.
        methods: per-column Evidently method names, so the report uses the verdicts' methods.
        output_dir: where the files go.
        task: adds a classification or regression quality section when ``target`` is given.
        target: the label column, present in both frames.
        summary: columns of the data summary section (per-column statistics, missing
            values); none when empty or ``None``.
        drift_share: share of drifted features at or above which the headline says drift.
        verdicts: mlcycle's per-column results, shown as the report's scores and verdicts.
        prediction: the prediction column, reported beside the features but not counted.
        header: :func:`mlcycle.monitoring.report_header.decision`'s numbers, shown first in
            the page and kept under ``mlcycle`` in ``report.json``.

    Raises:
        MonitoringError: Evidently failed.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    output_dir.mkdir(parents=True, exist_ok=True)
    columns = [*numeric, *categorical]
    features = [c for c in columns if c != prediction]
    definition: dict[str, Any] = {
        "numerical_columns": list(numeric),
        "categorical_columns": list(categorical),
    }
    registered: list[str] = []
    methods = dict(methods)
    thresholds: dict[str, float] = {}
    for col, verdict in (verdicts or {}).items():
        if col in columns:
            methods[col] = register_verdict(verdict, registered)
            thresholds[col] = verdict.threshold
    items: list[Any] = [
        DataDriftPreset(
            columns=features,
            drift_share=drift_share,
            per_column_method={c: m for c, m in methods.items() if c in features} or None,
            per_column_threshold={c: t for c, t in thresholds.items() if c in features} or None,
        )
    ]
    if prediction and prediction in columns:
        items.append(
            ValueDrift(
                column=prediction,
                method=methods.get(prediction),
                threshold=thresholds.get(prediction),
            )
        )
    if summary:
        items.append(DataSummaryPreset(columns=[c for c in columns if c in summary]))
    keep = list(columns)
    if target and task and target in current.columns and target in reference.columns:
        from evidently import BinaryClassification, MulticlassClassification, Regression
        from evidently.presets import ClassificationPreset, RegressionPreset

        keep.append(target)
        if task == "classification":
            labels = sorted(pd.concat([reference[target], current[target]]).dropna().unique())
            if len(labels) <= 2:
                definition["classification"] = [
                    BinaryClassification(
                        target=target, prediction_labels=PREDICTION, pos_label=labels[-1]
                    )
                ]
            else:
                definition["classification"] = [
                    MulticlassClassification(target=target, prediction_labels=PREDICTION)
                ]
            items.append(ClassificationPreset())
        else:
            definition["regression"] = [Regression(target=target, prediction=PREDICTION)]
            items.append(RegressionPreset())
    keep = list(dict.fromkeys(keep))
    try:
        dd = DataDefinition(**definition)
        with lean_drift_report(hidden=features):
            snapshot = Report(items).run(
                Dataset.from_pandas(current[keep].reset_index(drop=True), data_definition=dd),
                Dataset.from_pandas(reference[keep].reset_index(drop=True), data_definition=dd),
            )
        html = output_dir / "report.html"
        first = report_header.widgets(header) if header else []
        html.write_text(safe_report_html(snapshot, first), encoding="utf-8")
        js = output_dir / "report.json"
        doc = {"mlcycle": header, **snapshot.dict()} if header else snapshot.dict()
        js.write_text(json.dumps(doc, default=str, indent=1))
    except Exception as exc:
        raise MonitoringError(f"the Evidently report failed: {exc}") from exc
    finally:
        unregister(registered)
    return html, js


#: Characters that must not appear raw inside an inline ``<script>``: ``</script>``,
#: ``<!--`` and ``]]>`` end or change the script element, U+2028/9 end a JS line.
_SCRIPT_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_SCRIPT_UNSAFE = re.compile("[<>&\u2028\u2029]")


def script_json(value: Any) -> str:
    """JSON that is safe inside an HTML ``<script>`` element (same value once parsed).

    Every ``<``, ``>``, ``&`` and line separator is written as a ``\\uXXXX`` escape, which
    JSON and JavaScript read back as the same character, so no string from traffic can close
    the element or open a comment, whatever it contains.
    """
    text = json.dumps(value, cls=_report_encoder())
    return _SCRIPT_UNSAFE.sub(lambda m: _SCRIPT_ESCAPES[m.group()], text)


def _report_encoder() -> type[json.JSONEncoder]:
    """Evidently's ``NumpyEncoder`` that also writes its (pydantic v1) models as ``.dict()``.

    ``.dict()`` walks every value of a model in Python, figures' data included; the encoder
    walks them in C and asks only for each model's fields (what ``.dict()`` would give:
    a model with field exclusions or its own ``dict`` still goes through it).
    """
    from evidently._pydantic_compat import BaseModel
    from evidently.legacy.utils import NumpyEncoder

    class ReportEncoder(NumpyEncoder):
        def default(self, o: Any) -> Any:
            if isinstance(o, BaseModel):
                return _fields(o, BaseModel)
            return super().default(o)

    return ReportEncoder


def _fields(model: Any, base: type) -> dict[str, Any]:
    """``model.dict()`` one level deep (the JSON encoder converts what it holds)."""
    plain = type(model).dict is base.dict  # type: ignore[attr-defined]
    if plain and not model.__exclude_fields__ and not model.__include_fields__:
        return dict(model.__dict__)
    return model.dict()


def safe_report_html(snapshot: Any, first: list[Any] | None = None) -> str:
    """The standalone HTML of an Evidently snapshot, with its data escaped for ``<script>``.

    ``first``: widgets shown above the snapshot's (:mod:`mlcycle.monitoring.report_header`).

    Evidently 0.7 embeds the report data with plain ``json.dumps``, so a logged value such as
    ``</script><img onerror=…>`` ends the script and runs. This renders the same page with
    Evidently's own template but writes the data block with :func:`script_json`.
    """
    import uuid

    from evidently._pydantic_compat import BaseModel
    from evidently.legacy.model.dashboard import DashboardInfo
    from evidently.legacy.model.widget import AdditionalGraphInfo
    from evidently.legacy.renderers.base_renderer import DetailsInfo
    from evidently.legacy.renderers.html_widgets import group_widget
    from evidently.legacy.utils.dashboard import TemplateParams, file_html_template

    widgets = [
        *(first or []),
        group_widget(title="", widgets=snapshot._widgets),
        *snapshot._tests_widgets,
    ]
    graphs: dict[str, Any] = {}
    for info in widgets:
        for extra in info.get_additional_graphs():
            params = extra.params if isinstance(extra, AdditionalGraphInfo) else extra
            item = DetailsInfo(title="", info=params, id=extra.id)
            graphs[str(item.id)] = item.info  # written as .dict() by script_json
    dashboard_id = "metric_" + uuid.uuid4().hex
    # DashboardInfo(...).dict() without the top widgets' additional graphs (written apart).
    dashboard = _fields(DashboardInfo(name="Report", widgets=widgets), BaseModel)
    dashboard["widgets"] = [_fields(w, BaseModel) for w in dashboard["widgets"]]
    for widget in dashboard["widgets"]:
        widget.pop("additionalGraphs", None)
    placeholder = "<!-- no embedded data -->"
    page = file_html_template(
        TemplateParams(
            dashboard_id=dashboard_id,
            dashboard_info=DashboardInfo(name="Report", widgets=[]),
            additional_graphs={},
            embed_data=False,
        )
    )
    if page.count(placeholder) != 1:
        raise MonitoringError("this Evidently version's HTML template is not the expected one")
    data = (
        f"<script>\n    var {dashboard_id} = {script_json(dashboard)};\n"
        f"    var additional_graphs_{dashboard_id} = {script_json(graphs)};\n</script>"
    )
    return page.replace(placeholder, data)
