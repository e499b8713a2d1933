"""Option blocks shared by several commands, declared once."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

import click

from mlcycle.cli._common import parse_kv


class LibraryDefault(click.Option):
    """An option whose default the library declares, once, as a field default.

    On the command line the option defaults to ``None``, so the stage's own default applies;
    ``--help`` shows that value, read from the stage only when help is rendered (a stage can
    be slow to import or need an extra; without it the help shows no default).
    """

    def __init__(self, *args: Any, default_of: Callable[[], Any], **kwargs: Any) -> None:
        kwargs.update(default=None, show_default=True)
        super().__init__(*args, **kwargs)
        self.default_of = default_of

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        try:
            shown = self.default_of()
        except ImportError:
            shown = None
        saved, self.default = self.default, shown
        try:
            return super().get_help_record(ctx)
        finally:
            self.default = saved


def field_default(module: str, cls: str, name: str, scale: float = 1) -> Callable[[], Any]:
    """Reads ``module.cls.name``'s declared default when called (times ``scale``)."""

    def read() -> Any:
        value = getattr(getattr(importlib.import_module(module), cls), name)
        return value if scale == 1 else value * scale

    return read


def given(**values: Any) -> dict[str, Any]:
    """The values the user gave: ``None`` ones are left out so the stage's default applies."""
    return {k: v for k, v in values.items() if v is not None}


def json_option(help: str = "Print the result as JSON.") -> Any:
    """``--json``: machine-readable output instead of the text lines."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def inference_log_option(fn: Any) -> Any:
    """``--inference-log``: where scored records are logged (overrides the setting)."""
    return click.option(
        "--inference-log",
        default=None,
        metavar="PATH|s3://",
        help="Inference log root [default: MLCYCLE_INFERENCE_LOG or ./inference-log].",
    )(fn)


def allow_pickle_option(fn: Any) -> Any:
    """``--allow-pickle``: the one opt-in of mlcycle.trust (or MLCYCLE_ALLOW_PICKLE=true)."""
    return click.option(
        "--allow-pickle",
        is_flag=True,
        help="Load models whose files can run code (pickle, cloudpickle, code/) "
        "[default: MLCYCLE_ALLOW_PICKLE or off]. Only for models whose authors you trust.",
    )(fn)


#: Destinations of the gate policy's flags (before a prefix), in GatePolicy's order.
_GATE_KEYS = ("mode", "metric", "min_score", "min_improvement", "max_latency")


def _gate_metric(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A metric the gate computes, in mlcycle's name (MLflow's old names are aliases)."""
    if value is None:
        return None
    from mlcycle.model_metrics import HIGHER_IS_BETTER, canonical_metric

    name = canonical_metric(value)
    if name not in HIGHER_IS_BETTER:
        raise click.BadParameter(
            f"'{value}' is not a metric the gate computes; one of {', '.join(HIGHER_IS_BETTER)}",
            ctx,
            param,
        )
    return name


