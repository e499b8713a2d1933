"""Drift at scale: mlcycle's monitoring vs stock Evidently ``DataDriftPreset`` on full data.

Usage::

    python benchmarks/drift.py                 # 1,000,000 rows x 20 features (~2 min here)
    python benchmarks/drift.py --rows 300000   # quicker (~40 s)

Both sides see the same reference and current tables: the demo scenario's eight features
(covariate period: ``monthly_charges``, ``data_usage_gb`` and ``region`` drift) plus twelve
synthetic numeric columns, three of them with injected drift. Each side runs in its own
subprocess so its time and peak RSS (``resource.getrusage``) are its own:

- **stock** — ``Report([DataDriftPreset()]).run(current, reference)`` on the full tables;
- **mlcycle** — :func:`mlcycle.monitoring.analyse_window` on the full current window with the
  reference profile that training precomputes (timed separately, as it happens at training
  time), including the Evidently HTML/JSON report on bounded samples.

The default is the issue's size: the whole run took 1 min 45 s on this two-core machine
(stock Evidently ~80 s of it; it grows linearly, and other load on the machine stretches it).
"""

# ruff: noqa: E501  (the printed table reads better than wrapped f-strings)
from __future__ import annotations

import argparse
import json
import os
import resource
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
    """mlcycle: full current window against the precomputed profile, report on samples."""
    from mlcycle.monitoring import DriftConfig, analyse_window
    from mlcycle.monitoring.inputs import ReferenceData

    t0 = time.perf_counter()
    profile = json.loads((workdir / "profile.json").read_text())
    sample = pd.read_parquet(workdir / "sample.parquet")
    cols = profile["columns"]
    ref = ReferenceData(
        profile=profile,
        sample=sample,
        task="classification",
        target="churned",
        numeric=tuple(c for c, v in cols.items() if v["type"] == "numeric"),
        categorical=tuple(c for c, v in cols.items() if v["type"] == "categorical"),
    )
    cur = pd.read_parquet(workdir / "current.parquet")
    t_loaded = time.perf_counter()
    result = analyse_window(ref, cur, DriftConfig(), output_dir=workdir / "report")
    t1 = time.perf_counter()
    verdicts = {
        c.column: {"method": c.method, "score": c.score, "drifted": c.drifted}
        for c in result.columns
    }
    return {
        "seconds": t1 - t0,
        "analyse_seconds": t1 - t_loaded,
        "rss_mb": _peak_rss_mb(),
        "cpu": _cpu_seconds(),
        "verdicts": verdicts,
        "report": result.report_html,
    }


def build_profile(workdir: Path) -> float:
    """The training-time step: profile of the full reference and a bounded sample."""
    from mlcycle.data import DatasetSpec
    from mlcycle.train import reference as reference_mod

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


def _run_child(which: str, workdir: Path) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, "--workdir", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
    )
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    doc["process_seconds"] = time.perf_counter() - t0  # interpreter start and imports included
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=300_000, help="rows of each table (default 300,000)"
    )
    parser.add_argument("--workdir", default=None, help="keep the tables and report here")
    parser.add_argument("--skip-stock", action="store_true", help="time mlcycle only")
    parser.add_argument("--child", choices=["stock", "mlcycle"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        fn = child_stock if args.child == "stock" else child_mlcycle
        print(json.dumps(fn(Path(args.workdir))))
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

    print()
    print(
        f"load average now: {os.getloadavg()[0]:.1f} (other work on the machine inflates wall times)"
    )
    print(f"{'':<10}{'seconds':>10}{'CPU s':>8}{'process s':>11}{'peak RSS MB':>14}")
    for label, d in (("mlcycle", mine), ("stock", stock)):
        if d:
            print(
                f"{label:<10}{d['seconds']:>10.1f}{d['cpu']:>8.1f}{d['process_seconds']:>11.1f}{d['rss_mb']:>14.0f}"
            )
    print(
        "  seconds: read both inputs + analyse (+ report); process: the whole subprocess, imports included"
    )
    if stock:
        r = [stock[k] / mine[k] for k in ("seconds", "cpu", "process_seconds", "rss_mb")]
        print(
            f"{'ratio':<10}{r[0]:>9.1f}x{r[1]:>7.1f}x{r[2]:>10.1f}x{r[3]:>13.1f}x   (stock / mlcycle)"
        )
    print()
    header = f"{'column':<18}{'injected':>9}{'mlcycle':>10}{'score':>9}"
    if stock:
        header += f"{'stock':>8}{'score':>9}  method (stock)"
    print(header)
    agree = 0
    for col in features:
        m = mine["verdicts"].get(col)
        line = f"{col:<18}{'yes' if col in INJECTED else '':>9}"
        line += f"{('drift' if m['drifted'] else 'ok') if m else '-':>10}{m['score'] if m else float('nan'):>9.4f}"
        if stock:
            s = stock["verdicts"].get(col)
            same = bool(m and s and m["drifted"] == s["drifted"])
            agree += same
            line += f"{('drift' if s['drifted'] else 'ok') if s else '-':>8}{s['score'] if s else float('nan'):>9.4f}  {s['method'] if s else ''}"
            line += "" if same else "   <-- differs"
        print(line)
    if stock:
        print(f"\nverdict agreement: {agree}/{len(features)} columns")
    truth = sum(
        (mine["verdicts"][c]["drifted"]) == (c in INJECTED)
        for c in features
        if c in mine["verdicts"]
    )
    print(f"mlcycle vs injected truth: {truth}/{len(features)} columns")
    print(f"report      {mine['report']}")
    if not args.workdir:
        print(f"(tables kept in {workdir}; delete when done)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
