"""The Evidently report opens in headless Chromium and shows the drift table."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, infer_spec, make_scenario
from mlcycle.monitoring import analyse_window, reference_from_frame

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_html_report_renders_the_drift_table_in_chromium(tmp_path: Path):
    from testkit import need

    exe = _chromium()
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

    proc = subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "<table" not in html.read_text()  # the table exists only once the page's JS ran
    rows = {}
    for row in re.findall(r"<tr.*?</tr>", proc.stdout, flags=re.S):
        words = re.sub(r"<[^>]+>", " ", row).split()
        if words:
            rows[words[0]] = " ".join(words)
    for column in ("monthly_charges", "data_usage_gb", "region"):
        assert "Detected" in rows[column] and "Not Detected" not in rows[column]
    for column in ("age", "tenure_months", "contract"):
        assert "Not Detected" in rows[column]
