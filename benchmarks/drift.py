"""Drift at scale: mlcycle's three engines vs stock Evidently ``DataDriftPreset``.

Usage::

    python benchmarks/drift.py                            # 1M in memory, 20M streamed, Spark
    python benchmarks/drift.py --rows 300000 --stream-rows 2000000   # quicker
    python benchmarks/drift.py --skip-stock --skip-spark  # mlcycle's in-process engines only

The reference and current tables are the demo scenario's eight features (covariate period:
``monthly_charges``, ``data_usage_gb`` and ``region`` drift) plus twelve synthetic numeric
columns, three of them with injected drift. Each measurement runs in its own subprocess so
its time and peak RSS (``resource.getrusage``) are its own:

- **in memory** — what ``mlcycle monitor --current current.parquet`` does with the ``--rows``
  window: the file read once in Arrow record batches into the window's summary
  (:func:`mlcycle.monitoring.inputs.summarise_file`), the verdicts from it and the reference
  profile that training precomputes (built before, as it happens at training time; reading
  it counts), then the Evidently HTML/JSON report on bounded samples as its own step; against
  **stock** ``Report([DataDriftPreset()]).run(current, reference)`` on the full tables.
  Goals, in CPU seconds (the machine is shared; wall times are printed beside): analysis
  <= 2 s, analysis + report (what ``mlcycle monitor`` computes) <= 2 s, peak RSS <= 500 MB.
  Process start and imports (Evidently's included) are printed but not counted.
- **streaming** — ``--stream-rows`` rows (default 20M) written once per run with pyarrow as
  an inference log (Hive partitions ``model=/version=/hour=``, copies of the current table
  with their own timestamps), folded batch by batch (the ``arrow`` engine,
  :func:`mlcycle.monitoring.inputs.stream_inference_log`). Goal: peak RSS <= 1 GB, verdicts
  equal to the in-memory analysis of a random subsample of the log's row groups. Stock
  Evidently cannot run at this size (it held ~2.3 GB per million rows).
- **spark** — the first ``--spark-rows`` (default 2M, whole hours) of the same log summarised
  by Spark ``local[2]`` (the ``spark`` engine; ``0`` reads all of it); verdicts must equal the
  streaming ones. Spark on two local cores is slower than streaming, so a slice keeps
  ``make bench`` reasonable. Driver RSS is printed; the JVM and the Python
  workers are separate processes.

Wall times grow with other load on the machine; the load average is printed.
"""

# ruff: noqa: E501  (the printed table reads better than wrapped f-strings)
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

INJECTED = ("monthly_charges", "data_usage_gb", "region", "x01", "x02", "x03")


def make_tables(rows: int, workdir: Path) -> list[str]:
    """Write reference.parquet and current.parquet; return the feature columns."""
    from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario

    for name, period, seed in (("reference", "reference", 1), ("current", "covariate", 2)):
        df = make_scenario(rows, period, seed=seed).drop(columns=[SCENARIO_TIME, SCENARIO_TARGET])
        rng = np.random.default_rng([seed, 99])
        drift = name == "current"
        df["x01"] = rng.normal(0.5 if drift else 0.0, 1.0, rows)  # mean shift
        df["x02"] = rng.normal(0.0, 1.5 if drift else 1.0, rows)  # scale change
        df["x03"] = rng.exponential(2.0 if drift else 1.0, rows)  # heavier tail
        for i in range(4, 13):
            kind = i % 3
            if kind == 0:
                df[f"x{i:02d}"] = rng.normal(i, 1 + i / 10, rows)
            elif kind == 1:
                df[f"x{i:02d}"] = rng.lognormal(0.5, 0.4, rows)
            else:
                df[f"x{i:02d}"] = rng.integers(0, 50, rows).astype(float)
        df.to_parquet(workdir / f"{name}.parquet", index=False)
    return list(df.columns)