def gate_policy_options(prefix: str = "") -> Callable[[Any], Any]:
    """The gate policy's flags: ``--mode``, ``--metric``, ``--min-score``, ...

    Args:
        prefix: put before each flag and destination (``gate-``: ``--gate-mode`` arrives as
            ``gate_mode``), for commands where the gate is one step among others.
    """
    dest = prefix.replace("-", "_")
    retrain = bool(prefix)

    def policy_default(name: str) -> Callable[[], Any]:
        return field_default("mlcycle.register", "GatePolicy", name)

    modes = click.Choice(["enabled", "dry_run", "disabled"])
    options = [
        click.option(
            f"--{prefix}mode",
            f"{dest}mode",
            cls=LibraryDefault,
            default_of=policy_default("mode"),
            type=modes,
            # MODE keeps the help's option column as narrow as the other flags'.
            metavar="MODE" if retrain else None,
            help="Retrain gate: enabled, dry_run (record the decision, promote anyway) or "
            "disabled (promote without scoring)."
            if retrain
            else "dry_run records the decision without enforcing it.",
        ),
        click.option(
            f"--{prefix}metric",
            f"{dest}metric",
            default=None,
            callback=_gate_metric,
            help=("Retrain gate metric" if retrain else "Gate metric")
            + ": accuracy, f1, precision, recall, roc_auc, log_loss (classification); rmse, "
            "mae, mse, r2 (regression) [default: roc_auc (classification) or rmse "
            "(regression)].",
        ),
        click.option(
            f"--{prefix}min-score",
            f"{dest}min_score",
            type=float,
            default=None,
            help=("Retrain gate: minimum" if retrain else "Minimum")
            + " absolute metric (maximum for lower-is-better metrics).",
        ),
        click.option(
            f"--{prefix}min-improvement",
            f"{dest}min_improvement",
            cls=LibraryDefault,
            default_of=policy_default("min_improvement"),
            type=float,
            help="Retrain gate: required improvement over the champion."
            if retrain
            else "Required improvement over the champion.",
        ),
        click.option(
            f"--{prefix}max-latency-ms",
            f"{dest}max_latency",
            type=float,
            default=None,
            help=("Retrain gate: maximum" if retrain else "Maximum")
            + " prediction latency per row, ms.",
        ),
    ]

    def apply(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


def gate_policy(opts: dict[str, Any], allow_pickle: bool, prefix: str = "") -> Any:
    """The :class:`~mlcycle.register.GatePolicy` the flags describe, popped from ``opts``.

    Flags left out take GatePolicy's own defaults.
    """
    from mlcycle.register import GatePolicy

    dest = prefix.replace("-", "_")
    values = {key: opts.pop(dest + key) for key in _GATE_KEYS}
    values["max_latency_ms_per_row"] = values.pop("max_latency")
    return GatePolicy(**given(**values), allow_pickle=allow_pickle)


def eval_frame(path: str | None) -> Any:
    if path is None:
        return None
    from mlcycle.data import load_table

    return load_table(path)


def gate_options(fn: Any) -> Any:
    """The gate's flags, shared by ``gate`` and ``promote``: the policy and what to score."""
    options = [
        gate_policy_options(),
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
        allow_pickle_option,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def monitor_options(fn: Any) -> Any:
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
            cls=LibraryDefault,
            default_of=field_default("mlcycle.monitoring", "DriftConfig", "min_rows"),
            type=click.IntRange(min=1),
            help="Smaller windows are 'insufficient data'.",
        ),
        click.option(
            "--drift-share",
            cls=LibraryDefault,
            default_of=field_default("mlcycle.monitoring", "DriftConfig", "drift_share"),
            type=click.FloatRange(0, 1, min_open=True),
            help="A window with this share of drifted features is drift (and bad for the policy).",
        ),
        click.option(
            "--quality-drop",
            cls=LibraryDefault,
            default_of=field_default("mlcycle.monitoring", "RetrainPolicy", "quality_drop"),
            type=float,
            help="Policy: a window whose quality dropped this much is bad.",
        ),
        click.option(
            "--bad-windows",
            cls=LibraryDefault,
            default_of=field_default("mlcycle.monitoring", "RetrainPolicy", "bad_windows"),
            type=click.IntRange(min=1),
            help="Policy: N bad windows ...",
        ),
        click.option(
            "--of-last",
            cls=LibraryDefault,
            default_of=field_default("mlcycle.monitoring", "RetrainPolicy", "of_last"),
            type=click.IntRange(min=1),
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
        # What a retrained challenger must pass to become the champion.
        gate_policy_options("gate-"),
        allow_pickle_option,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def retrain_project_options(fn: Any) -> Any:
    """The retrain action as options; each overrides its MLCYCLE_RETRAIN_* variable."""
    options = [
        click.option(
            "--retrain-project",
            default=None,
            metavar="URI",
            help="Retrain by `mlflow run` of this MLflow project (directory or Git URI) on "
            "the reference + labelled window table, instead of mlcycle's trainer "
            "[env: MLCYCLE_RETRAIN_PROJECT].",
        ),
        click.option(
            "--retrain-entry",
            default=None,
            metavar="NAME",
            help="Entry point of the retrain project [default: main].",
        ),
        click.option(
            "--retrain-data-param",
            default=None,
            metavar="NAME",
            help="Parameter of that entry point that receives the table's path [default: data].",
        ),
        click.option(
            "--retrain-env-manager",
            type=click.Choice(["local", "uv", "virtualenv", "conda"]),
            default=None,
            help="How `mlflow run` builds the project's environment [default: local].",
        ),
        click.option(
            "--retrain-param",
            "retrain_params",
            multiple=True,
            metavar="KEY=VALUE",
            help="Further parameter of the retrain project (repeatable), e.g. target=label.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def retrain_settings(opts: dict[str, Any]) -> dict[str, Any]:
    """Settings overrides from the retrain options ("" leaves a setting unset, for MLproject)."""
    out = {
        key: opts.get(key) or None
        for key in ("retrain_project", "retrain_entry", "retrain_data_param", "retrain_env_manager")
    }
    if opts.get("retrain_params"):
        out["retrain_params"] = json.dumps(parse_kv(opts["retrain_params"], "--retrain-param"))
    return out
