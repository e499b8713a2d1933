"""``mlcycle server``: the team tracking server."""

from __future__ import annotations

from typing import Any

import click

from mlcycle.cli._common import cli
from mlcycle.cli._options import LibraryDefault, field_default


def _server(name: str) -> Any:
    return field_default("mlcycle.stack", "ServerOptions", name)


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
    cls=LibraryDefault,
    default_of=_server("host"),
    help="Interface to bind (0.0.0.0 in a container).",
)
@click.option(
    "--port", type=click.IntRange(1, 65535), cls=LibraryDefault, default_of=_server("port")
)
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
    cls=LibraryDefault,
    default_of=_server("workers"),
    type=click.IntRange(min=1),
    help="Server worker processes.",
)
@click.option("--no-upgrade", is_flag=True, help="Skip `mlflow db upgrade` before starting.")
def server_cmd(
    backend_store_uri: str | None,
    artifacts_destination: str | None,
    host: str | None,
    port: int | None,
    allowed_hosts: str | None,
    cors_allowed_origins: str | None,
    workers: int | None,
    no_upgrade: bool,
) -> None:
    """Run the team tracking server: mlflow server with basic auth, PostgreSQL and S3.

    Users see nothing they were not granted (default permission NO_PERMISSIONS). The first
    admin's name and password come from MLCYCLE_ADMIN_USERNAME and MLCYCLE_ADMIN_PASSWORD.
    """
    from mlcycle.config import load_settings
    from mlcycle.extras import require
    from mlcycle.stack import run_server, server_options

    # The core has mlflow-skinny: no Flask, no auth app. The store's own driver (psycopg2,
    # boto3) is MLflow's to report, for a server that may well run on SQLite and a directory.
    require("server", "flask", "flask_wtf", feature="mlcycle server")

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
