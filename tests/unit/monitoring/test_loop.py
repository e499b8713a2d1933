"""The whole monitoring pass on a real store: log → detect → decide → retrain → gate."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest

from mlcycle.data import SCENARIO_DRIFT, SCENARIO_TARGET, make_scenario
from mlcycle.monitoring import EXPERIMENT, RetrainOutcome, RetrainPolicy, Window, run_once

ONE_OF_ONE = RetrainPolicy(bad_windows=1, of_last=1)


def _drifted_day(champion, predictor, log_writer, day: str = "2026-03-01", rows: int = 1500):
    frame = predictor(champion, make_scenario(rows, "covariate", seed=5, start=day, days=1))
    logged = log_writer(champion.log_root, champion.name, champion.version, frame)
    labels = pd.DataFrame(
        {"request_id": logged["request_id"], SCENARIO_TARGET: frame[SCENARIO_TARGET]}
    )
    return Window.of(day, pd.Timestamp(day) + pd.Timedelta(days=1)), labels


@pytest.mark.slow
def test_a_drifted_window_is_logged_and_retrains_a_linked_challenger(
    champion, predictor, log_writer, tmp_path: Path
):
    from mlcycle import register as reg

    window, labels = _drifted_day(champion, predictor, log_writer)
    out = run_once(
        champion.client,
        champion.settings,
        champion.name,
        window=window,
        labels=labels,
        policy=ONE_OF_ONE,
        output_dir=tmp_path / "reports",
    )
    assert out.result is not None and out.result.status == "drift"
    assert set(out.result.drifted) == set(SCENARIO_DRIFT["covariate"])
    assert out.result.quality and "accuracy" in out.result.quality
    assert out.decision is not None and out.decision.retrain
    assert out.retrain is not None and out.retrain.version == "2"
    assert out.retrain.rows["production"] == 1500

    client = champion.client
    run = client.get_run(out.run_id)
    assert run.data.tags["mlcycle.model"] == champion.name
    assert run.data.tags["mlcycle.model_version"] == champion.version
    assert run.data.tags["mlcycle.decision"] == "retrain"
    assert run.data.tags["mlcycle.retrain.run_id"] == out.retrain.run_id
    assert run.data.tags["mlcycle.retrain.version"] == "2"
    assert "drift_score/monthly_charges" in run.data.metrics
    assert "drift_share" in run.data.metrics
    assert client.get_run(out.retrain.run_id).data.tags["mlcycle.monitoring_run_id"] == out.run_id
    # The retrained challenger's run shows the same plots as any training run.
    assert {a.path for a in client.list_artifacts(out.retrain.run_id, "plots")} >= {
        "plots/confusion_matrix.svg",
        "plots/roc_curve.svg",
    }
    mv = client.get_model_version(champion.name, "2")
    assert mv.tags["mlcycle.monitoring_run_id"] == out.run_id
    if out.retrain.promoted:
        from mlcycle.register.audit import history

        last = history(client, champion.name)[-1]
        assert last.to_version == "2" and last.reason is not None
        assert out.run_id in last.reason and window.key in last.reason
    assert {a.path for a in client.list_artifacts(out.run_id, "report")} == {
        "report/report.html",
        "report/report.json",
    }
    expected = "2" if out.retrain.promoted else champion.version
    assert reg.champion_version(client, champion.name) == expected


def test_a_window_monitored_twice_at_once_retrains_once(
    champion, predictor, log_writer, tmp_path: Path
):
    window, labels = _drifted_day(champion, predictor, log_writer, rows=400)
    calls: list[str] = []

    def fake_retrain(client, name, ref, current, **kwargs) -> RetrainOutcome:
        calls.append(kwargs["monitoring_run_id"])
        return RetrainOutcome(run_id="r", version="9", promoted=False)

    outcomes = []

    def go() -> None:
        outcomes.append(
            run_once(
                champion.client,
                champion.settings,
                champion.name,
                window=window,
                labels=labels,
                policy=ONE_OF_ONE,
                output_dir=tmp_path / "reports",
                retrain_fn=fake_retrain,
                lock_dir=tmp_path / "locks",
            )
        )

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(o.skipped is None for o in outcomes) == [False, True]
    # and a third pass later finds the window done
    again = run_once(
        champion.client,
        champion.settings,
        champion.name,
        window=window,
        labels=labels,
        policy=ONE_OF_ONE,
        retrain_fn=fake_retrain,
        lock_dir=tmp_path / "locks",
    )
    assert again.skipped and len(calls) == 1


def test_an_empty_window_is_insufficient_data_and_never_retrains(champion, tmp_path: Path):
    champion.log_root.mkdir(parents=True, exist_ok=True)  # the log exists, the window is empty
    calls = []
    out = run_once(
        champion.client,
        champion.settings,
        champion.name,
        window=Window.of("2030-01-01", "2030-01-02"),
        policy=ONE_OF_ONE,
        output_dir=tmp_path / "reports",
        retrain_fn=lambda *a, **k: calls.append(1),
    )
    assert out.result is not None and out.result.status == "insufficient_data"
    assert out.decision is not None and not out.decision.retrain
    assert not calls
    run = champion.client.get_run(out.run_id)
    assert run.data.tags["mlcycle.status"] == "insufficient_data"
    assert champion.client.get_experiment(run.info.experiment_id).name == EXPERIMENT


def test_the_policy_counts_earlier_windows_of_the_same_version(
    champion, predictor, log_writer, tmp_path: Path
):
    policy = RetrainPolicy(bad_windows=2, of_last=3)
    calls = []
    decisions = []
    for day in ("2026-03-01", "2026-03-02"):
        window, labels = _drifted_day(champion, predictor, log_writer, day=day, rows=300)
        out = run_once(
            champion.client,
            champion.settings,
            champion.name,
            window=window,
            labels=labels,
            policy=policy,
            retrain_fn=lambda *a, **k: calls.append(1) or RetrainOutcome("r", "9", False),
            lock_dir=tmp_path / "locks",
        )
        decisions.append(out.decision.retrain)
    assert decisions == [False, True]
    assert len(calls) == 1
    steps = champion.client.get_metric_history(out.run_id, "drift_share")
    assert [m.step for m in steps] == [1]


@pytest.mark.slow
def test_rerunning_a_whole_log_monitor_counts_no_data_twice(
    champion, predictor, log_writer, tmp_path: Path
):
    from mlcycle.monitoring import record

    _drifted_day(champion, predictor, log_writer, "2026-03-01", rows=600)
    kw = dict(policy=ONE_OF_ONE, allow_retrain=False, output_dir=tmp_path / "r")
    first = run_once(champion.client, champion.settings, champion.name, **kw)
    assert first.result is not None and first.result.rows == 600 and first.source == "log"
    again = run_once(champion.client, champion.settings, champion.name, **kw)
    assert again.result is None and again.skipped and "already monitored" in again.skipped
    exp = champion.client.get_experiment_by_name(EXPERIMENT).experiment_id
    assert len(record.history(champion.client, exp, champion.name, champion.version)) == 1
    # New traffic: only what is new is monitored.
    _drifted_day(champion, predictor, log_writer, "2026-03-02", rows=400)
    third = run_once(champion.client, champion.settings, champion.name, **kw)
    assert third.result is not None and third.result.rows == 400
    assert len(record.history(champion.client, exp, champion.name, champion.version)) == 2


@pytest.mark.slow
def test_window_runs_are_named_and_a_monthly_trend_run_draws_lines(
    champion, predictor, log_writer, tmp_path: Path
):
    from mlcycle.monitoring import record

    client = champion.client
    outs = []
    for day in ("2026-03-01", "2026-03-02"):
        window, _ = _drifted_day(champion, predictor, log_writer, day, rows=300)
        outs.append(
            run_once(
                client,
                champion.settings,
                champion.name,
                window=window,
                allow_retrain=False,
                output_dir=tmp_path / "r",
            )
        )
    names = [client.get_run(o.run_id).info.run_name for o in outs]
    v = champion.version
    assert names == [
        f"monitor-{champion.name}-v{v}-2026-03-01T00:00..2026-03-02T00:00",
        f"monitor-{champion.name}-v{v}-2026-03-02T00:00..2026-03-03T00:00",
    ]
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    (trend,) = client.search_runs([exp], "tags.`mlcycle.kind` = 'monitor-trend'")
    assert trend.info.run_name == f"monitor-trend-{champion.name}-v{v}-2026-03"
    assert trend.info.status == "FINISHED"
    points = client.get_metric_history(trend.info.run_id, "drift_share")
    assert [p.step for p in points] == [0, 1]
    assert [p.timestamp for p in points] == [
        int(pd.Timestamp(d, tz="UTC").timestamp() * 1000) for d in ("2026-03-02", "2026-03-03")
    ]
    for o in outs:
        assert client.get_run(o.run_id).data.tags["mlflow.parentRunId"] == trend.info.run_id
    assert record.run_name("m", "3", None, "log") == "monitor-m-v3-log"


@pytest.mark.slow
@pytest.mark.parametrize(("share", "status"), [(0.3, "drift"), (0.5, "ok")])
def test_the_status_the_report_the_tags_and_the_policy_use_one_threshold(
    champion, predictor, log_writer, tmp_path: Path, share: float, status: str
):
    import json

    from mlcycle.monitoring import DriftConfig

    window, _ = _drifted_day(champion, predictor, log_writer, rows=600)
    # 3 of 8 features drift: drift at detection's threshold 0.3, fine at 0.5. The policy
    # has no threshold of its own, so it cannot disagree with the status.
    out = run_once(
        champion.client,
        champion.settings,
        champion.name,
        window=window,
        config=DriftConfig(drift_share=share),
        policy=ONE_OF_ONE,
        allow_retrain=False,
        output_dir=tmp_path / "r",
    )
    r = out.result
    assert r is not None and r.status == status and 0.3 <= r.drift_share < 0.5
    assert out.decision is not None and out.decision.retrain == (status == "drift")
    if status == "ok":
        assert "latest window is fine" in out.decision.reasons
    tags = champion.client.get_run(out.run_id).data.tags
    assert tags["mlcycle.status"] == status
    assert tags["mlcycle.decision"] == ("retrain" if status == "drift" else "none")
    assert tags["mlcycle.drift_threshold"] == f"{share:g}"
    doc = json.loads(Path(r.report_json).read_text())
    (count,) = [m for m in doc["metrics"] if "DriftedColumnsCount" in m["metric_name"]]
    assert f"drift_share={share:g}" in count["metric_name"]
    assert count["value"]["count"] == len(r.drifted)
    assert count["value"]["share"] == pytest.approx(r.drift_share)


@pytest.mark.slow
def test_the_arrow_engine_streams_the_log_to_the_pandas_verdicts_and_quality(
    champion, predictor, log_writer, tmp_path: Path
):
    from mlcycle.monitoring import analyse_window, join_labels, load_reference, read_inference_log

    _, labels = _drifted_day(champion, predictor, log_writer)
    out = run_once(
        champion.client,
        champion.settings,
        champion.name,
        labels=labels.iloc[:400],
        policy=ONE_OF_ONE,
        allow_retrain=False,
        output_dir=tmp_path / "reports",
        engine="arrow",
    )
    assert out.result is not None and out.window is not None and out.result.rows == 1500
    ref = load_reference(champion.client, champion.name)
    whole = read_inference_log(str(champion.log_root), champion.name)
    in_memory = analyse_window(ref, join_labels(whole, labels.iloc[:400], ref.target))
    assert out.result.status == in_memory.status == "drift"
    assert set(out.result.drifted) == set(in_memory.drifted) == set(SCENARIO_DRIFT["covariate"])
    assert out.result.quality == pytest.approx(in_memory.quality)
    assert out.decision is not None and out.decision.retrain
    assert out.result.report_html and Path(out.result.report_html).exists()


def test_an_unknown_engine_is_a_config_error(champion):
    from mlcycle.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown engine 'dask'"):
        run_once(champion.client, champion.settings, champion.name, engine="dask")  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_since_window_over_a_whole_log_window_counts_no_data_twice(
    champion, predictor, log_writer, tmp_path: Path
):
    from mlcycle.monitoring import record

    client, exp_name = champion.client, EXPERIMENT
    _drifted_day(champion, predictor, log_writer, "2026-03-01", rows=600)
    kw = dict(
        policy=RetrainPolicy(bad_windows=2, of_last=2),
        allow_retrain=False,
        output_dir=tmp_path / "r",
    )
    whole = run_once(client, champion.settings, champion.name, **kw)
    assert whole.result is not None and whole.result.rows == 600
    assert whole.decision is not None and not whole.decision.retrain  # 1 bad of 1; 2 needed
    exp = client.get_experiment_by_name(exp_name).experiment_id

    def windows() -> int:
        return len(record.history(client, exp, champion.name, champion.version))

    # The same day again as a --since range: already monitored, not a second bad window.
    day = Window.of("2026-03-01", "2026-03-02")
    again = run_once(client, champion.settings, champion.name, window=day, **kw)
    assert again.result is None and again.skipped and "already monitored" in again.skipped
    assert whole.run_id in again.skipped and windows() == 1
    # A wider range, starting before the log and reaching a new day: only the new day.
    _drifted_day(champion, predictor, log_writer, "2026-03-02", rows=400)
    wide = run_once(
        client, champion.settings, champion.name, window=Window.of("2026-02-27", "2026-03-03"), **kw
    )
    assert wide.result is not None and wide.result.rows == 400
    assert wide.note and whole.run_id in wide.note
    assert whole.window is not None and wide.window is not None
    assert wide.window.split("/") == [whole.window.split("/")[1], "2026-03-03T00:00:00Z"]
    assert windows() == 2 and wide.decision is not None and wide.decision.retrain  # 2 of 2
    # And the whole log after it: nothing new.
    last = run_once(client, champion.settings, champion.name, **kw)
    assert last.result is None and last.skipped and windows() == 2


def test_unmonitored_leaves_the_parts_no_run_covers():
    from mlcycle.monitoring.loop import unmonitored

    t = pd.Timestamp
    w = Window.of("2026-03-01", "2026-03-05")
    covered = [
        (t("2026-02-01", tz="UTC"), t("2026-02-02", tz="UTC"), "far"),
        (t("2026-03-02", tz="UTC"), t("2026-03-03", tz="UTC"), "mid"),
    ]
    parts, by = unmonitored(w, covered)
    assert parts == [Window.of("2026-03-01", "2026-03-02"), Window.of("2026-03-03", "2026-03-05")]
    assert by == ["mid"]
    assert unmonitored(w, [(t("2026-01-01", tz="UTC"), t("2026-04-01", tz="UTC"), "all")]) == (
        [],
        ["all"],
    )
    assert unmonitored(w, []) == ([w], [])
