"""The ``mlcycle`` command line: parse, call a stage function, render, map errors.

This is the only module that prints or exits. Every command builds its settings and MLflow
client here (the composition root) and passes them to the stage functions.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from mlcycle import __version__
from mlcycle.errors import MlcycleError
from mlcycle.redact import RedactingFilter, redact_text, redact_uri

logger = logging.getLogger("mlcycle")


HELP_OPTIONS = ["-h", "--help"]


class _Group(click.Group):
    """Turns domain errors into ``click.ClickException`` (exit 1); usage errors stay exit 2."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        # Each command carries -h/--help itself, also when parsed without the group (tests,
        # the docs generator): click caches a command's help option on first use.
        cmd.context_settings.setdefault("help_option_names", HELP_OPTIONS)
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlcycleError as exc:
            raise click.ClickException(redact_text(str(exc))) from exc
        except Exception as exc:
            message = _access_error(exc)
            if message is None:
                raise
            raise click.ClickException(redact_text(message)) from exc


def _access_error(exc: Exception) -> str | None:
    """A tracking server's 401/403 as one line for the user (``None`` for other errors)."""
    status = getattr(exc, "get_http_status_code", lambda: None)()
    if status == 401:
        return (
            "not authenticated by the tracking server: check MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD"
        )
    if status == 403:
        detail = str(exc).split(". Response body:", 1)[0]
        return (
            f"permission denied by the tracking server ({detail}); an admin can grant "
            "EDIT or MANAGE on the experiment or registered model"
        )
    return None


def _private_files() -> None:
    # Before any store, artifact or log file exists: everything this process creates gets
    # the configured umask (owner-only unless MLCYCLE_UMASK says otherwise).
    from mlcycle.config import load_settings
    from mlcycle.storage import apply_umask

    apply_umask(load_settings().umask)


def _quiet_mlflow(verbose: int) -> None:
    # MLflow's own progress bars and banners would bury mlcycle's output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # Against a tracking server MLflow writes "View run … at: URL" to stdout, which would
    # break `--json` output; mlcycle prints its own ui line.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if verbose:
        return
    # MLflow configures its own loggers when imported, so its level goes by its variable.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # The evaluator warns "model type looks like None" on every gate: it cannot see labels.
    logging.getLogger("mlflow.models.evaluation").setLevel(logging.ERROR)
    # MLflow's hints about integer columns and ambiguous dataset sources concern choices
    # mlcycle made on purpose (docs/training.md); -v shows them.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")


#: Long-running services log their progress at INFO by default; other commands print results.
_SERVICES = frozenset({"serve", "server", "loop"})


def _context(**overrides: Any) -> tuple[Any, Any]:
    """Settings and a real ``MlflowClient``: built only here."""
    from mlflow import MlflowClient

    from mlcycle.config import apply_tracking, load_settings

    settings = load_settings(**overrides)
    apply_tracking(settings)
    return settings, MlflowClient(**settings.client_kwargs())


