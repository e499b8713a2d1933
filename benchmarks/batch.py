"""Batch scoring: stock `mlflow models predict` vs `mlcycle predict` in process and on Spark.

One registered model (hist gradient boosting on the demo scenario) scores the same CSV of
feature rows (1M by default) three ways:

- stock: ``mlflow models predict -m models:/NAME/1 -i in.csv -t csv -o out.json
  --env-manager local`` in a subprocess (its whole run: start, model load, read, score, write
  JSON);
- pandas: :func:`mlcycle.batch.predict` in process (resolve, read, score, write partitioned
  Parquet);
- spark: the same call with ``engine="spark"`` on ``local[N]`` (session start is reported
  apart; the rate is for the scoring call itself).

Prints seconds, rows/s, ratios to the stock run, and checks every prediction agrees.

    python benchmarks/batch.py [--rows 1000000] [--master local[2]] [--skip-spark]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

NAME = "bench_batch"


def setup(workdir: Path, rows: int) -> tuple[str, Path]:
    """Train and register the model; write the CSV to score. Returns (tracking URI, CSV)."""
    import mlflow
    from mlflow import MlflowClient

    from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
    from mlcycle.train import TrainConfig, train

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["MLCYCLE_ARTIFACT_ROOT"] = str(workdir / "mlartifacts")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    train_csv = workdir / "train.csv"
    make_scenario(20_000, seed=1).to_csv(train_csv, index=False)
    result = train(
        TrainConfig(
            data=str(train_csv), target=SCENARIO_TARGET, time_column=SCENARIO_TIME,
            model="hist_gradient_boosting", plots=False, onnx=False,
        ),
        client,
    )  # fmt: skip
    mv = mlflow.register_model(result.model_uri, NAME)
    client.set_registered_model_alias(NAME, "champion", mv.version)
    frame = make_scenario(rows, period="covariate", seed=2).drop(
        columns=[SCENARIO_TARGET, SCENARIO_TIME]
    )
    csv = workdir / "in.csv"
    frame.to_csv(csv, index=False)
    return uri, csv


def run_stock(csv: Path, workdir: Path) -> tuple[float, np.ndarray]:
    out = workdir / "stock.json"
    cmd = [
        str(Path(sys.executable).with_name("mlflow")), "models", "predict",
        "-m", f"models:/{NAME}/1", "-i", str(csv), "-t", "csv", "-o", str(out),
        "--env-manager", "local",
    ]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=os.environ.copy())
    seconds = time.perf_counter() - t0
    doc = json.loads(out.read_text())
    preds = doc["predictions"] if isinstance(doc, dict) else doc
    return seconds, np.asarray(preds)


def _in_input_order(output: Path) -> np.ndarray:
    """Predictions of a batch output in input row order.

    Both engines number rows as (request, record_index): a chunk (pandas) or an input split
    (Spark), in file order.
    """
    df = pd.read_parquet(output, columns=["request_id", "record_index", "prediction"])
    df["part"] = df["request_id"].str.rsplit("-", n=1).str[1].astype(int)
    return df.sort_values(["part", "record_index"])["prediction"].to_numpy()


def run_mlcycle(
    csv: Path, workdir: Path, engine: str, spark: object = None
) -> tuple[float, np.ndarray]:
    from mlflow import MlflowClient

    from mlcycle.batch import predict

    output = workdir / f"out-{engine}"
    t0 = time.perf_counter()
    predict(
        f"models:/{NAME}@champion", str(csv), str(output), client=MlflowClient(),
        engine=engine, spark=spark,  # type: ignore[arg-type]
    )  # fmt: skip
    return time.perf_counter() - t0, _in_input_order(output)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--skip-spark", action="store_true")
    ap.add_argument("--skip-stock", action="store_true")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        t0 = time.perf_counter()
        _, csv = setup(workdir, args.rows)
        print(
            f"rows={args.rows}  setup (train, register, write CSV) {time.perf_counter() - t0:.1f}s"
        )
        results: dict[str, tuple[float, np.ndarray]] = {}
        if not args.skip_stock:
            results["stock mlflow models predict"] = run_stock(csv, workdir)
        results["mlcycle predict (pandas)"] = run_mlcycle(csv, workdir, "pandas")
        spark_start = None
        if not args.skip_spark:
            from mlcycle.batch import spark_session

            t1 = time.perf_counter()
            spark = spark_session(args.master, app_name="mlcycle-bench")
            spark.sparkContext.setLogLevel("ERROR")
            spark_start = time.perf_counter() - t1
            results[f"mlcycle predict (spark {args.master})"] = run_mlcycle(
                csv, workdir, "spark", spark
            )
            spark.stop()
        base_name = next(iter(results))
        base_s, base_p = results[base_name]
        print(f"{'side':<38}{'seconds':>9}{'rows/s':>12}{'vs ' + base_name[:5]:>10}{'agree':>8}")
        for name, (s, p) in results.items():
            agree = "yes" if len(p) == len(base_p) and np.array_equal(p, base_p) else "NO"
            print(f"{name:<38}{s:>9.1f}{args.rows / s:>12,.0f}{base_s / s:>9.2f}x{agree:>8}")
        if spark_start is not None:
            print(f"(Spark session start {spark_start:.1f}s, not in the spark row)")


if __name__ == "__main__":
    main()
