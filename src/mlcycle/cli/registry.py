"""Registry commands: ``register``, ``gate``, ``promote``, ``rollback``, ``history``."""

from __future__ import annotations

import json
from typing import Any

import click

from mlcycle.cli._common import cli, context
from mlcycle.cli._options import (
    allow_pickle_option,
    eval_frame,
    gate_options,
    gate_policy,
    json_option,
)


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
@allow_pickle_option
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
    settings, client = context(model_name=name)
    if target and reference:
        from mlcycle.data import load_table

        mv = adopt(
            client,
            run_id,
            settings.model_name,
            load_table(reference),
            target=target,
            eval_data=eval_frame(eval_data),
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
@gate_options
def gate_cmd(
    name: str,
    version: str | None,
    eval_data: str | None,
    target: str | None,
    allow_pickle: bool,
    **policy_flags: Any,
) -> None:
    """Score challenger and champion on the same data; exit 1 when an enabled gate fails."""
    from mlcycle.register import gate

    settings, client = context()
    policy = gate_policy(policy_flags, allow_pickle or settings.allow_pickle)
    d = gate(client, name, version, policy, eval_frame(eval_data), target, settings=settings)
    _echo_decision(d)
    d.enforce(name)


@cli.command("promote")
@click.argument("name")
@click.option("--version", default=None, help="Version to promote [default: @challenger].")
@click.option(
    "--force", is_flag=True, help="Bypass the gate and the schema check (needs --reason)."
)
@click.option("--reason", default=None, help="Why; kept in the audit trail.")
@gate_options
def promote_cmd(
    name: str,
    version: str | None,
    force: bool,
    reason: str | None,
    eval_data: str | None,
    target: str | None,
    allow_pickle: bool,
    **policy_flags: Any,
) -> None:
    """Gate a version and make it the champion (Production, @champion)."""
    from mlcycle.register import promote
    from mlcycle.uris import model_uri

    settings, client = context()
    policy = gate_policy(policy_flags, allow_pickle or settings.allow_pickle)
    result = promote(
        client,
        name,
        version,
        policy=policy,
        force=force,
        reason=reason,
        eval_data=eval_frame(eval_data),
        target=target,
        settings=settings,
    )
    if result.unchanged:
        click.echo(f"unchanged  {name} version {result.version} is already the champion")
        click.echo(f"serve      {model_uri(name, alias='champion')}")
        return
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

    settings, client = context()
    result = rollback(client, name, reason, settings=settings)
    click.echo(
        f"rolled back {name}: version {result.previous_version} → Archived, "
        f"version {result.version} → Production (@champion)"
    )


@cli.command("history")
@click.argument("name")
@json_option("Print the trail as JSON.")
def history_cmd(name: str, as_json: bool) -> None:
    """Print the promotion and rollback trail: who, when, from, to, metrics, reason."""
    from mlcycle.register import history

    _, client = context()
    entries = history(client, name)
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    if not entries:
        click.echo(f"no promotions of {name} yet")
        return
    for e in entries:
        headline = e.score()
        score = f" {headline[0]}={headline[1]:.4f}" if headline else ""
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
