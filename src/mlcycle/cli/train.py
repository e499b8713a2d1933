"""``mlcycle train`` and ``mlcycle search-worker``: fit, search and track models."""

from __future__ import annotations

import json
import sys

import click

from mlcycle.cli._common import cli, context, parse_kv, ui_hint
from mlcycle.cli._options import json_option
from mlcycle.errors import ConfigError


def _estimator_spec(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A malformed ``--estimator`` is a usage error (exit 2), judged before anything runs."""
    if not value:  # MLproject passes an unset parameter as an empty string
        return None
    from mlcycle.train.pipelines import check_estimator_spec

    try:
        return check_estimator_spec(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@cli.command()
@click.option("--data", required=True, help="CSV or Parquet file: a path or s3:// URI.")
@click.option("--target", required=True, help="Column to predict.")
@click.option(
    "--model",
    default=None,
    help="linear (logistic/ridge), random_forest (rf), hist_gradient_boosting (hgb), "
    "xgboost (xgb) or lightgbm (lgbm) [default: hist_gradient_boosting].",
)
@click.option(
    "--estimator",
    default=None,
    metavar="MODULE:CALLABLE",
    callback=_estimator_spec,
    help="Your own estimator instead of --model: CALLABLE() returns an unfitted "
    "scikit-learn estimator, fitted after mlcycle's preprocessing.",
)
@click.option(
    "--allow-pickle",
    is_flag=True,
    help="Save a model whose classes are not reviewed for skops (an --estimator's own "
    "class) with cloudpickle; loading it then needs --allow-pickle too.",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Estimator hyper-parameter (repeatable).",
)
@click.option(
    "--task", type=click.Choice(["classification", "regression"]), help="Detected when omitted."
)
@click.option("--time-column", help="Split by this column's order instead of at random.")
@click.option("--drop", multiple=True, metavar="COLUMN", help="Column to leave out (repeatable).")
@click.option(
    "--categorical",
    multiple=True,
    metavar="COLUMN",
    help="Treat this feature column as categories whatever its values (repeatable).",
)
@click.option(
    "--trials",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Search trials as nested runs (0: one fit).",
)
@click.option(
    "--search-engine",
    type=click.Choice(["random", "optuna"]),
    default=None,
    help=(
        "random (in process) or optuna (a shared study) "
        "[default: optuna with --search-storage, else random]."
    ),
)
@click.option(
    "--search-storage",
    default=None,
    metavar="URL",
    help=(
        "Optuna RDB storage the workers share, e.g. postgresql+psycopg2://… "
        "(the tracking database)."
    ),
)
@click.option(
    "--study-name",
    default=None,
    help="Optuna study name [default: mlcycle-RUN_ID]; workers join it by name.",
)
@click.option(
    "--search-workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes running trials on this machine (optuna).",
)
@click.option("--seed", type=int, default=None, help="Random seed [default: MLCYCLE_SEED or 42].")
@click.option(
    "--experiment", default=None, help="Experiment name [default: MLCYCLE_EXPERIMENT or mlcycle]."
)
@click.option("--run-name", default=None, help="Name of the MLflow run.")
@click.option(
    "--register-as",
    default=None,
    metavar="NAME",
    help="Register the model as a new version of NAME.",
)
@click.option("--no-onnx", is_flag=True, help="Skip the ONNX copy.")
@json_option()
def train(
    data: str,
    target: str,
    model: str | None,
    estimator: str | None,
    allow_pickle: bool,
    params: tuple[str, ...],
    task: str | None,
    time_column: str | None,
    drop: tuple[str, ...],
    categorical: tuple[str, ...],
    trials: int,
    search_engine: str | None,
    search_storage: str | None,
    study_name: str | None,
    search_workers: int,
    seed: int | None,
    experiment: str | None,
    run_name: str | None,
    register_as: str | None,
    no_onnx: bool,
    as_json: bool,
) -> None:
    """Train a model on a table and track it as an MLflow run."""
    from mlcycle.train import TrainConfig
    from mlcycle.train import train as train_fn

    # MLproject passes unset optional parameters as empty strings.
    time_column = time_column or None
    register_as = register_as or None
    if model and estimator:
        raise click.UsageError("give --model or --estimator, not both")
    settings, client = context(experiment=experiment, seed=seed)
    cfg = TrainConfig(
        data=data,
        target=target,
        model=estimator or model or "hist_gradient_boosting",
        allow_pickle=allow_pickle or settings.allow_pickle,
        params=parse_kv(params, "--param"),
        task=task,  # type: ignore[arg-type]
        time_column=time_column,
        drop=drop,
        categorical=categorical,
        seed=settings.seed,
        trials=trials,
        search_engine=search_engine,
        search_storage=search_storage or None,
        study_name=study_name or None,
        search_workers=search_workers,
        experiment=settings.experiment,
        run_name=run_name,
        onnx=not no_onnx,
    )
    bar = None
    if trials:
        from tqdm import tqdm

        bar = tqdm(total=trials, desc="search", unit="trial", file=sys.stderr)

    def on_trial(i: int, n: int, metrics: dict[str, float]) -> None:
        assert bar is not None
        bar.set_postfix({k.removeprefix("val_"): f"{v:.4f}" for k, v in list(metrics.items())[:2]})
        bar.update(1)

    try:
        result = train_fn(cfg, client, on_trial=on_trial if bar else None, settings=settings)
    finally:
        if bar is not None:
            bar.close()
    registered = None
    if register_as:
        from mlcycle import register as register_mod

        registered = register_mod.register(client, result.run_id, register_as)
    if as_json:
        out = result.as_dict()
        if registered is not None:
            out["registered_version"] = str(registered.version)
        click.echo(json.dumps(out, indent=2))
        return
    keys = (
        ["test_roc_auc", "test_accuracy", "test_f1", "test_log_loss"]
        if result.task == "classification"
        else ["test_rmse", "test_mae", "test_r2"]
    )
    click.echo(f"run        {result.run_id}  (experiment {result.experiment_id})")
    if result.child_run_ids:
        click.echo(
            f"search     {len(result.child_run_ids)} trials as nested runs; "
            "best summarised on the parent"
        )
    click.echo(
        "metrics    "
        + "  ".join(f"{k}={result.metrics[k]:.4f}" for k in keys if k in result.metrics)
    )
    click.echo(f"model      {result.model_uri}  (runs:/{result.run_id}/model)")
    click.echo(f"onnx       {result.onnx_note}")
    if registered is not None:
        click.echo(f"registered {register_as} version {registered.version} (Staging, @challenger)")
    click.echo(f"ui         {ui_hint(settings, result.experiment_id, result.run_id)}")


@cli.command("search-worker")
@click.option(
    "--search-storage",
    required=True,
    metavar="URL",
    help="The study's Optuna RDB storage (postgresql+psycopg2://…).",
)
@click.option(
    "--study-name",
    required=True,
    help="Study to join (started by mlcycle train --search-engine optuna).",
)
@click.option(
    "--max-trials",
    type=click.IntRange(min=1),
    default=None,
    help="Leave after this many trials [default: until the study has all its trials].",
)
def search_worker_cmd(search_storage: str, study_name: str, max_trials: int | None) -> None:
    """Join a running hyper-parameter search and run its trials as nested runs.

    The tracking store is MLFLOW_TRACKING_URI when set, else the one the study recorded.
    """
    from mlcycle.train.search import run_worker

    settings, _ = context()
    # Set by MLFLOW_TRACKING_URI / MLCYCLE_TRACKING_URI, rather than the built-in default.
    explicit = "tracking_uri" in settings.model_fields_set and bool(settings.tracking_uri)
    done = run_worker(
        search_storage,
        study_name,
        tracking_uri=settings.tracking_uri if explicit else None,
        max_trials=max_trials,
    )
    click.echo(f"worker     ran {done} trial(s) of study {study_name}")