def _parse_kv(values: tuple[str, ...], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got '{item}'", param_hint=flag)
        out[key.strip()] = value.strip()
    return out


def _ui_hint(settings: Any, experiment_id: str | None = None, run_id: str | None = None) -> str:
    """How to look at it: the server's page, or the `mlflow ui` command and its page."""
    uri = redact_uri(settings.tracking_uri)
    page = ""
    if experiment_id is not None:
        # The training-runs view (MLflow 3 opens experiments on its GenAI overview).
        page = f"/#/experiments/{experiment_id}/runs" + (f"/{run_id}" if run_id else "")
    if uri.startswith(("http://", "https://")):
        return f"open {uri.rstrip('/')}{page}"
    hint = f"mlflow ui --backend-store-uri {uri}"
    return f"{hint}, then http://127.0.0.1:5000{page}" if page else hint


@click.group(cls=_Group, context_settings={"help_option_names": HELP_OPTIONS})
@click.version_option(__version__, prog_name="mlcycle")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="-v: progress details (and MLflow's warnings); -vv: debug details. To stderr.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """The machine-learning lifecycle on MLflow: train, register, serve, monitor, retrain.

    Settings come from the environment (MLFLOW_TRACKING_URI, MLCYCLE_*); the default is an
    embedded store: sqlite:///mlflow.db and ./mlartifacts in the working directory.
    """
    if verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1 or ctx.invoked_subcommand in _SERVICES:
        level = logging.INFO
    else:
        level = logging.WARNING
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("mlcycle").setLevel(level)
    _private_files()
    for handler in logging.getLogger().handlers:
        # Passwords in URIs never reach the terminal, whichever library logs them.
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    _quiet_mlflow(verbose)


# --------------------------------------------------------------------------- train


@cli.command()
@click.option("--data", required=True, help="CSV or Parquet file: a path or s3:// URI.")
@click.option("--target", required=True, help="Column to predict.")
@click.option(
    "--model",
    default="hist_gradient_boosting",
    show_default=True,
    help="linear (logistic/ridge), random_forest (rf) or hist_gradient_boosting (hgb).",
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
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def train(
    data: str,
    target: str,
    model: str,
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
    settings, client = _context(experiment=experiment, seed=seed)
    cfg = TrainConfig(
        data=data,
        target=target,
        model=model,
        params=_parse_kv(params, "--param"),
        task=task,  # type: ignore[arg-type]
        time_column=time_column,
        drop=drop,
        categorical=categorical,
        seed=settings.seed,
        trials=trials,
        search_engine=search_engine
        or ("optuna" if search_storage or search_workers > 1 else "random"),
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
        result = train_fn(cfg, client, on_trial=on_trial if bar else None)
    finally:
        if bar is not None:
            bar.close()
    registered = None
    if register_as:
        from mlcycle import register as register_mod

        registered = register_mod.register(client, result.run_id, register_as)
    if as_json:
        out = {
            "run_id": result.run_id,
            "experiment_id": result.experiment_id,
            "model_uri": result.model_uri,
            "task": result.task,
            "metrics": result.metrics,
            "onnx_exact": result.onnx_exact,
            "child_run_ids": list(result.child_run_ids),
        }
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
        click.echo(f"registered {register_as} version {registered.version} (@challenger, Staging)")
    click.echo(f"ui         {_ui_hint(settings, result.experiment_id, result.run_id)}")


# --------------------------------------------------------------------------- data


@cli.command()
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False),
    help="CSV or Parquet file to write.",
)
@click.option("--rows", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option(
    "--period",
    type=click.Choice(["reference", "covariate", "concept", "both"]),
    default="reference",
    show_default=True,
    help="Which scenario period (docs/scenario.md).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--start", default="2026-01-01", show_default=True, help="First timestamp of the period."
)
def scenario(output: str, rows: int, period: str, seed: int, start: str) -> None:
    """Write the demo scenario's churn table (optionally a drifted period)."""
    from mlcycle.data import make_scenario

    df = make_scenario(rows, period=period, seed=seed, start=start)  # type: ignore[arg-type]
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    click.echo(f"wrote {len(df)} rows ({period}) to {path}")


# --------------------------------------------------------------------------- demo


@cli.command()
@click.option(
    "--workdir",
    default="demo-output",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the demo writes data, reports and logs.",
)
@click.option(
    "--rows",
    type=click.IntRange(min=1000),
    default=20_000,
    show_default=True,
    help="Rows of the training table, and records of drifted traffic per monitored window.",
)
def demo(workdir: str, rows: int) -> None:
    """Run the whole lifecycle on a fresh embedded store of its own.

    Trains, promotes through the gate, serves @champion with a real `mlcycle serve` process,
    sends it drifted traffic over HTTP, monitors what it logged, retrains, and shows the
    running server answering with the new champion. Each run first empties WORKDIR (only a
    directory an earlier demo made) and keeps its SQLite store, artifacts and inference log
    there, so it runs the same every time and leaves your own stores alone.
    """
    from mlcycle.demo import fresh_store, run_demo
    from mlcycle.extras import require

    require("serve", feature="mlcycle demo")
    require("monitoring", feature="mlcycle demo")
    stores = fresh_store(Path(workdir))
    # Stages that read the environment themselves (a training run's experiment location,
    # the model server the demo starts) must find the demo's stores there too.
    os.environ.update(
        {
            "MLFLOW_TRACKING_URI": stores["tracking_uri"],
            "MLFLOW_REGISTRY_URI": stores["registry_uri"],
            "MLCYCLE_ARTIFACT_ROOT": stores["artifact_root"],
            "MLCYCLE_INFERENCE_LOG": stores["inference_log"],
        }
    )
    settings, client = _context(**stores)
    for line in run_demo(settings, client, Path(workdir), rows=rows):
        click.echo(line)
    click.echo(f"look at it: {_ui_hint(settings)}")


# --------------------------------------------------------------------------- build-docker


@cli.command("build-docker")
@click.option(
    "--model",
    "model_uri",
    default=None,
    metavar="URI",
    help=(
        "Model the image serves by default (MODEL_URI) "
        "[default: models:/mlcycle-model@champion]; required with --stock."
    ),
)
@click.option("--image", default=None, metavar="NAME", help="Tag of the image to build.")
@click.option(
    "--stock",
    is_flag=True,
    help="Build MLflow's own serving image (mlflow models build-docker) instead.",
)
@click.option(
    "--env-manager",
    default="local",
    show_default=True,
    help="With --stock: local, virtualenv, uv or conda.",
)
@click.option(
    "--dockerfile-only",
    "dockerfile_only",
    default=None,
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="Write the mlcycle Dockerfile to PATH and build nothing (no Docker needed).",
)
@click.option(
    "--context",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, exists=True),
    help="Build context: the mlcycle repository root.",
)
def build_docker(
    model_uri: str | None,
    image: str | None,
    stock: bool,
    env_manager: str,
    dockerfile_only: str | None,
    context: str,
) -> None:
    """Build a model-server image: mlcycle's (default) or MLflow's stock one."""
    from mlcycle.serve import image as image_mod

    if stock and dockerfile_only:
        raise click.UsageError(
            "--dockerfile-only writes the mlcycle Dockerfile; it cannot be combined with --stock"
        )
    if dockerfile_only:
        text = image_mod.render_dockerfile(model_uri=model_uri or image_mod.DEFAULT_MODEL_URI)
        Path(dockerfile_only).write_text(text)
        click.echo(f"wrote {dockerfile_only}")
        return
    if not image:
        raise click.UsageError("--image is required unless --dockerfile-only is given")
    if stock:
        if not model_uri:
            raise click.UsageError("--model is required with --stock")
        image_mod.build_stock_image(model_uri, image, env_manager)
    else:
        text = image_mod.render_dockerfile(model_uri=model_uri or image_mod.DEFAULT_MODEL_URI)
        image_mod.build_image(image, text, context)
    click.echo(f"built image {image}")


