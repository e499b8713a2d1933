"""``mlcycle scenario`` and ``mlcycle demo``: the demo data and the whole lifecycle on it."""

from __future__ import annotations

import os
from pathlib import Path

import click

from mlcycle.cli._common import cli, context, ui_hint


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
    from mlcycle.data import make_scenario, write_table

    df = make_scenario(rows, period=period, seed=seed, start=start)  # type: ignore[arg-type]
    path = write_table(df, output)
    click.echo(f"wrote {len(df)} rows ({period}) to {path}")


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
    settings, client = context(**stores)
    for line in run_demo(settings, client, Path(workdir), rows=rows):
        click.echo(line)
    click.echo(f"look at it: {ui_hint(settings)}")
