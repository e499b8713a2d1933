"""One summary, three engines: streamed batches give the in-memory verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from mlcycle.data import SCENARIO_DRIFT, make_scenario
from mlcycle.monitoring import DriftConfig, Window, analyse_window
from mlcycle.monitoring.drift import analyse_summary, new_summary
from mlcycle.monitoring.inputs import read_inference_log, stream_inference_log
from mlcycle.monitoring.summary import Bins, WindowSummary, wasserstein_from


def _verdicts(result) -> dict[str, tuple[str, bool]]:
    out = {c.column: (c.method, c.drifted) for c in result.columns}
    if result.prediction is not None:
        out["prediction"] = (result.prediction.method, result.prediction.drifted)
    return out


def _window(rows: int, period: str, seed: int) -> pd.DataFrame:
    df = make_scenario(rows, period, seed=seed, start="2026-03-01", days=2)
    df["prediction"] = df["churned"]
    return df


@pytest.mark.parametrize("period", ["covariate", "reference"])
def test_streamed_log_gives_the_in_memory_verdicts_on_a_subsample(
    tmp_path: Path, log_writer, scenario_reference, period
):
    log_writer(tmp_path, "m", "1", _window(12_000, period, seed=5))
    streamed = stream_inference_log(
        str(tmp_path), "m", new_summary(scenario_reference, DriftConfig()), batch_rows=500
    )
    # Many small batches: never more than one batch of rows held at a time.
    assert streamed.rows == 12_000 and streamed.batches >= 24 and streamed.max_batch_rows <= 500
    whole = read_inference_log(str(tmp_path), "m")
    subsample = whole.sample(4_000, random_state=0)
    by_stream = analyse_summary(scenario_reference, streamed)
    in_memory = analyse_window(scenario_reference, subsample)
    assert _verdicts(by_stream) == _verdicts(in_memory)
    assert by_stream.status == in_memory.status == ("drift" if period == "covariate" else "ok")
    if period == "covariate":
        assert set(by_stream.drifted) == set(SCENARIO_DRIFT["covariate"])
    # On the same rows, streamed and whole-frame statistics are the same numbers.
    same = analyse_window(scenario_reference, whole)
    for a, b in zip(by_stream.columns, same.columns, strict=True):
        assert a.column == b.column and a.score == pytest.approx(b.score, rel=1e-9)
    assert {f.kind for f in by_stream.findings} == {f.kind for f in same.findings}


def test_a_stream_limited_to_a_window_counts_only_its_rows(
    tmp_path: Path, log_writer, scenario_reference
):
    log_writer(tmp_path, "m", "1", _window(2_000, "reference", seed=6))
    day = Window.of("2026-03-01", "2026-03-02")
    streamed = stream_inference_log(
        str(tmp_path), "m", new_summary(scenario_reference, DriftConfig()), day, batch_rows=256
    )
    assert streamed.rows == len(read_inference_log(str(tmp_path), "m", day)) > 0
    assert day.start <= streamed.first_ts and streamed.last_ts < day.end


def test_a_broken_file_is_a_problem_and_the_rest_is_streamed(
    tmp_path: Path, log_writer, scenario_reference
):
    log_writer(tmp_path, "m", "1", _window(1_000, "reference", seed=7))
    bad = tmp_path / "model=m" / "version=1" / "hour=2026-03-01T05" / "part-broken.parquet"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b"PAR1 not really parquet")
    problems: list[str] = []
    streamed = stream_inference_log(
        str(tmp_path),
        "m",
        new_summary(scenario_reference, DriftConfig()),
        problems=problems,
    )
    assert streamed.rows == 1_000
    assert len(problems) == 1 and "part-broken.parquet" in problems[0]


def test_summaries_merge_to_the_summary_of_the_whole(scenario_reference, covariate_window):
    cfg = DriftConfig()
    whole = new_summary(scenario_reference, cfg).add(covariate_window)
    parts = new_summary(scenario_reference, cfg)
    for chunk in np.array_split(np.arange(len(covariate_window)), 7):
        parts.merge(new_summary(scenario_reference, cfg).add(covariate_window.iloc[chunk]))
    for col, st in whole.numeric.items():
        assert np.array_equal(st.interior, parts.numeric[col].interior)
        assert np.array_equal(st.on_edge, parts.numeric[col].on_edge)
    assert whole.categorical["region"].counts == parts.categorical["region"].counts
    assert parts.sample is not None and len(parts.sample) == cfg.report_rows


@pytest.mark.parametrize(
    "draw",
    [
        lambda r, n: r.normal(0.4, 1.0, n),
        lambda r, n: r.exponential(1.5, n),
        lambda r, n: r.integers(-5, 60, n).astype(float),
        lambda r, n: r.normal(0.0, 3.0, n),
    ],
)
def test_wasserstein_from_the_summary_matches_scipy(draw):
    from mlcycle.data import DatasetSpec
    from mlcycle.reference_profile import profile

    ref = pd.DataFrame({"x": np.random.default_rng(1).normal(0.0, 1.0, 50_000)})
    cur = pd.DataFrame({"x": draw(np.random.default_rng(0), 50_000)})
    spec = DatasetSpec(target="y", task="classification", numeric=("x",), categorical=())
    prof = profile(ref, spec)
    st = WindowSummary(prof).add(cur).numeric["x"]
    exact = wasserstein_distance(ref["x"], cur["x"]) / ref["x"].std()
    assert wasserstein_from(prof["columns"]["x"], st) == pytest.approx(exact, rel=0.02, abs=2e-3)


@pytest.mark.slow
def test_spark_local_gives_the_pandas_verdicts(tmp_path: Path, log_writer, scenario_reference):
    import shutil

    from testkit import need

    need(shutil.which("java") is not None, "Java is not installed (Spark needs Java 17+)")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        need(False, "pyspark is not installed (pip install 'mlcycle[spark]')")
    from mlcycle.batch import spark_session
    from mlcycle.monitoring.spark import spark_summary

    log_writer(tmp_path, "m", "1", _window(6_000, "covariate", seed=8))
    log_writer(tmp_path, "m", "1", _window(500, "reference", seed=9), role="shadow")
    session = spark_session("local[2]", app_name="mlcycle-tests")
    session.sparkContext.setLogLevel("ERROR")
    day = Window.of("2026-03-01", "2026-03-02T12:00")
    try:
        on_spark = spark_summary(
            str(tmp_path), "m", new_summary(scenario_reference, DriftConfig()), day
        )
    finally:
        session.stop()
    on_pandas = read_inference_log(str(tmp_path), "m", day)
    assert on_spark.rows == len(on_pandas) > 0
    assert on_spark.first_ts == on_pandas["timestamp"].min()
    by_spark = analyse_summary(scenario_reference, on_spark)
    by_pandas = analyse_window(scenario_reference, on_pandas)
    assert by_spark.status == by_pandas.status == "drift"
    assert _verdicts(by_spark) == _verdicts(by_pandas)
    for a, b in zip(by_spark.columns, by_pandas.columns, strict=True):
        assert a.score == pytest.approx(b.score, rel=1e-9)


@pytest.mark.parametrize(
    "edges",
    [
        np.quantile(np.random.default_rng(0).lognormal(0, 1, 10_000), np.linspace(0, 1, 1001)),
        np.arange(0.0, 50.0),
        # A reference with an extreme outlier: its points crowd into one cell of the table.
        np.append(np.linspace(0.0, 1.0, 999), 1e12),
    ],
)
def test_the_lookup_table_finds_the_index_a_binary_search_finds(edges):
    edges = np.unique(edges)
    rng = np.random.default_rng(1)
    x = np.concatenate(
        [rng.uniform(edges[0] - 1, edges[-1] + 1, 50_000), edges, rng.choice(edges, 1000) - 1e-12]
    )
    assert np.array_equal(Bins(edges).index(x), np.searchsorted(edges, x, side="right"))


def test_a_log_on_s3_streams_like_the_same_log_on_disk(
    tmp_path: Path, log_writer, scenario_reference, s3_bucket: str
):
    import os

    import boto3

    log_writer(tmp_path, "m", "1", _window(3_000, "covariate", seed=10))
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    for f in tmp_path.rglob("*.parquet"):
        s3.upload_file(str(f), s3_bucket, f"log/{f.relative_to(tmp_path).as_posix()}")
    local = stream_inference_log(
        str(tmp_path), "m", new_summary(scenario_reference, DriftConfig()), batch_rows=700
    )
    remote = stream_inference_log(
        f"s3://{s3_bucket}/log", "m", new_summary(scenario_reference, DriftConfig()), batch_rows=700
    )
    assert remote.rows == local.rows == 3_000
    a, b = analyse_summary(scenario_reference, remote), analyse_summary(scenario_reference, local)
    assert [(c.column, c.score) for c in a.columns] == [(c.column, c.score) for c in b.columns]


def test_arrow_batches_count_like_the_frame_they_convert_to(scenario_reference) -> None:
    import pyarrow as pa

    frame = _window(3_000, "covariate", seed=8)
    frame.loc[::7, "region"] = None
    frame["age"] = frame["age"].astype("string")  # numbers as text: a type finding
    frame.loc[::11, "monthly_charges"] = np.nan
    table = pa.Table.from_pandas(frame, preserve_index=False)
    by_frame = new_summary(scenario_reference, DriftConfig()).add(frame)
    by_arrow = new_summary(scenario_reference, DriftConfig())
    for batch in table.to_batches(max_chunksize=700):
        by_arrow.add(batch)
    a = analyse_summary(scenario_reference, by_arrow)
    b = analyse_window(scenario_reference, frame)
    assert [(c.column, c.method, c.drifted) for c in a.columns] == [
        (c.column, c.method, c.drifted) for c in b.columns
    ]
    for x, y in zip(a.columns, b.columns, strict=True):
        assert x.score == pytest.approx(y.score, rel=1e-9)
        assert x.missing_share == pytest.approx(y.missing_share)
    assert sorted((f.column, f.kind) for f in a.findings) == sorted(
        (f.column, f.kind) for f in b.findings
    )
    assert by_arrow.categorical["region"].counts == by_frame.categorical["region"].counts
    assert by_arrow.prediction.counts == by_frame.prediction.counts  # type: ignore[union-attr]


def test_a_parquet_window_file_is_summarised_batch_by_batch(
    tmp_path: Path, scenario_reference
) -> None:
    from mlcycle.errors import DataError
    from mlcycle.monitoring.inputs import summarise_file

    frame = _window(5_000, "covariate", seed=9).drop(columns=["churned"])
    path = tmp_path / "window.parquet"
    frame.to_parquet(path, index=False)
    summary = summarise_file(path, new_summary(scenario_reference, DriftConfig()), batch_rows=800)
    assert summary is not None and summary.rows == 5_000 and summary.max_batch_rows <= 800
    assert _verdicts(analyse_summary(scenario_reference, summary)) == _verdicts(
        analyse_window(scenario_reference, frame)
    )
    labelled = tmp_path / "labelled.parquet"
    _window(500, "reference", seed=9).to_parquet(labelled, index=False)
    csv = tmp_path / "window.csv"
    frame.head(10).to_csv(csv, index=False)
    for whole in (labelled, csv):  # labels (quality, retrain) and CSV are read whole
        assert summarise_file(whole, new_summary(scenario_reference, DriftConfig())) is None
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"cannot read .*broken.parquet"):
        summarise_file(broken, new_summary(scenario_reference, DriftConfig()))