# --------------------------------------------------------------------------- registry


def _gate_policy(
    mode: str,
    metric: str | None,
    min_score: float | None,
    min_improvement: float,
    max_latency: float | None,
    allow_pickle: bool = False,
) -> Any:
    from mlcycle.register import GatePolicy

    return GatePolicy(
        mode=mode,  # type: ignore[arg-type]  # click.Choice guarantees the literal
        metric=metric,
        min_score=min_score,
        min_improvement=min_improvement,
        max_latency_ms_per_row=max_latency,
        allow_pickle=allow_pickle,
    )


def _allow_pickle_option(fn: Any) -> Any:
    """``--allow-pickle``: the one opt-in of mlcycle.trust (or MLCYCLE_ALLOW_PICKLE=true)."""
    return click.option(
        "--allow-pickle",
        is_flag=True,
        help="Load models whose files can run code (pickle, cloudpickle, code/) "
        "[default: MLCYCLE_ALLOW_PICKLE or off]. Only for models whose authors you trust.",
    )(fn)


def _eval_frame(path: str | None) -> Any:
    if path is None:
        return None
    from mlcycle.data import load_table

    return load_table(path)


def _gate_options(fn: Any) -> Any:
    """The gate's policy flags, shared by ``gate`` and ``promote``."""
    options = [
        click.option(
            "--mode",
            type=click.Choice(["enabled", "dry_run", "disabled"]),
            default="enabled",
            show_default=True,
            help="dry_run records the decision without enforcing it.",
        ),
        click.option(
            "--metric",
            default=None,
            help="Gate metric [default: roc_auc (classification) or rmse (regression)].",
        ),
        click.option(
            "--min-score",
            type=float,
            default=None,
            help="Minimum absolute metric (maximum for lower-is-better metrics).",
        ),
        click.option(
            "--min-improvement",
            type=float,
            default=0.0,
            show_default=True,
            help="Required improvement over the champion.",
        ),
        click.option(
            "--max-latency-ms",
            "max_latency",
            type=float,
            default=None,
            help="Maximum prediction latency per row, ms.",
        ),
        click.option(
            "--eval-data",
            default=None,
            metavar="PATH",
            help="CSV/Parquet to score both models on "
            "[default: the challenger's held-out test split].",
        ),
        click.option(
            "--target",
            default=None,
            metavar="COL",
            help="Column the model predicts, for versions whose contract does not say.",
        ),
        _allow_pickle_option,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _echo_decision(d: Any) -> None:
    verdict = "PASS" if d.passed else "FAIL"
    champ = f"champion v{d.champion_version}" if d.champion_version else "no champion"
    click.echo(f"gate       {verdict} ({d.mode}) challenger v{d.challenger_version} vs {champ}")
    for reason in d.reasons:
        click.echo(f"           - {reason}")


@cli.command("register")
@click.option("--run-id", required=True, help="Training run whose model to register.")
@click.option(
    "--name",
    default=None,
    help="Registered model name [default: MLCYCLE_MODEL_NAME or mlcycle-model].",
)
@click.option("--description", default=None, help="Description of the new version.")
@click.option(
    "--target",
    default=None,
    metavar="COL",
    help="Adopt a run mlcycle did not train: the column its model predicts (needs --reference).",
)
@click.option(
    "--reference",
    default=None,
    metavar="TABLE",
    help="Adopt: training (reference) rows, CSV/Parquet with features and target.",
)
@click.option(
    "--eval-data",
    default=None,
    metavar="TABLE",
    help="Adopt: held-out rows the gate scores by default (CSV/Parquet).",
)
@click.option(
    "--task",
    type=click.Choice(["classification", "regression"]),
    default=None,
    help="Adopt: the task [default: inferred from the target].",
)
@click.option("--pos-label", default=None, help="Adopt: the positive class of a binary model.")
@_allow_pickle_option
def register_cmd(
    run_id: str,
    name: str | None,
    description: str | None,
    target: str | None,
    reference: str | None,
    eval_data: str | None,
    task: str | None,
    pos_label: str | None,
    allow_pickle: bool,
) -> None:
    """Register a run's model as a new version (Staging, @challenger).

    With --target and --reference, any run's model is adopted (plain MLflow code, autolog):
    the lifecycle contract (target, task, drift reference, evaluation split) is written to
    the run first, as mlcycle train or mlcycle.log_contract would have.
    """
    from mlcycle.register import adopt, register

    adopting = target or reference or eval_data or task or pos_label
    if adopting and not (target and reference):
        missing = "--target" if not target else "--reference"
        raise click.UsageError(
            f"adopting a run needs --target and --reference; {missing} is missing"
        )
    settings, client = _context(model_name=name)
    if target and reference:
        from mlcycle.data import load_table

        mv = adopt(
            client,
            run_id,
            settings.model_name,
            load_table(reference),
            target=target,
            eval_data=_eval_frame(eval_data),
            task=task,
            pos_label=pos_label,
            allow_pickle=allow_pickle or settings.allow_pickle,
            description=description,
        )
    else:
        mv = register(client, run_id, settings.model_name, description)
    click.echo(
        f"registered {settings.model_name} version {mv.version} (Staging, @challenger) "
        f"from run {run_id}"
    )


@cli.command("gate")
@click.argument("name")
@click.option("--version", default=None, help="Challenger version [default: @challenger].")
@_gate_options
def gate_cmd(
    name: str,
    version: str | None,
    mode: str,
    metric: str | None,
    min_score: float | None,
    min_improvement: float,
    max_latency: float | None,
    eval_data: str | None,
    target: str | None,
    allow_pickle: bool,
) -> None:
    """Score challenger and champion on the same data; exit 1 when an enabled gate fails."""
    from mlcycle.errors import GateRejected
    from mlcycle.register import gate

    settings, client = _context()
    policy = _gate_policy(
        mode, metric, min_score, min_improvement, max_latency,
        allow_pickle or settings.allow_pickle,
    )  # fmt: skip
    d = gate(client, name, version, policy, _eval_frame(eval_data), target)
    _echo_decision(d)
    if mode == "enabled" and not d.passed:
        raise GateRejected(f"{name} version {d.challenger_version} did not pass the gate")


@cli.command("promote")
@click.argument("name")
@click.option("--version", default=None, help="Version to promote [default: @challenger].")
@click.option(
    "--force", is_flag=True, help="Bypass the gate and the schema check (needs --reason)."
)
@click.option("--reason", default=None, help="Why; kept in the audit trail.")
@_gate_options
def promote_cmd(
    name: str,
    version: str | None,
    force: bool,
    reason: str | None,
    mode: str,
    metric: str | None,
    min_score: float | None,
    min_improvement: float,
    max_latency: float | None,
    eval_data: str | None,
    target: str | None,
    allow_pickle: bool,
) -> None:
    """Gate a version and make it the champion (Production, @champion)."""
    from mlcycle.register import promote
    from mlcycle.uris import model_uri

    settings, client = _context()
    policy = _gate_policy(
        mode, metric, min_score, min_improvement, max_latency,
        allow_pickle or settings.allow_pickle,
    )  # fmt: skip
    result = promote(
        client,
        name,
        version,
        policy=policy,
        force=force,
        reason=reason,
        eval_data=_eval_frame(eval_data),
        target=target,
    )
    if result.decision is not None:
        _echo_decision(result.decision)
    was = (
        f"; v{result.previous_version} → Archived"
        if result.previous_version not in (None, result.version)
        else ""
    )
    forced = " (forced)" if result.forced else ""
    click.echo(f"promoted   {name} version {result.version} → Production (@champion){forced}{was}")
    click.echo(f"serve      {model_uri(name, alias='champion')}")


@cli.command("rollback")
@click.argument("name")
@click.option("--reason", required=True, help="Why; kept in the audit trail.")
def rollback_cmd(name: str, reason: str) -> None:
    """Restore the previous champion (stage and alias)."""
    from mlcycle.register import rollback

    _, client = _context()
    result = rollback(client, name, reason)
    click.echo(
        f"rolled back {name}: version {result.previous_version} → Archived, "
        f"version {result.version} → Production (@champion)"
    )


@cli.command("history")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the trail as JSON.")
def history_cmd(name: str, as_json: bool) -> None:
    """Print the promotion and rollback trail: who, when, from, to, metrics, reason."""
    from mlcycle.register import history

    _, client = _context()
    entries = history(client, name)
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    if not entries:
        click.echo(f"no promotions of {name} yet")
        return
    # The gate's metric names are MLflow's; show them as `mlcycle train` and `gate` print them.
    shown = {"challenger_roc_auc": "roc_auc", "challenger_root_mean_squared_error": "rmse"}
    for e in entries:
        score = next(
            (f" {shown[k]}={v:.4f}" for k, v in sorted(e.metrics.items()) if k in shown), ""
        )
        forced = " forced" if e.forced and e.action == "promote" else ""
        why = f" reason: {e.reason}" if e.reason else ""
        failed = ""
        if e.outcome == "failed":
            failed = f" FAILED (undone): {e.error}"
        elif e.outcome == "pending":
            failed = " UNFINISHED (interrupted; check the registry)"
        click.echo(
            f"{e.when}  {e.who:<10} {e.action:<8} v{e.from_version or '-'} → "
            f"v{e.to_version}{forced}{score}{why}{failed}"
        )


# --------------------------------------------------------------------------- serve


@cli.command("serve")
@click.option(
    "--model",
    "model_uri",
    required=True,
    help="models:/NAME@champion, models:/NAME/Production, runs:/ID/model or a local path.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes."
)
@click.option(
    "--inference-log",
    default=None,
    metavar="PATH|s3://",
    help="Inference log root [default: MLCYCLE_INFERENCE_LOG or ./inference-log].",
)
@click.option("--no-inference-log", is_flag=True, help="Do not log scored records.")
@click.option(
    "--reload-interval",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds between registry polls for a moved alias/stage (0: never).",
)
@click.option(
    "--shadow",
    is_flag=True,
    help="Also score @challenger off the response path and log it (role=shadow).",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1),
    default=5 * 1024 * 1024,
    show_default=True,
    help="Larger bodies get 413 before parsing.",
)
@click.option(
    "--max-rows",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Rows per request (413 above).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.001),
    default=10.0,
    show_default=True,
    help="Seconds before a request is shed with 503 + Retry-After.",
)
@click.option(
    "--max-batch-rows",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Rows per micro-batch.",
)
@click.option(
    "--max-wait-ms",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Longest wait for a micro-batch to fill.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    help="Seconds to finish in-flight requests after SIGTERM.",
)
@_allow_pickle_option
def serve_cmd(
    model_uri: str,
    host: str,
    port: int,
    workers: int,
    inference_log: str | None,
    no_inference_log: bool,
    reload_interval: float,
    shadow: bool,
    max_body_bytes: int,
    max_rows: int,
    timeout: float,
    max_batch_rows: int,
    max_wait_ms: float,
    grace: float,
    allow_pickle: bool,
) -> None:
    """Serve a model over MLflow's /invocations protocol, with metrics and an inference log."""
    from mlcycle.extras import require

    require("serve", feature="mlcycle serve")
    from mlcycle.serve.app import ServeOptions
    from mlcycle.serve.server import ServerConfig, serve

    settings, client = _context(inference_log=inference_log)
    config = ServerConfig(
        model_uri=model_uri,
        host=host,
        port=port,
        workers=workers,
        inference_log=None if no_inference_log else settings.inference_log,
        allow_pickle=allow_pickle or settings.allow_pickle,
        tracking_uri=settings.tracking_uri,
        registry_uri=settings.registry_uri,
        grace=grace,
        options=ServeOptions(
            max_body_bytes=max_body_bytes,
            max_rows=max_rows,
            timeout=timeout,
            max_batch_rows=max_batch_rows,
            max_wait=max_wait_ms / 1000.0,
            reload_interval=reload_interval or None,
            shadow=shadow,
        ),
    )
    click.echo(f"serving {model_uri} on http://{host}:{port} ({workers} worker(s))", err=True)
    serve(config, client)