def _peak_rss_mb() -> float:
    """This process's peak RSS since it started.

    ``getrusage``'s ``ru_maxrss`` would do, but Linux carries the parent's peak across
    fork + exec, so a child started by a large parent reports the parent's memory;
    ``VmHWM`` belongs to the child's own address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child_stock(workdir: Path) -> dict:
    """Stock Evidently on the full tables."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    t0 = time.perf_counter()
    ref = pd.read_parquet(workdir / "reference.parquet")
    cur = pd.read_parquet(workdir / "current.parquet")
    cats = [c for c in ref.columns if not pd.api.types.is_numeric_dtype(ref[c])]
    nums = [c for c in ref.columns if c not in cats]
    dd = DataDefinition(numerical_columns=nums, categorical_columns=cats)
    snap = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd)
    )
    verdicts = {}
    for m in snap.dict()["metrics"]:
        cfg = m["config"]
        if not cfg.get("type", "").endswith("ValueDrift"):
            continue
        score, thr, method = float(m["value"]), float(cfg["threshold"]), cfg["method"]
        drifted = score < thr if "p_value" in method else score >= thr
        verdicts[cfg["column"]] = {"method": method, "score": score, "drifted": drifted}
    return {
        "seconds": time.perf_counter() - t0,
        "rss_mb": _peak_rss_mb(),
        "cpu": _cpu_seconds(),
        "verdicts": verdicts,
    }


def child_mlcycle(workdir: Path) -> dict:
    """mlcycle in memory: the current file in record batches, precomputed profile, then report.

    The phases are what ``mlcycle monitor --current window.parquet`` does, timed one by one:
    the one pass over the file (Arrow record batches into the window's summary, the file never
    held whole), detection (the verdicts; no side effect), and the Evidently report as its
    own step (on bounded samples: a constant cost, whatever the window's size).
    """
    from mlcycle.monitoring import DriftConfig
    from mlcycle.monitoring.drift import detect, new_summary
    from mlcycle.monitoring.inputs import summarise_file
    from mlcycle.monitoring.report import write_window_report

    t0, c0 = time.perf_counter(), _cpu_seconds()
    ref = _reference(workdir)
    cfg = DriftConfig()
    t_loaded, c_loaded = time.perf_counter(), _cpu_seconds()
    summary = summarise_file(workdir / "current.parquet", new_summary(ref, cfg))
    assert summary is not None
    t_pass, c_pass = time.perf_counter(), _cpu_seconds()
    result = detect(ref, summary, cfg)
    t_verdicts, c_verdicts = time.perf_counter(), _cpu_seconds()
    # Evidently is imported where the CLI first needs it, for the report, but off the clock
    # (a one-time process cost, as on the stock side; printed apart); its memory counts in
    # the peak.
    import evidently.metrics
    import evidently.presets  # noqa: F401

    t_imported, c_imported = time.perf_counter(), _cpu_seconds()
    result = write_window_report(ref, summary, result, cfg, workdir / "report")
    t1, c1 = time.perf_counter(), _cpu_seconds()
    return {
        "seconds": t1 - t0 - (t_imported - t_verdicts),
        "startup_cpu": c0,
        "reference_cpu": c_loaded - c0,
        "analyse_seconds": t_verdicts - t0,
        "analyse_cpu": c_verdicts - c0,
        "pass_seconds": t_pass - t_loaded,
        "pass_cpu": c_pass - c_loaded,
        "verdicts_cpu": c_verdicts - c_pass,
        "evidently_import_cpu": c_imported - c_verdicts,
        "report_seconds": t1 - t_imported,
        "report_cpu": c1 - c_imported,
        "rss_mb": _peak_rss_mb(),
        "cpu": _cpu_seconds(),
        "verdicts": _verdicts(result),
        "report": result.report_html,
    }


def _reference(workdir: Path):
    from mlcycle.monitoring.inputs import ReferenceData

    profile = json.loads((workdir / "profile.json").read_text())
    sample = pd.read_parquet(workdir / "sample.parquet")
    cols = profile["columns"]
    return ReferenceData(
        profile=profile,
        sample=sample,
        task="classification",
        target="churned",
        numeric=tuple(c for c, v in cols.items() if v["type"] == "numeric"),
        categorical=tuple(c for c, v in cols.items() if v["type"] == "categorical"),
    )


def _verdicts(result) -> dict:
    return {
        c.column: {"method": c.method, "score": c.score, "drifted": c.drifted}
        for c in result.columns
    }


MODEL = "bench"
#: Rows per hour partition of the benchmark's log (the current table, copied per hour).
ROWS_PER_HOUR = 1_000_000


