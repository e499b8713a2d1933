"""``mlcycle monitor`` and ``mlcycle loop`` in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
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
    assert res.output.startswith("[window file] ")  # what it read: the --current file
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


def test_monitor_since_over_a_whole_log_run_says_the_data_is_already_monitored(
    champion, predictor, log_writer, tmp_path: Path, monkeypatch
):
    frame = predictor(champion, make_scenario(600, "covariate", seed=7, start="2026-03-01", days=1))
    log_writer(champion.log_root, champion.name, champion.version, frame)
    monkeypatch.setenv("MLCYCLE_INFERENCE_LOG", str(champion.log_root))
    base = ["monitor", "--model", champion.name, "--output", str(tmp_path / "rep")]
    whole = CliRunner().invoke(cli, base, catch_exceptions=False)
    assert whole.exit_code == 0 and "rows=600 status=drift" in whole.output, whole.output
    # Issue 13: a log read is labelled with the range it covered, never "[window file]".
    assert whole.output.startswith("[window 2026-03-01T"), whole.output
    day = ["--since", "2026-03-01", "--until", "2026-03-02"]
    again = CliRunner().invoke(cli, [*base, *day], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert "skipped: already monitored" in again.output and "rows=" not in again.output
    # Data on both sides of the monitored range: refused, naming the ranges to monitor.
    later = predictor(champion, make_scenario(300, "covariate", seed=8, start="2026-03-03", days=1))
    log_writer(champion.log_root, champion.name, champion.version, later)
    earlier = predictor(
        champion, make_scenario(300, "covariate", seed=9, start="2026-02-27", days=1)
    )
    log_writer(champion.log_root, champion.name, champion.version, earlier)
    both = CliRunner().invoke(cli, [*base, "--since", "2026-02-20", "--until", "2026-03-05"])
    assert both.exit_code == 1 and "already monitored" in both.output
    assert "--since 2026-02-20T00:00:00Z --until 2026-03-01" in both.output, both.output


def test_a_retrain_decision_not_acted_on_says_why(
    champion, predictor, log_writer, tmp_path: Path, monkeypatch
):
    """decision=retrain without a retrain names the reason: no --retrain, or too few labels."""
    frame = predictor(champion, make_scenario(600, "covariate", seed=7, start="2026-03-01", days=1))
    log_writer(champion.log_root, champion.name, champion.version, frame)
    monkeypatch.setenv("MLCYCLE_INFERENCE_LOG", str(champion.log_root))
    base = ["monitor", "--model", champion.name, "--output", str(tmp_path / "rep")]
    policy = ["--bad-windows", "1", "--of-last", "1"]
    day = ["--since", "2026-03-01T00:00", "--until", "2026-03-01T12:00"]
    res = CliRunner().invoke(cli, [*base, *policy, *day], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "decision=retrain (not acted on: retrain disabled, --retrain enables it)" in res.output
    rest = ["--since", "2026-03-01T12:00", "--until", "2026-03-02"]
    res = CliRunner().invoke(cli, [*base, *policy, *rest, "--retrain"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "decision=retrain (not acted on: 0 labelled rows; 50 needed to retrain)" in res.output
    assert "promoted" not in res.output


def test_a_scheduled_monitor_run_does_not_import_the_training_stage(
    champion, predictor, log_writer, tmp_path: Path
):
    # What cron starts on every window: a fresh process reading the inference log. The report
    # imports Evidently (which brings scikit-learn itself), but mlcycle's trainer is only for
    # --retrain.
    frame = predictor(champion, make_scenario(300, "covariate", seed=7, start="2026-03-01", days=1))
    log_writer(champion.log_root, champion.name, champion.version, frame)
    args = ["monitor", "--model", champion.name, "--output", str(tmp_path / "rep")]
    code = textwrap.dedent(
        f"""
        import json, sys
        from mlcycle.cli import cli
        cli({args!r}, prog_name="mlcycle", standalone_mode=False)
        print(json.dumps([m for m in ("mlcycle.train", "evidently") if m in sys.modules]))
        """
    )
    env = {**os.environ, "MLCYCLE_INFERENCE_LOG": str(champion.log_root)}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert "rows=300 status=drift" in res.stdout, res.stdout
    assert json.loads(res.stdout.splitlines()[-1]) == ["evidently"]


def test_loop_exits_0_on_sigterm_after_its_window_instead_of_dying(champion, monkeypatch):
    # docker stop, Kubernetes and systemd send SIGTERM: the loop finishes the window in
    # progress, ends its wait for the next one at once and exits 0 (Python's default: -15).
    import signal
    import time

    champion.log_root.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("MLCYCLE_INFERENCE_LOG", str(champion.log_root))
    mlcycle = [sys.executable, "-m", "mlcycle"]
    proc = subprocess.Popen(
        [*mlcycle, "loop", "--model", champion.name, "--every", "1h"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # the first window, then the loop waits an hour
            lines.append(line)
            if "status=" in line:
                break
        assert any("status=insufficient_data" in line for line in lines), lines
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "stopped by SIGTERM" in err
        assert time.monotonic() - started < 30  # not the hour's wait
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