# --------------------------------------------------------------------------- monitoring


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> Any:
    from datetime import timedelta

    unit = text[-1:].lower()
    try:
        amount = float(text[:-1]) if unit in _DURATION_UNITS else float(text)
    except ValueError:
        raise click.BadParameter(
            f"'{text}' is not a duration like 30s, 10m, 1h, 1d", param_hint="--every"
        ) from None
    seconds = amount * _DURATION_UNITS.get(unit, 1)
    if seconds <= 0:
        raise click.BadParameter("the period must be positive", param_hint="--every")
    return timedelta(seconds=seconds)


def _monitor_options(fn: Any) -> Any:
    options = [
        click.option("--model", "model_name", required=True, help="Registered model name."),
        click.option("--version", default=None, help="Version monitored [default: @champion]."),
        click.option(
            "--reference",
            default=None,
            help="Reference table (CSV/Parquet) instead of the version's training reference; "
            "used as given, no artifacts needed.",
        ),
        click.option(
            "--target",
            default=None,
            metavar="COL",
            help="Column the model predicts, for a --reference table of a version whose "
            "contract does not say.",
        ),
        click.option(
            "--labels",
            default=None,
            help="Late labels: CSV/Parquet with record_id (or request_id, [record_index]), target.",
        ),
        click.option(
            "--output",
            default="monitoring-reports",
            show_default=True,
            type=click.Path(file_okay=False),
            help="Where reports are written.",
        ),
        click.option(
            "--method",
            "methods",
            multiple=True,
            metavar="COLUMN=METHOD",
            help="Drift method of a column (wasserstein, jensenshannon, psi, ks, chisquare, …).",
        ),
        click.option(
            "--min-rows",
            type=click.IntRange(min=1),
            default=200,
            show_default=True,
            help="Smaller windows are 'insufficient data'.",
        ),
        click.option(
            "--drift-share",
            type=click.FloatRange(0, 1, min_open=True),
            default=0.3,
            show_default=True,
            help="Policy: a window with this share of drifted features is bad.",
        ),
        click.option(
            "--quality-drop",
            type=float,
            default=0.05,
            show_default=True,
            help="Policy: a window whose quality dropped this much is bad.",
        ),
        click.option(
            "--bad-windows",
            type=click.IntRange(min=1),
            default=2,
            show_default=True,
            help="Policy: N bad windows ...",
        ),
        click.option(
            "--of-last",
            type=click.IntRange(min=1),
            default=3,
            show_default=True,
            help="Policy: ... of the last M windows.",
        ),
        click.option(
            "--engine",
            type=click.Choice(["pandas", "arrow", "spark"]),
            default="pandas",
            show_default=True,
            help="How the inference log is read: whole into pandas; streamed as Arrow batches "
            "(bounded memory, any window size); or summarised by Spark where it lies "
            "(pip install 'mlcycle[spark]'). Same verdicts.",
        ),
        click.option(
            "--master",
            "spark_master",
            default="local[2]",
            show_default=True,
            help="Spark master URL (with --engine spark).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _monitor_setup(opts: dict[str, Any]) -> tuple[Any, Any, Any, Any, Any, Any]:
    from mlcycle.data import load_table
    from mlcycle.extras import require

    # Before any reading or analysis: without Evidently the report step would fail last.
    require("monitoring", feature="mlcycle monitor")
    from mlcycle.monitoring import DriftConfig, RetrainPolicy, reference_for_table

    settings, client = _context()
    reference = None
    if opts["reference"]:
        reference = reference_for_table(
            client,
            opts["model_name"],
            opts["version"],
            load_table(opts["reference"]),
            target=opts["target"],
            seed=settings.seed,
        )
    elif opts["target"]:
        raise click.UsageError("--target describes a --reference table; give --reference")
    labels = load_table(opts["labels"]) if opts["labels"] else None
    config = DriftConfig(
        min_rows=opts["min_rows"],
        per_column_method=_parse_kv(opts["methods"], "--method"),
        seed=settings.seed,
    )
    if opts["bad_windows"] > opts["of_last"]:
        raise click.BadParameter(
            "--bad-windows cannot exceed --of-last", param_hint="--bad-windows"
        )
    policy = RetrainPolicy(
        drift_share=opts["drift_share"],
        quality_drop=opts["quality_drop"],
        bad_windows=opts["bad_windows"],
        of_last=opts["of_last"],
    )
    return settings, client, reference, labels, config, policy


def _window_line(out: Any) -> str:
    head = f"[window {out.window or out.source}]"
    if out.skipped:
        return f"{head} skipped: {out.skipped}"
    r = out.result
    line = f"{head} rows={r.rows} status={r.status}"
    if r.columns:
        line += f" drifted={len(r.drifted)}/{len(r.columns)}"
        if r.drifted:
            line += " (" + ", ".join(r.drifted) + ")"
    if r.quality_drop is not None:
        line += f" quality_drop={r.quality_drop:.3f}"
    line += f" decision={'retrain' if out.decision and out.decision.retrain else 'none'}"
    if out.retrain is not None:
        state = (
            "promoted to @champion"
            if out.retrain.promoted
            else "kept as @challenger (gate refused)"
        )
        line += f" -> run {out.retrain.run_id} v{out.retrain.version} {state}"
    return line


def _outcome_json(out: Any) -> dict[str, Any]:
    from dataclasses import asdict

    doc: dict[str, Any] = {"window": out.window, "run_id": out.run_id, "skipped": out.skipped}
    doc["result"] = out.result.as_dict() if out.result else None
    doc["decision"] = asdict(out.decision) if out.decision else None
    doc["retrain"] = asdict(out.retrain) if out.retrain else None
    doc["stale"] = list(out.stale)
    return doc


def _fail_on_stale(out: Any) -> None:
    """Exit 1 when a window run was left RUNNING by a killed monitor, so cron notices."""
    if out.stale:
        raise click.ClickException(
            f"{len(out.stale)} monitoring run(s) still RUNNING long after they started (a "
            f"monitor was killed; their windows were not monitored): {'; '.join(out.stale)}. "
            "Delete them (mlflow runs delete --run-id ID) and monitor those windows again."
        )


@cli.command("monitor")
@_monitor_options
@click.option(
    "--current", default=None, help="The window as a CSV/Parquet file instead of the inference log."
)
@click.option("--since", default=None, help="Window start (ISO time, UTC) in the inference log.")
@click.option("--until", default=None, help="Window end (ISO time, UTC, exclusive) [default: now].")
@click.option(
    "--retrain/--no-retrain",
    default=False,
    show_default=True,
    help="Retrain when the policy says so.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def monitor_cmd(
    current: str | None,
    since: str | None,
    until: str | None,
    retrain: bool,
    as_json: bool,
    **opts: Any,
) -> None:
    """Check one window for drift against the model's training reference.

    The window is a file (--current), a time range of the inference log (--since/--until),
    or the whole log. The Evidently report and a run in experiment mlcycle-monitoring are
    written; with --retrain the retrain policy may start a training run.
    """
    import pandas as pd

    from mlcycle.monitoring import Window, run_once

    if current and (since or until):
        raise click.UsageError("give --current or --since/--until, not both")
    settings, client, reference, labels, config, policy = _monitor_setup(opts)
    window = None
    if since or until:
        if not since:
            raise click.UsageError("--until needs --since")
        window = Window.of(since, until or pd.Timestamp.now(tz="UTC"))
    out = run_once(
        client,
        settings,
        opts["model_name"],
        version=opts["version"],
        window=window,
        current=current or None,
        reference=reference,
        labels=labels,
        config=config,
        policy=policy,
        allow_retrain=retrain,
        output_dir=opts["output"],
        engine=opts["engine"],
        spark_master=opts["spark_master"],
    )
    if as_json:
        click.echo(json.dumps(_outcome_json(out), indent=2, default=str))
        _fail_on_stale(out)
        return
    click.echo(_window_line(out))
    r = out.result
    if r is not None:
        for c in r.columns:
            flag = "DRIFT" if c.drifted else "ok"
            click.echo(
                f"  {c.column:<24} {c.method:<14} score={c.score:.4f} "
                f"(threshold {c.threshold:g})  {flag}"
            )
        if r.prediction is not None:
            click.echo(
                f"  {'prediction':<24} {r.prediction.method:<14} "
                f"score={r.prediction.score:.4f}  {'DRIFT' if r.prediction.drifted else 'ok'}"
            )
        for f in r.findings:
            click.echo(f"  finding: {f.column}: {f.kind}: {f.detail}")
        for k, v in r.quality.items():
            click.echo(
                f"  quality {k}={v:.4f} (reference {r.reference_quality.get(k, float('nan')):.4f})"
            )
        if r.report_html:
            click.echo(f"report     {r.report_html}")
    if out.decision is not None:
        click.echo(
            "decision   "
            + ("retrain" if out.decision.retrain else "no retrain")
            + ": "
            + "; ".join(out.decision.reasons)
        )
    click.echo(f"run        {out.run_id} (experiment mlcycle-monitoring)  ui: {_ui_hint(settings)}")
    _fail_on_stale(out)


@cli.command("loop")
@_monitor_options
@click.option(
    "--every", default="1h", show_default=True, help="Window length and period: 30s, 10m, 1h, 1d."
)
@click.option(
    "--once", is_flag=True, help="Monitor the last complete window and exit (cron, CI, CronJob)."
)
@click.option(
    "--retrain/--no-retrain",
    default=True,
    show_default=True,
    help="Retrain when the policy says so.",
)
@click.option("--max-windows", type=click.IntRange(min=1), default=None, hidden=True)
def loop_cmd(every: str, once: bool, retrain: bool, max_windows: int | None, **opts: Any) -> None:
    """Monitor the inference log window after window, retraining when the policy says so.

    Each window is the last complete period of --every (aligned to the clock). Safe to run
    twice at once: a window is analysed, and retrained for, only once.
    """
    from mlcycle.monitoring import loop

    period = _duration(every)
    settings, client, reference, labels, config, policy = _monitor_setup(opts)
    click.echo(
        f"monitoring {opts['model_name']} every {every} (policy: {policy.bad_windows} bad of "
        f"{policy.of_last}; drift share >= {policy.drift_share})"
    )
    for out in loop(
        client,
        settings,
        opts["model_name"],
        period,
        max_windows=1 if once else max_windows,
        version=opts["version"],
        reference=reference,
        labels=labels,
        config=config,
        policy=policy,
        allow_retrain=retrain,
        output_dir=opts["output"],
        engine=opts["engine"],
        spark_master=opts["spark_master"],
    ):
        click.echo(_window_line(out))
        for stale in out.stale:
            click.echo(f"  stale: run {stale} was left RUNNING (its monitor was killed)", err=True)


# --------------------------------------------------------------------------- server


@cli.command("server")
@click.option(
    "--backend-store-uri",
    default=None,
    metavar="URI",
    help="postgresql+psycopg2://… [default: MLCYCLE_BACKEND_STORE_URI or sqlite:///mlflow.db].",
)
@click.option(
    "--artifacts-destination",
    default=None,
    metavar="URI",
    help="s3://bucket/prefix or a directory "
    "[default: MLCYCLE_ARTIFACTS_DESTINATION or ./mlartifacts].",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind (0.0.0.0 in a container).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option(
    "--allowed-hosts",
    default=None,
    metavar="H1,H2",
    help="Host headers answered; a name without a port allows any port "
    "[default: MLCYCLE_ALLOWED_HOSTS or localhost,127.0.0.1].",
)
@click.option(
    "--cors-allowed-origins",
    default=None,
    metavar="O1,O2",
    help="Extra browser origins allowed to change state [default: MLCYCLE_CORS_ALLOWED_ORIGINS].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Server worker processes.",
)
@click.option("--no-upgrade", is_flag=True, help="Skip `mlflow db upgrade` before starting.")
def server_cmd(
    backend_store_uri: str | None,
    artifacts_destination: str | None,
    host: str,
    port: int,
    allowed_hosts: str | None,
    cors_allowed_origins: str | None,
    workers: int,
    no_upgrade: bool,
) -> None:
    """Run the team tracking server: mlflow server with basic auth, PostgreSQL and S3.

    Users see nothing they were not granted (default permission NO_PERMISSIONS). The first
    admin's name and password come from MLCYCLE_ADMIN_USERNAME and MLCYCLE_ADMIN_PASSWORD.
    """
    from mlcycle.config import load_settings
    from mlcycle.stack import run_server, server_options

    opts = server_options(
        load_settings(),
        backend_store_uri=backend_store_uri,
        artifacts_destination=artifacts_destination,
        host=host,
        port=port,
        allowed_hosts=allowed_hosts,
        cors_allowed_origins=cors_allowed_origins,
        workers=workers,
    )
    code = run_server(opts, upgrade=not no_upgrade)
    if code not in (0, -15, 143):
        raise click.ClickException(f"mlflow server exited with code {code}")


# --------------------------------------------------------------------------- predict (batch)


@cli.command("predict")
@click.option(
    "--model",
    "model_uri",
    required=True,
    help="models:/NAME@champion, models:/NAME/VERSION, runs:/ID/model or a local path.",
)
@click.option(
    "--input",
    "source",
    required=True,
    metavar="PATH|s3://",
    help="CSV or Parquet file to score (Spark also takes a Parquet directory).",
)
@click.option(
    "--output",
    required=True,
    metavar="DIR|s3://",
    help="Directory of partitioned Parquet (model_version=/scored_date=).",
)
@click.option(
    "--engine",
    type=click.Choice(["pandas", "spark"]),
    default="pandas",
    show_default=True,
    help="In process, or Spark with mlflow.pyfunc.spark_udf (pip install 'mlcycle[spark]').",
)
@click.option(
    "--master",
    default="local[2]",
    show_default=True,
    help="Spark master URL (with --engine spark).",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace the partitions written instead of adding files."
)
@click.option(
    "--to-inference-log",
    "to_log",
    is_flag=True,
    help="Also append the scored rows to the inference log, for monitoring.",
)
@click.option(
    "--inference-log",
    default=None,
    metavar="PATH|s3://",
    help="Inference log root [default: MLCYCLE_INFERENCE_LOG or ./inference-log].",
)
@click.option(
    "--predict-method",
    type=click.Choice(["predict", "predict_proba"]),
    default="predict",
    show_default=True,
    help="predict_proba adds a proba_<class> column per class (classifiers, pandas engine).",
)
@_allow_pickle_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def predict_cmd(
    model_uri: str,
    source: str,
    output: str,
    engine: str,
    master: str,
    overwrite: bool,
    to_log: bool,
    inference_log: str | None,
    predict_method: str,
    allow_pickle: bool,
    as_json: bool,
) -> None:
    """Score a whole table with a registered model and write partitioned Parquet."""
    from mlcycle.batch import predict

    settings, client = _context(inference_log=inference_log)
    result = predict(
        model_uri, source, output, client=client, engine=engine, master=master,  # type: ignore[arg-type]
        overwrite=overwrite, inference_log=settings.inference_log if to_log else None,
        allow_pickle=allow_pickle or settings.allow_pickle, predict_method=predict_method,
    )  # fmt: skip
    if as_json:
        doc = {
            "model_uri": result.model_uri, "model_name": result.model_name,
            "model_version": result.model_version, "engine": result.engine, "rows": result.rows,
            "output": result.output, "batch_id": result.batch_id,
            "scored_at": result.scored_at.isoformat(), "seconds": result.seconds,
            "logged_rows": result.logged_rows,
        }  # fmt: skip
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(
        f"scored     {result.rows} rows with {result.model_name} version "
        f"{result.model_version} on {result.engine} ({result.rows_per_second:,.0f} rows/s)"
    )
    click.echo(
        f"output     {result.output}/model_version={result.model_version}/ "
        f"(batch {result.batch_id})"
    )
    if result.logged_rows is not None:
        click.echo(
            f"logged     {result.logged_rows} rows to the inference log at {settings.inference_log}"
        )


# --------------------------------------------------------------------------- search-worker


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

    explicit = any(os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLCYCLE_TRACKING_URI"))
    settings, _ = _context()
    done = run_worker(
        search_storage,
        study_name,
        tracking_uri=settings.tracking_uri if explicit else None,
        max_trials=max_trials,
    )
    click.echo(f"worker     ran {done} trial(s) of study {study_name}")


def main() -> None:  # pragma: no cover
    cli()