def make_log(workdir: Path, rows: int) -> float:
    """Write ``rows`` of inference log: copies of current.parquet, one hour per million."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    current = pq.read_table(workdir / "current.parquet")
    root = workdir / "inference-log"
    start = pd.Timestamp("2026-03-01", tz="UTC")
    written, i = 0, 0
    while written < rows:
        part = current.slice(0, min(len(current), ROWS_PER_HOUR, rows - written))
        n = len(part)
        hour = start + pd.Timedelta(hours=i)
        ts = (hour.value // 1000) + np.arange(n, dtype=np.int64) * (3_600_000_000 // n)
        ids = pc.cast(pa.array(np.arange(written, written + n, dtype=np.int64)), pa.string())
        prediction = pa.array(np.arange(n, dtype=np.int64) % 2)
        table = pa.table(
            {
                "request_id": ids,
                "record_index": pa.array(np.zeros(n, dtype=np.int32)),
                "timestamp": pa.array(ts, type=pa.timestamp("us", tz="UTC")),
                "model_name": pa.array([MODEL] * 1, pa.string()).take(np.zeros(n, dtype=int)),
                "model_version": pa.array(["1"], pa.string()).take(np.zeros(n, dtype=int)),
                "role": pa.array(["champion"], pa.string()).take(np.zeros(n, dtype=int)),
                **{c: part.column(c) for c in part.column_names},
                "prediction": prediction,
            }
        )
        d = root / f"model={MODEL}" / "version=1" / f"hour={hour:%Y-%m-%dT%H}"
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, d / "part-0.parquet", row_group_size=131_072)
        written += n
        i += 1
    return time.perf_counter() - t0


def child_stream(workdir: Path) -> dict:
    """The arrow engine: the whole log folded batch by batch, then verdicts and report."""
    from mlcycle.monitoring import DriftConfig
    from mlcycle.monitoring.drift import analyse_summary, new_summary
    from mlcycle.monitoring.inputs import stream_inference_log

    t0 = time.perf_counter()
    ref = _reference(workdir)
    problems: list[str] = []
    summary = stream_inference_log(
        str(workdir / "inference-log"), MODEL, new_summary(ref, DriftConfig()), problems=problems
    )
    result = analyse_summary(ref, summary, DriftConfig(), output_dir=workdir / "report-stream")
    return {
        "seconds": time.perf_counter() - t0,
        "rss_mb": _peak_rss_mb(),
        "cpu": _cpu_seconds(),
        "rows": summary.rows,
        "batches": summary.batches,
        "max_batch_rows": summary.max_batch_rows,
        "verdicts": _verdicts(result),
        "problems": problems,
    }


def child_subsample(workdir: Path) -> dict:
    """In-memory verdicts on a random subsample of the log (random row groups, ~1M rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcycle.monitoring import DriftConfig, analyse_window

    files = sorted((workdir / "inference-log").rglob("*.parquet"))
    groups = [(f, g) for f in files for g in range(pq.ParquetFile(f).num_row_groups)]
    rng = np.random.default_rng(7)
    pick = rng.choice(len(groups), min(len(groups), 8), replace=False)
    parts = [pq.ParquetFile(groups[i][0]).read_row_group(groups[i][1]) for i in sorted(pick)]
    frame = pa.concat_tables(parts).to_pandas()
    result = analyse_window(_reference(workdir), frame, DriftConfig())
    return {"rows": len(frame), "verdicts": _verdicts(result)}


def child_spark(workdir: Path, rows: int = 0) -> dict:
    """The spark engine (local[2]) on the same log: its first ``rows`` (whole hours), or all."""
    from mlcycle.batch import spark_session
    from mlcycle.monitoring import DriftConfig
    from mlcycle.monitoring.drift import analyse_summary, new_summary
    from mlcycle.monitoring.spark import spark_summary

    t_start = time.perf_counter()
    spark = spark_session("local[2]", "mlcycle-bench")
    spark.sparkContext.setLogLevel("ERROR")
    t0 = time.perf_counter()
    ref = _reference(workdir)
    window = None
    if rows:
        from mlcycle.monitoring import Window

        start = pd.Timestamp("2026-03-01", tz="UTC")
        window = Window.of(start, start + pd.Timedelta(hours=-(-rows // ROWS_PER_HOUR)))
    summary = spark_summary(
        str(workdir / "inference-log"), MODEL, new_summary(ref, DriftConfig()), window
    )
    result = analyse_summary(ref, summary, DriftConfig(), output_dir=workdir / "report-spark")
    t1 = time.perf_counter()
    spark.stop()
    return {
        "seconds": t1 - t0,
        "startup_seconds": t0 - t_start,
        "rss_mb": _peak_rss_mb(),
        "cpu": _cpu_seconds(),
        "rows": summary.rows,
        "verdicts": _verdicts(result),
    }


def build_profile(workdir: Path) -> float:
    """The training-time step: profile of the full reference and a bounded sample."""
    from mlcycle import reference_profile as reference_mod
    from mlcycle.data import DatasetSpec

    t0 = time.perf_counter()
    ref = pd.read_parquet(workdir / "reference.parquet")
    cats = tuple(c for c in ref.columns if not pd.api.types.is_numeric_dtype(ref[c]))
    nums = tuple(c for c in ref.columns if c not in cats)
    spec = DatasetSpec(target="churned", task="classification", numeric=nums, categorical=cats)
    (workdir / "profile.json").write_text(json.dumps(reference_mod.profile(ref, spec)))
    ref.sample(min(len(ref), reference_mod.MAX_REFERENCE_ROWS), random_state=0).to_parquet(
        workdir / "sample.parquet", index=False
    )
    return time.perf_counter() - t0


def _run_child(which: str, workdir: Path, *extra: str) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, "--workdir", str(workdir), *extra],
        check=False,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    doc["process_seconds"] = time.perf_counter() - t0  # interpreter start and imports included
    return doc


def _goal(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _same(a: dict, b: dict) -> tuple[int, int]:
    keys = set(a) | set(b)
    return sum(k in a and k in b and a[k]["drifted"] == b[k]["drifted"] for k in keys), len(keys)


CHILDREN = {
    "stock": child_stock,
    "mlcycle": child_mlcycle,
    "stream": child_stream,
    "subsample": child_subsample,
    "spark": child_spark,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows of each in-memory table (1,000,000)"
    )
    parser.add_argument(
        "--stream-rows",
        type=int,
        default=20_000_000,
        help="rows of the streamed inference log (20,000,000; 0 skips streaming and Spark)",
    )
    parser.add_argument(
        "--spark-rows",
        type=int,
        default=2_000_000,
        help="rows of the log Spark reads (its first hours; 2,000,000; 0: all of it)",
    )
    parser.add_argument("--workdir", default=None, help="keep the tables, log and reports here")
    parser.add_argument("--skip-stock", action="store_true", help="no stock Evidently run")
    parser.add_argument("--skip-spark", action="store_true", help="no Spark run")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        extra = (args.spark_rows,) if args.child == "spark" else ()
        print(json.dumps(CHILDREN[args.child](Path(args.workdir), *extra)))
        return

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="mlcycle-drift-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    features = make_tables(args.rows, workdir)
    print(
        f"data        {args.rows:,} rows x {len(features)} features per table ({time.perf_counter() - t0:.1f} s); injected drift: {', '.join(INJECTED)}"
    )
    print(
        f"profile     {build_profile(workdir):.1f} s at training time (full reference, once per model)"
    )
    mine = _run_child("mlcycle", workdir)
    stock = None if args.skip_stock else _run_child("stock", workdir)
    stream = spark = sub = None
    if args.stream_rows:
        t = make_log(workdir, args.stream_rows)
        size = sum(f.stat().st_size for f in (workdir / "inference-log").rglob("*.parquet"))
        print(
            f"log         {args.stream_rows:,} rows x {len(features)} features written with pyarrow in {t:.1f} s ({size / 1e9:.1f} GB Parquet)"
        )
        stream = _run_child("stream", workdir)
        sub = _run_child("subsample", workdir)
        spark = (
            None
            if args.skip_spark
            else _run_child("spark", workdir, "--spark-rows", str(args.spark_rows))
        )

    print()
    print(
        f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work on the machine inflates wall times)"
    )
    print(f"{'':<22}{'rows':>12}{'seconds':>10}{'CPU s':>8}{'process s':>11}{'peak RSS MB':>14}")
    rows = [
        ("in memory (file, arrow)", args.rows, mine),
        ("stock Evidently", args.rows, stock),
        ("streaming (arrow)", args.stream_rows, stream),
        ("spark local[2]", spark.get("rows", 0) if spark else 0, spark),
    ]
    for label, n, d in rows:
        if d is None:
            continue
        if "error" in d:
            print(f"{label:<22}{n:>12,}  failed: {d['error']}")
            continue
        print(
            f"{label:<22}{n:>12,}{d['seconds']:>10.1f}{d['cpu']:>8.1f}{d['process_seconds']:>11.1f}{d['rss_mb']:>14.0f}"
        )
    print(
        "  seconds: read + analyse (+ report); in memory reads the current file in record batches; spark excludes session start; process: the whole subprocess"
    )
    if stock and "error" not in stock and "error" not in mine:
        r = [stock[k] / mine[k] for k in ("seconds", "cpu", "process_seconds", "rss_mb")]
        print(f"{'stock / in memory':<34}{r[0]:>9.1f}x{r[1]:>7.1f}x{r[2]:>10.1f}x{r[3]:>13.1f}x")
    print()
    print("goals")
    if "error" not in mine:
        both = mine["analyse_cpu"] + mine["report_cpu"]
        print(
            f"  in memory, {args.rows:,} rows x {len(features)} columns against a {args.rows:,}-row reference (goals judged on CPU s; wall on this shared machine beside):"
        )
        print(
            f"    analysis (profile read, one pass over the file, verdicts): CPU {mine['analyse_cpu']:.2f} s <= 2 s: {_goal(mine['analyse_cpu'] <= 2.0)} "
            f"(wall {mine['analyse_seconds']:.2f} s; profile {mine['reference_cpu']:.2f}, pass {mine['pass_cpu']:.2f}, verdicts {mine['verdicts_cpu']:.2f})"
        )
        print(
            f"    report (Evidently HTML/JSON on {5000:,}-row samples, the same at any window size): CPU {mine['report_cpu']:.2f} s (wall {mine['report_seconds']:.2f} s)"
        )
        print(
            f"    analysis + report, what `mlcycle monitor --current` computes: CPU {both:.2f} s <= 2 s: {_goal(both <= 2.0)}"
        )
        print(
            f"    not counted: process start and imports CPU {mine['startup_cpu']:.2f} s, Evidently's import {mine['evidently_import_cpu']:.2f} s (once per process; whole process CPU {mine['cpu']:.2f} s)"
        )
        print(f"    peak RSS {mine['rss_mb']:.0f} MB <= 500 MB: {_goal(mine['rss_mb'] <= 500)}")
    if stream and "error" not in stream:
        held = stream["max_batch_rows"]
        print(
            f"  streaming: {stream['rows']:,} rows in {stream['batches']:,} batches (<= {held:,} rows held); "
            f"peak RSS {stream['rss_mb']:.0f} MB <= 1 GB: {_goal(stream['rss_mb'] <= 1024)}"
        )
        if stock and "error" not in stock:
            need = stock["rss_mb"] * args.stream_rows / args.rows
            print(
                f"    stock Evidently cannot run at {args.stream_rows:,} rows here (about {need / 1024:.0f} GB by its {args.rows:,}-row peak)"
            )
        if sub and "error" not in sub:
            same, total = _same(stream["verdicts"], sub["verdicts"])
            print(
                f"  streaming vs in memory on a {sub['rows']:,}-row subsample: {same}/{total} verdicts equal: {_goal(same == total)}"
            )
    if spark and stream and "error" not in spark and "error" not in stream:
        same, total = _same(spark["verdicts"], stream["verdicts"])
        print(
            f"  spark ({spark['rows']:,} rows of the same log) vs streaming: {same}/{total} verdicts equal: {_goal(same == total)} "
            f"(session start {spark['startup_seconds']:.1f} s not counted)"
        )
    print()
    header = f"{'column':<18}{'injected':>9}{'memory':>9}{'score':>9}"
    if stream and "error" not in stream:
        header += f"{'stream':>9}{'score':>9}"
    if stock and "error" not in stock:
        header += f"{'stock':>8}{'score':>9}  method (stock)"
    print(header)
    agree = 0
    for col in features:
        m = mine.get("verdicts", {}).get(col)
        line = f"{col:<18}{'yes' if col in INJECTED else '':>9}"
        line += f"{('drift' if m['drifted'] else 'ok') if m else '-':>9}{m['score'] if m else float('nan'):>9.4f}"
        if stream and "error" not in stream:
            t = stream["verdicts"].get(col)
            line += f"{('drift' if t['drifted'] else 'ok') if t else '-':>9}{t['score'] if t else float('nan'):>9.4f}"
        if stock and "error" not in stock:
            st = stock["verdicts"].get(col)
            same = bool(m and st and m["drifted"] == st["drifted"])
            agree += same
            line += f"{('drift' if st['drifted'] else 'ok') if st else '-':>8}{st['score'] if st else float('nan'):>9.4f}  {st['method'] if st else ''}"
            line += "" if same else "   <-- differs"
        print(line)
    if stock and "error" not in stock:
        print(f"\nverdict agreement in memory vs stock: {agree}/{len(features)} columns")
    truth = sum(
        (mine["verdicts"][c]["drifted"]) == (c in INJECTED)
        for c in features
        if c in mine.get("verdicts", {})
    )
    print(f"mlcycle vs injected truth: {truth}/{len(features)} columns")
    print(f"report      {mine.get('report')}")
    if not args.workdir:
        shutil.rmtree(workdir / "inference-log", ignore_errors=True)
        print(f"(tables kept in {workdir}; the inference log was deleted; delete when done)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
