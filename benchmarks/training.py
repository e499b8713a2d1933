"""What does tracking cost? `mlcycle train` against a bare sklearn fit-and-score.

Both sides get the same table (the demo scenario, 200k rows by default), the same pipeline
(built by mlcycle.train.pipelines), the same split and the same seed. The bare side loads the
CSV, fits, predicts the validation and test splits and computes the same metrics; the tracked
side runs the whole `mlcycle train` call (MLflow run, params, metrics on every split, plots,
dataset lineage, skops model with signature and example, ONNX check, reference sample and
profile) against a fresh SQLite store. A third side runs the bare fit-and-score under
`mlflow.sklearn.autolog()` (its defaults, in a run, against its own fresh SQLite store): what
users would otherwise switch on. Prints the seconds of each, the ratios to the bare side, and
whether the tracked run meets the target, and the CPU seconds each side used (less noisy when
other work shares the machine), with the machine's load average before and after. Each
side's time is the best of `--repeat` runs. mlcycle fits with one BLAS thread fewer than
BLAS would use (its data side takes that core); the column `bare-1` is the bare side under
the same limit, and its ratio says how much of the difference is that setting alone.

    python benchmarks/training.py [--rows 200000] [--models linear,random_forest] [--repeat 2]
                                  [--no-autolog]
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.25


class Clock:
    """Wall seconds and this process's CPU seconds (all threads) since it started."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def bare_fit_and_score(csv: str, model: str, seed: int) -> tuple[float, float]:
    from mlcycle import data, model_metrics
    from mlcycle.train import evaluate, pipelines

    clock = Clock()
    df = data.load_table(csv)
    spec = data.infer_spec(df, "churned", time_column="event_time")
    splits = data.split(df, spec, seed)
    params = pipelines.estimator_params(model, spec.task, {}, seed)
    pipe = pipelines.build_pipeline(spec, model, params)
    pipe.fit(data.prepare_features(splits.train, spec), splits.train[spec.target])
    for part in (splits.val, splits.test):
        p = evaluate.predict_all(
            pipe, data.prepare_features(part, spec), part[spec.target], spec.task
        )
        model_metrics.compute_metrics(spec.task, p, "")
    return clock.read()


def bare_with_blas_limit(csv: str, model: str, seed: int) -> tuple[float, float]:
    """The bare side with the BLAS thread count mlcycle's fit uses (one fewer)."""
    from mlcycle.train.record import blas_leaves_a_core

    with blas_leaves_a_core():
        return bare_fit_and_score(csv, model, seed)


def autolog_fit_and_score(csv: str, model: str, seed: int, workdir: Path) -> tuple[float, float]:
    """The bare fit-and-score with MLflow's sklearn autologging on, in one run."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'autolog.db'}")
    experiment = mlflow.set_experiment("autolog")
    mlflow.sklearn.autolog(silent=True)
    try:
        clock = Clock()
        with mlflow.start_run(experiment_id=experiment.experiment_id):
            bare_fit_and_score(csv, model, seed)
        return clock.read()
    finally:
        mlflow.sklearn.autolog(disable=True)


def tracked_run(
    csv: str, model: str, seed: int, workdir: Path
) -> tuple[tuple[float, float], dict[str, float]]:
    import mlflow
    from mlflow import MlflowClient

    from mlcycle.train import TrainConfig, train

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    os.environ["MLCYCLE_ARTIFACT_ROOT"] = str(workdir / "mlartifacts")
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    clock = Clock()
    result = train(
        TrainConfig(data=csv, target="churned", time_column="event_time", model=model, seed=seed),
        client,
    )
    return clock.read(), result.seconds


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument(
        "--models",
        default="hist_gradient_boosting,random_forest,linear",
        help="comma-separated estimators; each gets its own row",
    )
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--no-autolog", action="store_true", help="skip the mlflow.sklearn.autolog() side"
    )
    args = ap.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    from mlcycle.data import make_scenario

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv = str(work / "scenario.csv")
        make_scenario(args.rows, seed=args.seed).to_csv(csv, index=False)
        # Warm imports and caches on a small table so neither side pays them.
        small = str(work / "small.csv")
        make_scenario(2000, seed=1).to_csv(small, index=False)
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        rows = []
        for model in models:
            bare_fit_and_score(small, model, args.seed)
            tracked_run(small, model, args.seed, work / f"warm-{model}")
            if not args.no_autolog:
                autolog_fit_and_score(small, model, args.seed, work / f"warm-{model}")
            # As the `mlcycle` executable does once a command has its client: what is imported
            # stays out of full collections (docs/training.md). Both sides share this process.
            gc.freeze()
            bare_times, tracked_times, autolog_times, limited_times = [], [], [], []
            phases: dict[str, float] = {}
            for i in range(args.repeat):
                bare_times.append(bare_fit_and_score(csv, model, args.seed))
                limited_times.append(bare_with_blas_limit(csv, model, args.seed))
                run_dir = work / f"{model}-{i}"
                run_dir.mkdir()
                t, phases = tracked_run(csv, model, args.seed, run_dir)
                tracked_times.append(t)
                if not args.no_autolog:
                    autolog_times.append(autolog_fit_and_score(csv, model, args.seed, run_dir))
            autolog = min(autolog_times, default=(float("nan"), float("nan")))
            rows.append(
                (model, min(bare_times), min(tracked_times), autolog, phases, min(limited_times))
            )

        print(
            f"rows={args.rows} repeat={args.repeat} (best of each); target ratio <= {TARGET_RATIO}"
            f"; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
        )
        print(
            "wall seconds decide the verdict; CPU seconds (this process, all threads) are\n"
            "printed too because they move less when other work shares the machine"
        )
        head = (
            f"{'model':<24}{'bare s':>8}{'tracked s':>11}{'ratio':>7}  "
            f"{'prep':>5}{'fit':>6}{'log':>6}  {'cpu bare':>8}{'tracked':>8}{'ratio':>7}  "
            f"{'autolog s':>9}{'ratio':>7}  {'bare-1 s':>8}{'ratio':>7}  verdict"
        )
        print(head)
        print("-" * len(head))
        for model, bare, tracked, autolog, phases, limited in rows:
            ratio = tracked[0] / bare[0]
            verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
            print(
                f"{model:<24}{bare[0]:>8.2f}{tracked[0]:>11.2f}{ratio:>7.2f}  "
                f"{phases.get('prepare_seconds', 0):>5.2f}"
                f"{phases.get('fit_seconds', 0):>6.2f}"
                f"{phases.get('log_seconds', 0):>6.2f}  "
                f"{bare[1]:>8.2f}{tracked[1]:>8.2f}{tracked[1] / bare[1]:>7.2f}  "
                f"{autolog[0]:>9.2f}{autolog[0] / bare[0]:>7.2f}  "
                f"{limited[0]:>8.2f}{tracked[0] / limited[0]:>7.2f}  {verdict}"
            )


if __name__ == "__main__":
    main()
