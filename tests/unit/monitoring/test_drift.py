"""Detect: verdicts on the scenario's known drift, and a finding for every kind of bad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle.data import SCENARIO_DRIFT
from mlcycle.monitoring import DriftConfig, analyse_window

UNTOUCHED = ("age", "tenure_months", "support_calls", "contract", "payment_method")


def _kinds(result, column: str) -> set[str]:
    return {f.kind for f in result.findings if f.column == column}


def test_drift_is_detected_on_the_shifted_columns_and_only_there(
    scenario_reference, covariate_window
):
    result = analyse_window(scenario_reference, covariate_window)
    assert result.status == "drift"
    assert set(result.drifted) == set(SCENARIO_DRIFT["covariate"])
    assert not set(result.drifted) & set(UNTOUCHED)
    methods = {c.column: c.method for c in result.columns}
    assert methods["monthly_charges"] == "wasserstein" and methods["region"] == "jensenshannon"


def test_a_window_like_the_reference_shows_no_drift(scenario_reference, reference_window):
    result = analyse_window(scenario_reference, reference_window)
    assert result.status == "ok" and result.drifted == []
    assert result.prediction is not None and not result.prediction.drifted


def test_labels_give_quality_metrics_and_a_quality_drop(scenario_reference, covariate_window):
    cur = covariate_window.copy()
    cur["prediction"] = np.where(np.arange(len(cur)) % 5 == 0, 1 - cur["churned"], cur["churned"])
    result = analyse_window(scenario_reference, cur)
    assert result.quality["accuracy"] == pytest.approx(0.8)


def test_per_column_methods_are_honoured_including_evidently_sample_tests(
    scenario_reference, covariate_window
):
    cfg = DriftConfig(
        per_column_method={"age": "psi", "tenure_months": "ks", "contract": "chisquare"}
    )
    result = analyse_window(scenario_reference, covariate_window, cfg)
    by = {c.column: c for c in result.columns}
    assert by["age"].method == "psi" and not by["age"].drifted
    assert by["tenure_months"].method == "ks" and not by["tenure_months"].drifted
    assert by["contract"].method == "chisquare"
    assert by["monthly_charges"].drifted


@pytest.mark.parametrize("rows", [0, 10])
def test_an_empty_or_tiny_window_is_insufficient_data(
    scenario_reference, covariate_window, rows, tmp_path: Path
):
    result = analyse_window(scenario_reference, covariate_window.head(rows), output_dir=tmp_path)
    assert result.status == "insufficient_data"
    assert result.columns == () and result.report_html is None
    assert _kinds(result, "*") == {"insufficient_data"}


def test_an_empty_frame_without_columns_is_insufficient_data(scenario_reference):
    assert analyse_window(scenario_reference, pd.DataFrame()).status == "insufficient_data"


def test_an_all_missing_column_is_a_finding_and_the_rest_is_analysed(
    scenario_reference, covariate_window, tmp_path
):
    cur = covariate_window.copy()
    cur["age"] = np.nan
    result = analyse_window(scenario_reference, cur, output_dir=tmp_path)
    assert "all_missing" in _kinds(result, "age")
    assert "age" not in {c.column for c in result.columns}
    assert set(result.drifted) == set(SCENARIO_DRIFT["covariate"])
    assert Path(result.report_html).exists()


def test_a_constant_column_is_a_finding_and_still_judged(
    scenario_reference, reference_window, tmp_path
):
    cur = reference_window.copy()
    cur["support_calls"] = 3
    cur["contract"] = "two-year"
    result = analyse_window(scenario_reference, cur, output_dir=tmp_path)
    assert "constant" in _kinds(result, "support_calls")
    assert "constant" in _kinds(result, "contract")
    assert {"support_calls", "contract"} <= set(result.drifted)
    assert Path(result.report_html).exists()


def test_missing_and_extra_columns_are_findings(scenario_reference, covariate_window, tmp_path):
    cur = covariate_window.drop(columns=["region"]).assign(surprise=1.0)
    result = analyse_window(scenario_reference, cur, output_dir=tmp_path)
    assert "missing_column" in _kinds(result, "region")
    assert any(f.kind == "extra_columns" and "surprise" in f.column for f in result.findings)
    assert set(result.drifted) == {"monthly_charges", "data_usage_gb"}


def test_the_logs_probability_columns_are_not_extra_columns(
    scenario_reference, covariate_window, tmp_path
):
    # Traffic scored with predict_proba logs proba_<class> beside prediction: the server's
    # output, not a column the reference lacks. A user column outside the reference still is.
    cur = covariate_window.assign(proba_0=0.4, proba_1=0.6, surprise=1.0)
    result = analyse_window(scenario_reference, cur, output_dir=tmp_path)
    (extra,) = [f.column.split(",") for f in result.findings if f.kind == "extra_columns"]
    assert "surprise" in extra
    assert not [c for c in extra if c.startswith("proba_")]


def test_numbers_arriving_as_strings_are_parsed_and_reported(
    scenario_reference, reference_window, tmp_path
):
    cur = reference_window.copy()
    cur["age"] = cur["age"].astype(str)
    cur.loc[cur.index[:5], "age"] = "n/a"
    result = analyse_window(scenario_reference, cur, output_dir=tmp_path)
    assert "type_mismatch" in _kinds(result, "age")
    assert "5 value(s)" in next(f.detail for f in result.findings if f.column == "age")
    age = next(c for c in result.columns if c.column == "age")
    assert not age.drifted


def test_infinities_are_reported_and_treated_as_missing(
    scenario_reference, reference_window, tmp_path
):
    cur = reference_window.copy()
    cur["data_usage_gb"] = cur["data_usage_gb"].astype(float)
    cur.loc[cur.index[:50], "data_usage_gb"] = np.inf
    cur.loc[cur.index[50:60], "data_usage_gb"] = -np.inf
    result = analyse_window(scenario_reference, cur, output_dir=tmp_path)
    assert "infinite_values" in _kinds(result, "data_usage_gb")
    assert "data_usage_gb" in {c.column for c in result.columns}
    assert Path(result.report_html).exists()


def test_a_column_that_became_mostly_missing_is_a_finding(scenario_reference, reference_window):
    cur = reference_window.copy()
    cur.loc[cur.index[: int(len(cur) * 0.9)], "tenure_months"] = np.nan
    result = analyse_window(scenario_reference, cur)
    assert "missing_share" in _kinds(result, "tenure_months")


def test_new_categories_and_out_of_range_values_are_findings(scenario_reference, reference_window):
    cur = reference_window.copy()
    cur.loc[cur.index[:500], "region"] = "mars"
    cur.loc[cur.index[:500], "age"] = 150
    result = analyse_window(scenario_reference, cur)
    assert "new_categories" in _kinds(result, "region")
    assert "out_of_range" in _kinds(result, "age")


def test_the_report_is_written_as_html_and_json(scenario_reference, covariate_window, tmp_path):
    result = analyse_window(scenario_reference, covariate_window, output_dir=tmp_path)
    doc = json.loads(Path(result.report_json).read_text())
    names = " ".join(m["metric_name"] for m in doc["metrics"])
    assert "ValueDrift(column=monthly_charges" in names and "DriftedColumnsCount" in names
    assert result.metrics()["drift_share"] == pytest.approx(3 / 8)


def test_the_report_opens_with_mlcycles_own_numbers_over_the_whole_window(
    scenario_reference, covariate_window, tmp_path
):
    # Evidently's sections run on 5,000-row samples (its dataset summary says 5,000 rows, its
    # quality compares in-sample training predictions); the page and report.json first state
    # what the CLI printed and the policy reads.
    cur = covariate_window.copy()
    cur["prediction"] = np.where(np.arange(len(cur)) % 5 == 0, 1 - cur["churned"], cur["churned"])
    result = analyse_window(scenario_reference, cur, output_dir=tmp_path)
    assert result.rows > 5_000 and result.labelled_rows == len(cur)
    head = json.loads(Path(result.report_json).read_text())["mlcycle"]
    assert head["window_rows"] == result.rows and head["reference_rows"] == result.reference_rows
    assert head["features_drifted"] == len(result.drifted) == 3
    assert head["drift_share"] == result.drift_share
    assert head["quality"] == result.quality and head["quality_drop"] == result.quality_drop
    assert head["labelled_rows"] == len(cur)
    assert head["report_sample_rows"] == {"current": 5_000, "reference": 5_000}
    page = Path(result.report_html).read_text()
    assert page.index(f"{result.rows:,}") < page.index("Dataset Drift")
    ref = result.reference_quality.get("accuracy")
    shown = f"{ref:.3f} → 0.800" if ref is not None else "0.800"
    assert json.dumps(shown)[1:-1] in page  # as the page's JSON writes it
    assert "mlcycle's decision, over every row of the window" in page


def test_the_reports_first_section_holds_numbers_not_text_from_traffic(
    scenario_reference, covariate_window
):
    # Column names come from logged traffic; the header's widgets carry none of them (the
    # drift table below shows them through Evidently's escaped data block).
    from mlcycle.monitoring import report_header

    result = analyse_window(scenario_reference, covariate_window)
    doc = report_header.decision(result, DriftConfig(), 5_000, 5_000, 0)
    texts = []
    for w in report_header.widgets(doc):
        params = w.params or {}
        texts += [w.title, params.get("text", "")]
        texts += [f"{c['label']} {c['value']}" for c in params.get("counters", [])]
    shown = " | ".join(texts)
    assert result.drifted and not any(c.column in shown for c in result.columns)
    assert f"{result.rows:,}" in shown
