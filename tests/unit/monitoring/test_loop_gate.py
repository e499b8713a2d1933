"""``mlcycle loop`` and ``monitor`` take the retrain gate's policy (--gate-*), like ``promote``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from mlcycle.cli import cli
from mlcycle.data import SCENARIO_TARGET, make_scenario


@pytest.mark.slow
def test_loop_gate_options_reach_the_gate_of_the_retrained_challenger(
    champion, predictor, log_writer, tmp_path: Path, monkeypatch
):
    from mlcycle import register as reg

    # A drifted, labelled day: the last complete window of `--every 1d`.
    day = pd.Timestamp.now(tz="UTC").floor("1D") - pd.Timedelta(days=1)
    frame = predictor(
        champion, make_scenario(1500, "covariate", seed=5, start=f"{day:%Y-%m-%d}", days=1)
    )
    logged = log_writer(champion.log_root, champion.name, champion.version, frame)
    labels = tmp_path / "labels.parquet"
    pd.DataFrame(
        {"request_id": logged["request_id"], SCENARIO_TARGET: frame[SCENARIO_TARGET]}
    ).to_parquet(labels, index=False)
    monkeypatch.setenv("MLCYCLE_INFERENCE_LOG", str(champion.log_root))

    # No roc_auc reaches 1.5: an enabled gate would keep the challenger; dry_run promotes it
    # and records the failed decision.
    res = CliRunner().invoke(
        cli,
        [
            "loop", "--model", champion.name, "--once", "--every", "1d",
            "--labels", str(labels), "--bad-windows", "1", "--of-last", "1",
            "--output", str(tmp_path / "reports"),
            "--gate-mode", "dry_run", "--gate-min-score", "1.5",
        ],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "decision=retrain" in res.output and "promoted to @champion" in res.output

    client = champion.client
    challenger = client.get_model_version(champion.name, "2")
    assert challenger.tags["mlcycle.gate.passed"] == "false"
    audit = client.get_run(challenger.tags["mlcycle.gate.audit_run_id"])
    assert audit.data.tags["mlcycle.gate.mode"] == "dry_run"
    assert "min_score" in audit.data.tags["mlcycle.gate.reasons"]
    assert reg.champion_version(client, champion.name) == "2"


def test_a_bad_gate_mode_is_a_usage_error():
    res = CliRunner().invoke(cli, ["loop", "--model", "m", "--gate-mode", "sometimes"])
    assert res.exit_code == 2 and "sometimes" in res.output


def test_a_bad_gate_latency_is_refused_before_any_window_is_read(own_mlflow: str, tmp_path):
    res = CliRunner().invoke(
        cli,
        ["monitor", "--model", "nope", "--current", str(tmp_path / "absent.parquet"),
         "--gate-max-latency-ms", "-1"],
    )  # fmt: skip
    assert res.exit_code == 1
    assert "max_latency_ms_per_row must be positive" in res.output
    assert "absent" not in res.output
