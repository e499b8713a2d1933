"""``mlcycle canary``: compare @champion and @challenger on live traffic and decide."""

from __future__ import annotations

import json
from typing import Any

import click

from mlcycle.cli._common import cli, context


def _canary_options(fn: Any) -> Any:
    options = [
        click.option(
            "--metric",
            "canary_metric",
            type=click.Choice(["accuracy", "mae", "mse"]),
            default=None,
            help="Policy: quality measure judged [default: MLCYCLE_CANARY_METRIC or accuracy].",
        ),
        click.option(
            "--min-labelled",
            "canary_min_labelled",
            type=click.IntRange(min=1),
            default=None,
            help="Policy: labelled records per arm before deciding "
            "[default: MLCYCLE_CANARY_MIN_LABELLED or 200].",
        ),
        click.option(
            "--tolerance",
            "canary_tolerance",
            type=click.FloatRange(min=0),
            default=None,
            help="Policy: promote when the CI's lower bound of the gain >= -TOLERANCE "
            "[default: MLCYCLE_CANARY_TOLERANCE or 0].",
        ),
        click.option(
            "--max-error-rate",
            "canary_max_error_rate",
            type=click.FloatRange(0, 1),
            default=None,
            help="Policy: challenger failed-request share that rolls back "
            "[default: MLCYCLE_CANARY_MAX_ERROR_RATE or 0.01].",
        ),
        click.option(
            "--max-p99-ms",
            "canary_max_p99_ms",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Policy: challenger p99 latency that rolls back [default: "
            "MLCYCLE_CANARY_MAX_P99_MS, none].",
        ),
        click.option(
            "--steps",
            "canary_steps",
            default=None,
            metavar="S1,S2,..",
            help="Policy: traffic shares to go through, e.g. 0.1,0.5,1 (1 alone: promote at "
            "once) [default: MLCYCLE_CANARY_STEPS or 0.1,0.5,1].",
        ),
        click.option(
            "--canary-labels",
            "canary_labels",
            default=None,
            help="Labels (CSV/Parquet: record_id or request_id, target), re-read at every "
            "check [default: MLCYCLE_CANARY_LABELS].",
        ),
        click.option(
            "--metrics-url",
            "canary_metrics_url",
            default=None,
            help="The server's /metrics, for per-arm errors and p99 latency "
            "[default: MLCYCLE_CANARY_METRICS_URL].",
        ),
        click.option(
            "--act/--no-act",
            "canary_act",
            default=None,
            help="Carry the decision out: promote, roll back, or raise the share "
            "[default: MLCYCLE_CANARY_ACT or no].",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def canary_check(client: Any, settings: Any, name: str, window: Any = None) -> Any:
    """One canary check with the settings' policy (CLI options already folded in)."""
    from mlcycle.extras import require

    # Each arm's drift runs the monitoring stage's statistics (Evidently's tests included).
    require("monitoring", feature="mlcycle canary")
    from mlcycle.monitoring.canary_run import check

    return check(client, settings, name, window)


def canary_lines(out: Any) -> list[str]:
    if out.skipped:
        return [f"[canary {out.name}] skipped: {out.skipped}"]
    c, d = out.comparison, out.decision
    lines = [f"[canary {out.name}] window {out.window}  metric {c.metric}"]
    for arm in (c.champion, c.challenger):
        rate = "-" if arm.error_rate is None else f"{arm.error_rate:.2%}"
        quality = " ".join(f"{k}={v:.4f}" for k, v in arm.quality.items()) or "no labels"
        drift = "-" if arm.drift_share is None else f"{arm.drift_share:.2f}"
        p99 = "" if arm.p99_ms is None else f" p99={arm.p99_ms:.1f}ms"
        lines.append(
            f"  {arm.role:<10} v{arm.version:<4} records={arm.records} requests={arm.requests} "
            f"error_rate={rate}{p99} labelled={arm.labelled} drift_share={drift} {quality}"
        )
    if c.prediction_shift is not None:
        ps = c.prediction_shift
        lines.append(
            f"  predictions  {ps['test']} statistic={float(ps['statistic']):.4f} "
            f"p={float(ps['p_value']):.3g}"
        )
    for diff in (c.quality, c.error_rate):
        if diff is not None:
            lines.append(
                f"  {diff.measure:<11} gain={diff.gain:+.4f} {diff.confidence:.0%} CI "
                f"[{diff.ci_low:+.4f}, {diff.ci_high:+.4f}] p={diff.p_value:.3g} ({diff.method})"
            )
    lines.extend(f"problem    {p}" for p in out.problems)
    share = "" if d.next_share is None else f" (next share {d.next_share:.0%})"
    lines.append(f"decision   {d.action}{share}: " + "; ".join(d.reasons))
    if out.superseded:
        lines.append(f"acted      nothing: {out.superseded}")
    elif out.acted is not None:
        a = out.acted
        lines.append(f"acted      {a.action} v{a.version} (audit run {a.audit_run_id})")
    if out.run_id:
        lines.append(f"run        {out.run_id} (experiment mlcycle-monitoring)")
    return lines


@cli.command("canary")
@click.argument("name")
@_canary_options
@click.option("--since", default=None, help="Window start (ISO, UTC) [default: the "
              "challenger's registration].")  # fmt: skip
@click.option("--until", default=None, help="Window end (ISO, UTC, exclusive) [default: now].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def canary_cmd(name: str, since: str | None, until: str | None, as_json: bool, **opts: Any) -> None:
    """Compare @champion and @challenger on live traffic and decide the canary.

    Reads the inference log of the window (both arms of `mlcycle serve --canary`), joins the
    labels, and reports per arm: requests, errors, drift against the reference, prediction
    distribution and quality, with the difference's confidence interval and p-value. The
    declared policy decides promote, rollback or continue; with --act the decision goes
    through the registry lock and audit trail with the evidence attached.
    """
    import pandas as pd

    from mlcycle.monitoring import Window

    settings, client = context(**opts)
    window = None
    if since or until:
        if not since:
            raise click.UsageError("--until needs --since")
        window = Window.of(since, until or pd.Timestamp.now(tz="UTC"))
    out = canary_check(client, settings, name, window)
    if as_json:
        click.echo(json.dumps(out.as_dict(), indent=2, default=str))
        return
    for line in canary_lines(out):
        click.echo(line)
