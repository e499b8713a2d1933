"""The Evidently report opens in headless Chromium and shows the drift table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, infer_spec, make_scenario
from mlcycle.monitoring import DriftConfig, analyse_window, reference_from_frame

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_html_report_renders_the_drift_table_in_chromium(tmp_path: Path):
    from testkit import chromium, dump_dom, need

    exe = chromium()
    need(exe is not None, "Debian's chromium is not installed (apt-get install chromium)")
    ref = make_scenario(3000, "reference", seed=1)
    spec = infer_spec(ref, SCENARIO_TARGET, time_column=SCENARIO_TIME)
    ref["prediction"] = ref[SCENARIO_TARGET]
    cur = make_scenario(3000, "covariate", seed=2)
    cur["prediction"] = cur[SCENARIO_TARGET]
    result = analyse_window(
        reference_from_frame(ref, spec=spec), cur, output_dir=tmp_path / "report"
    )
    html = Path(result.report_html)

    dom = dump_dom(exe, html, tmp_path / "profile")
    assert "<table" not in html.read_text()  # the table exists only once the page's JS ran
    rows = {}
    for row in re.findall(r"<tr.*?</tr>", dom, flags=re.S):
        words = re.sub(r"<[^>]+>", " ", row).split()
        if words:
            rows[words[0]] = " ".join(words)
    for column in ("monthly_charges", "data_usage_gb", "region"):
        assert "Detected" in rows[column] and "Not Detected" not in rows[column]
    for column in ("age", "tenure_months", "contract"):
        assert "Not Detected" in rows[column]


@pytest.mark.parametrize("share", [0.3, 0.5])
def test_the_rendered_headline_states_the_verdict_over_features_only(tmp_path: Path, share):
    from testkit import chromium, dump_dom, need

    exe = chromium()
    need(exe is not None, "Debian's chromium is not installed (apt-get install chromium)")
    ref = make_scenario(3000, "reference", seed=1)
    spec = infer_spec(ref, SCENARIO_TARGET, time_column=SCENARIO_TIME)
    ref["prediction"] = ref[SCENARIO_TARGET]
    cur = make_scenario(3000, "covariate", seed=2)
    cur["prediction"] = cur[SCENARIO_TARGET]
    result = analyse_window(
        reference_from_frame(ref, spec=spec),
        cur,
        DriftConfig(drift_share=share),
        output_dir=tmp_path / "report",
    )
    assert len(result.drifted) == 3 and len(result.columns) == 8
    text = " ".join(
        re.sub(r"<[^>]+>", " ", dump_dom(exe, Path(result.report_html), tmp_path / "p")).split()
    )
    if result.status == "drift":
        assert "Dataset Drift is detected" in text
    else:
        assert "Dataset Drift is NOT detected" in text
    assert result.status == ("drift" if share == 0.3 else "ok")
    assert f"Dataset drift detection threshold is {share}" in text
    # Features only: 3 of 8 columns, not 4 of 9 with the prediction.
    assert re.search(r"\b3\b[^.]{0,40}\b8\b", text), text[:3000]
