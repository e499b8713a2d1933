"""``mlcycle monitor`` and ``mlcycle loop`` in-process."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mlcycle.cli import cli
from mlcycle.data import make_scenario


def test_monitor_on_a_file_prints_the_drifted_columns_and_the_report(
    champion, predictor, tmp_path: Path
):
    frame = predictor(champion, make_scenario(800, "covariate", seed=7))
    path = tmp_path / "window.parquet"
    frame.to_parquet(path, index=False)
    res = CliRunner().invoke(
        cli,
        [
            "monitor",
            "--model",
            champion.name,
            "--current",
            str(path),
            "--output",
            str(tmp_path / "rep"),
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert "status=drift" in res.output and "monthly_charges" in res.output
    assert "report.html" in res.output and "decision" in res.output

    res = CliRunner().invoke(
        cli,
        ["monitor", "--model", champion.name, "--current", str(path), "--json"],
        catch_exceptions=False,
    )
    doc = json.loads(res.output)
    assert set(doc["result"]["drifted"]) == {"monthly_charges", "data_usage_gb", "region"}


def test_loop_once_on_an_empty_log_reports_insufficient_data(champion, monkeypatch):
    champion.log_root.mkdir(parents=True, exist_ok=True)  # empty, but there
    monkeypatch.setenv("MLCYCLE_INFERENCE_LOG", str(champion.log_root))
    res = CliRunner().invoke(
        cli, ["loop", "--model", champion.name, "--once", "--every", "10m"], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    assert "status=insufficient_data" in res.output and "decision=none" in res.output


def test_an_unknown_model_is_a_clean_error():
    res = CliRunner().invoke(cli, ["monitor", "--model", "nope", "--since", "2026-01-01"])
    assert res.exit_code == 1 and "nope" in res.output


def test_a_bad_period_is_a_usage_error():
    res = CliRunner().invoke(cli, ["loop", "--model", "m", "--every", "soon"])
    assert res.exit_code == 2


def test_monitor_engine_arrow_streams_a_log_window(
    champion, predictor, log_writer, tmp_path: Path, monkeypatch
):
    frame = predictor(champion, make_scenario(800, "covariate", seed=7, start="2026-03-01", days=1))
    log_writer(champion.log_root, champion.name, champion.version, frame)
    monkeypatch.setenv("MLCYCLE_INFERENCE_LOG", str(champion.log_root))
    res = CliRunner().invoke(
        cli,
        [
            "monitor",
            "--model",
            champion.name,
            "--since",
            "2026-03-01",
            "--until",
            "2026-03-02",
            "--engine",
            "arrow",
            "--output",
            str(tmp_path / "rep"),
            "--json",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["result"]["rows"] == 800
    assert set(doc["result"]["drifted"]) == {"monthly_charges", "data_usage_gb", "region"}


def test_an_unknown_engine_is_a_usage_error():
    res = CliRunner().invoke(cli, ["monitor", "--model", "m", "--engine", "dask"])
    assert res.exit_code == 2 and "dask" in res.output
