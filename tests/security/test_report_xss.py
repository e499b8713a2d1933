"""Issue 10 item 5: a value from scoring traffic cannot run script in the drift report.

The attack: unauthenticated scoring input such as ``"region": "</script><img src=x
onerror=…>"`` lands in the inference log, then in the Evidently ``report.html`` inside its
``<script>`` JSON. The payloads below each try to change the page (set ``document.title`` or
add an element); Chromium renders the report and the dumped DOM must show none of it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, infer_spec, make_scenario
from mlcycle.monitoring import analyse_window, reference_from_frame
from mlcycle.monitoring.report import script_json

PAYLOADS = [
    "</script><img src=x onerror=\"document.title='PWNED-img'\">",
    "</SCRIPT><script>document.body.insertAdjacentHTML('beforeend','<b id=pwned-b></b>')</script>",
    "<!--<script>document.title='PWNED-comment'</script>",
    "<svg/onload=document.title='PWNED-svg'>",
    "<a href=\"javascript:document.title='PWNED-a'\">x</a>",
]


def _window_with_payloads(n: int = 1200) -> tuple[Any, pd.DataFrame]:
    ref = make_scenario(n, "reference", seed=1)
    spec = infer_spec(ref, SCENARIO_TARGET, time_column=SCENARIO_TIME)
    ref["prediction"] = ref[SCENARIO_TARGET]
    cur = make_scenario(n, "covariate", seed=2)
    cur["prediction"] = cur[SCENARIO_TARGET]
    # Hostile values in a categorical feature, as a client would send them for scoring; many
    # copies so they survive the report's sampling and show in its category plots.
    cur["region"] = cur["region"].astype("object")
    for i, p in enumerate(PAYLOADS):
        cur.loc[cur.index[i::7][:60], "region"] = p
    return reference_from_frame(ref, spec=spec), cur


def test_script_json_escapes_every_markup_character():
    text = script_json({"v": PAYLOADS[0] + "\u2028&"})
    assert "<" not in text and ">" not in text and "&" not in text
    import json

    assert json.loads(text)["v"] == PAYLOADS[0] + "\u2028&"  # the same value once parsed


def test_report_html_has_no_closing_script_tag_from_traffic(tmp_path: Path):
    ref, cur = _window_with_payloads()
    result = analyse_window(ref, cur, output_dir=tmp_path)
    page = Path(result.report_html).read_text()
    for payload in PAYLOADS:
        assert payload not in page
    # The data block (the only place traffic values go) holds no markup character at all.
    data = re.search(r"<script>\s*var (metric_\w+) = (.*?)</script>", page, flags=re.S)
    assert data is not None
    assert "<" not in data.group(2) and ">" not in data.group(2)
    assert "onerror" in data.group(2)  # the values are there, escaped, not dropped


@pytest.mark.browser
@pytest.mark.slow
def test_payload_does_not_run_when_chromium_opens_the_report(tmp_path: Path):
    from testkit import chromium, dump_dom, need

    exe = chromium()
    need(exe is not None, "Debian's chromium is not installed (apt-get install chromium)")
    ref, cur = _window_with_payloads()
    result = analyse_window(ref, cur, output_dir=tmp_path / "r")
    html = Path(result.report_html)
    dom = dump_dom(exe, html, tmp_path / "profile")
    title = re.search(r"<title>(.*?)</title>", dom, flags=re.S)
    assert "PWNED" not in (title.group(1) if title else "")
    assert 'id="pwned-b"' not in dom and "<img" not in dom.lower()
    # The report itself rendered (its drift table is built by the page's script).
    assert "<table" in dom and "region" in dom
