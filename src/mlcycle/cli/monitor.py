"""``mlcycle monitor`` and ``mlcycle loop``: drift windows, the retrain policy, the loop."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from typing import Any

import click

from mlcycle.cli._common import cli, context, parse_kv, ui_hint
from mlcycle.cli._options import (
    gate_policy,
    given,
    json_option,
    monitor_options,
    retrain_project_options,
    retrain_settings,
)
from mlcycle.errors import MlcycleError


def _monitor_setup(opts: dict[str, Any]) -> tuple[Any, Any, Any, Any, Any, Any]:
    from mlcycle.data import load_table
    from mlcycle.errors import ConfigError
    from mlcycle.extras import require

    # Before any reading or analysis: without Evidently the report step would fail last.
    require("monitoring", feature="mlcycle monitor")
    from mlcycle.monitoring import DriftConfig, RetrainPolicy, reference_for_table
    from mlcycle.monitoring.project import check_project, project_retrain

    try:
        policy = RetrainPolicy(
            **given(
                quality_drop=opts["quality_drop"],
                bad_windows=opts["bad_windows"],
                of_last=opts["of_last"],
            )
        )
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="'--bad-windows' / '--of-last'") from None
    settings, client = context(**retrain_settings(opts))
    action = project_retrain(settings)
    if action is not None:
        check_project(action)  # a misdeclared project fails now, not at the first retrain
    else:
        for key in ("retrain_entry", "retrain_data_param", "retrain_env_manager", "retrain_params"):
            if opts.get(key):
                flag = "--" + key.replace("_", "-").removesuffix("s")
                raise click.UsageError(f"{flag} needs --retrain-project")
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
        **given(min_rows=opts["min_rows"], drift_share=opts["drift_share"]),
        per_column_method=parse_kv(opts["methods"], "--method"),
        seed=settings.seed,
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
    if out.retrain_skipped:
        hint = ", --retrain enables it" if out.retrain_skipped == "retrain disabled" else ""
        line += f" (not acted on: {out.retrain_skipped}{hint})"
    if out.note:
        line += f" (only new data: {out.note})"
    if out.retrain is not None:
        state = (
            "promoted to @champion"
            if out.retrain.promoted
            else "kept as @challenger (gate refused)"
        )
        line += f" -> run {out.retrain.run_id} v{out.retrain.version} {state}"
    return line


def _fail_on_stale(out: Any) -> None:
    """Exit 1 when a window run was left RUNNING by a killed monitor, so cron notices."""
    if out.stale:
        raise click.ClickException(
            f"{len(out.stale)} monitoring run(s) still RUNNING long after they started (a "
            f"monitor was killed; their windows were not monitored): {'; '.join(out.stale)}. "
            "Delete them (mlflow runs delete --run-id ID) and monitor those windows again."
        )


@cli.command("monitor")
@monitor_options
@retrain_project_options
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
@click.option(
    "--canary",
    "with_canary",
    is_flag=True,
    help="Also compare @champion and @challenger on the same window of the inference log, "
    "with the MLCYCLE_CANARY_* policy (as `mlcycle canary`; docs/canary.md).",
)
@json_option()
def monitor_cmd(
    current: str | None,
    since: str | None,
    until: str | None,
    retrain: bool,
    with_canary: bool,
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
    if current and with_canary:
        raise click.UsageError(
            "--canary compares the arms the inference log recorded; a --current file has none"
        )
    settings, client, reference, labels, config, policy = _monitor_setup(opts)
    gate = gate_policy(opts, opts.pop("allow_pickle") or settings.allow_pickle, prefix="gate-")
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
        **_run_options(opts, reference, labels, config, policy, retrain, gate),
    )
    canary = None
    if with_canary:
        from mlcycle.cli.canary import canary_check

        canary = canary_check(client, settings, opts["model_name"], window)
    if as_json:
        doc = out.as_dict()
        if canary is not None:
            doc["canary"] = canary.as_dict()
        click.echo(json.dumps(doc, indent=2, default=str))
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
    click.echo(f"run        {out.run_id} (experiment mlcycle-monitoring)  ui: {ui_hint(settings)}")
    if canary is not None:
        from mlcycle.cli.canary import canary_lines

        for line in canary_lines(canary):
            click.echo(line)
    _fail_on_stale(out)


def _run_options(
    opts: dict[str, Any],
    reference: Any,
    labels: Any,
    config: Any,
    policy: Any,
    retrain: bool,
    gate: Any,
) -> dict[str, Any]:
    """What ``monitor`` and ``loop`` both pass to :func:`mlcycle.monitoring.run_once`."""
    return {
        "reference": reference,
        "labels": labels,
        "config": config,
        "policy": policy,
        "allow_retrain": retrain,
        "output_dir": opts["output"],
        "engine": opts["engine"],
        "spark_master": opts["spark_master"],
        "gate_policy": gate,
    }


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[threading.Event]:
    """An event set by SIGTERM while the block runs (the previous handler comes back after).

    ``docker stop``, Kubernetes and systemd stop a process with SIGTERM; Python's default is
    to die at once, mid-window. Set, the loop finishes the window in progress, starts no new
    one and ends its wait for the next at once, so the command exits 0. Outside the main
    thread (an embedding program) no handler can be installed and the event stays unset.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


