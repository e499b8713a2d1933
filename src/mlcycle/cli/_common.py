"""The root ``mlcycle`` group and what every command shares: error mapping, logging set-up,
the composition root (settings and client), and small rendering helpers.

The CLI package is the only place that prints or exits.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import warnings
from typing import Any

import click

from mlcycle import __version__
from mlcycle.errors import MlcycleError, access_error
from mlcycle.extras import available
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
            denied = access_error(exc)
            if denied is None:
                raise
            raise click.ClickException(redact_text(str(denied))) from exc


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


def context(**overrides: Any) -> tuple[Any, Any]:
    """Settings and a real ``MlflowClient``: built only here."""
    from mlflow import MlflowClient

    from mlcycle.config import apply_tracking, load_settings

    settings = load_settings(**overrides)
    apply_tracking(settings)
    client = MlflowClient(**settings.client_kwargs())
    _freeze_imports()
    return settings, client


#: The collector's thresholds while a command starts, when mlcycle owns the process.
_START_THRESHOLDS: tuple[int, int, int] | None = None


def own_process() -> None:
    """Called by the entry point: mlcycle owns this process, so it tunes its collector.

    Until :func:`context` runs, a command imports MLflow, pandas and scikit-learn (300-450k
    objects that live until the process exits). CPython walks every object on each full
    collection and ran seven of them during those imports (0.7-1.0 s in all on this project's
    2-core machine), then more in the run and one at exit. Full collections wait while the
    command starts; :func:`context` freezes what was imported and restores the thresholds.
    """
    global _START_THRESHOLDS
    first, second, third = gc.get_threshold()
    _START_THRESHOLDS = (first, second, third)
    gc.set_threshold(first, second, max(third, 1000))


def _freeze_imports() -> None:
    """Keep the objects imported so far out of every later full collection (own process only).

    Under CliRunner or a caller's program the process is theirs and nothing changes. Objects
    of these imports that become garbage later are still freed by reference counting; only
    cycles among them wait for the process to end.
    """
    global _START_THRESHOLDS
    if _START_THRESHOLDS is None:
        return
    gc.freeze()
    gc.set_threshold(*_START_THRESHOLDS)
    _START_THRESHOLDS = None


def parse_kv(values: tuple[str, ...], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got '{item}'", param_hint=flag)
        out[key.strip()] = value.strip()
    return out


def ui_hint(settings: Any, experiment_id: str | None = None, run_id: str | None = None) -> str:
    """How to look at it: the server's page, or the `mlflow ui` command and its page."""
    uri = redact_uri(settings.tracking_uri)
    page = ""
    if experiment_id is not None:
        # The training-runs view (MLflow 3 opens experiments on its GenAI overview).
        page = f"/#/experiments/{experiment_id}/runs" + (f"/{run_id}" if run_id else "")
    if uri.startswith(("http://", "https://")):
        return f"open {uri.rstrip('/')}{page}"
    hint = f"mlflow ui --backend-store-uri {uri}"
    if not available("flask"):
        # The core install has mlflow-skinny, whose `mlflow ui` stops on a missing Flask.
        hint = f"pip install 'mlcycle[ui]', then {hint}"
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