@cli.command("loop")
@monitor_options
@retrain_project_options
@click.option(
    "--every",
    default="1h",
    show_default=True,
    help="Window length and period: 30s, 15m, 1h30m, 1d (a plain number: seconds).",
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
@click.option(
    "--canary",
    "with_canary",
    is_flag=True,
    help="Also check the canary (@challenger vs @champion) every window, with the policy of "
    "the MLCYCLE_CANARY_* variables (docs/canary.md); MLCYCLE_CANARY_ACT=true carries it out.",
)
def loop_cmd(
    every: str,
    once: bool,
    retrain: bool,
    max_windows: int | None,
    with_canary: bool,
    **opts: Any,
) -> None:
    """Monitor the inference log window after window, retraining when the policy says so.

    Each window is the last complete period of --every (aligned to the clock). Safe to run
    twice at once: a window is analysed, and retrained for, only once.
    """
    from mlcycle.errors import ConfigError
    from mlcycle.monitoring import loop
    from mlcycle.monitoring.loop import parse_period

    try:
        period = parse_period(every)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--every") from None
    settings, client, reference, labels, config, policy = _monitor_setup(opts)
    gate = gate_policy(opts, opts.pop("allow_pickle") or settings.allow_pickle, prefix="gate-")
    click.echo(
        f"monitoring {opts['model_name']} every {every} (policy: {policy.bad_windows} bad of "
        f"{policy.of_last}; drift share >= {config.drift_share})"
    )
    with _stop_on_sigterm() as stop:
        for out in loop(
            client,
            settings,
            opts["model_name"],
            period,
            max_windows=1 if once else max_windows,
            stop=stop,
            version=opts["version"],
            **_run_options(opts, reference, labels, config, policy, retrain, gate),
        ):
            click.echo(_window_line(out))
            for stale in out.stale:
                click.echo(
                    f"  stale: run {stale} was left RUNNING (its monitor was killed)", err=True
                )
            if with_canary:
                from mlcycle.cli.canary import canary_check, canary_lines

                try:
                    canary = canary_check(client, settings, opts["model_name"])
                except MlcycleError as exc:
                    # A canary check that cannot run must not stop the monitoring loop.
                    click.echo(f"[canary {opts['model_name']}] failed: {exc}", err=True)
                    continue
                for line in canary_lines(canary):
                    click.echo(line)
    if stop.is_set():
        click.echo("stopped by SIGTERM (the window in progress was finished)", err=True)
