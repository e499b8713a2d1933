"""``mlcycle serve`` and ``mlcycle build-docker``: the model server and its image."""

from __future__ import annotations

import importlib
from typing import Any

import click

from mlcycle.cli._common import cli, context
from mlcycle.cli._options import (
    LibraryDefault,
    allow_pickle_option,
    field_default,
    given,
    inference_log_option,
)
from mlcycle.errors import MlcycleError


def _process(name: str) -> Any:
    return lambda: getattr(importlib.import_module("mlcycle.serve.options"), name)


def _limit(name: str, scale: float = 1) -> Any:
    return field_default("mlcycle.serve.options", "ServeOptions", name, scale)


def _share(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``--canary`` as a fraction (a usage error, exit 2, when it is not a share)."""
    if value is None:
        return None
    from mlcycle.serve.options import parse_share

    try:
        return parse_share(value)
    except MlcycleError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command("serve")
@click.option(
    "--model",
    "model_uri",
    required=True,
    help="models:/NAME@champion, models:/NAME/Production, runs:/ID/model or a local path.",
)
@click.option("--host", cls=LibraryDefault, default_of=_process("HOST"))
@click.option(
    "--port", type=click.IntRange(0, 65535), cls=LibraryDefault, default_of=_process("PORT")
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    cls=LibraryDefault,
    default_of=_process("WORKERS"),
    help="Worker processes.",
)
@inference_log_option
@click.option("--no-inference-log", is_flag=True, help="Do not log scored records.")
@click.option(
    "--reload-interval",
    type=click.FloatRange(min=0),
    cls=LibraryDefault,
    default_of=_limit("reload_interval"),
    help="Seconds between registry polls for a moved alias/stage (0: never).",
)
@click.option(
    "--shadow",
    is_flag=True,
    default=None,
    help="Also score @challenger off the response path and log it (role=shadow).",
)
@click.option(
    "--canary",
    default=None,
    metavar="SHARE",
    callback=_share,
    help="Answer this share of requests (10% or 0.1) with @challenger of the same model.",
)
@click.option(
    "--canary-key",
    cls=LibraryDefault,
    default_of=_limit("canary_key"),
    metavar="HEADER",
    help="Request header whose value keeps a client on one arm of the canary.",
)
@click.option(
    "--canary-seed",
    type=int,
    cls=LibraryDefault,
    default_of=_limit("canary_seed"),
    help="Seed of the canary draw for requests without the key header.",
)
@click.option(
    "--max-body-bytes",
    cls=LibraryDefault,
    default_of=_limit("max_body_bytes"),
    type=click.IntRange(min=1),
    help="Larger bodies get 413 before parsing.",
)
@click.option(
    "--max-rows",
    cls=LibraryDefault,
    default_of=_limit("max_rows"),
    type=click.IntRange(min=1),
    help="Rows per request (413 above).",
)
@click.option(
    "--timeout",
    cls=LibraryDefault,
    default_of=_limit("timeout"),
    type=click.FloatRange(min=0.001),
    help="Seconds before a request is shed with 503 + Retry-After.",
)
@click.option(
    "--max-batch-rows",
    cls=LibraryDefault,
    default_of=_limit("max_batch_rows"),
    type=click.IntRange(min=1),
    help="Rows per micro-batch.",
)
@click.option(
    "--max-wait-ms",
    cls=LibraryDefault,
    default_of=_limit("max_wait", 1000),
    type=click.FloatRange(min=0),
    help="Longest wait for a micro-batch to fill.",
)
@click.option(
    "--grace",
    cls=LibraryDefault,
    default_of=_process("GRACE"),
    type=click.FloatRange(min=0),
    help="Seconds to finish in-flight requests after SIGTERM.",
)
@allow_pickle_option
def serve_cmd(
    model_uri: str,
    inference_log: str | None,
    no_inference_log: bool,
    allow_pickle: bool,
    max_wait_ms: float | None,
    **options: Any,
) -> None:
    """Serve a model over MLflow's /invocations protocol, with metrics and an inference log."""
    from mlcycle.extras import require

    require("serve", feature="mlcycle serve")
    from mlcycle.serve.options import ServeOptions
    from mlcycle.serve.server import ServerConfig, serve

    settings, client = context(inference_log=inference_log)
    process = {k: options.pop(k) for k in ("host", "port", "workers", "grace")}
    limits = ServeOptions.from_given(
        max_wait=None if max_wait_ms is None else max_wait_ms / 1000.0, **options
    )
    config = ServerConfig.from_given(
        model_uri,
        options=limits,
        inference_log=None if no_inference_log else settings.inference_log,
        allow_pickle=allow_pickle or settings.allow_pickle,
        tracking_uri=settings.tracking_uri,
        registry_uri=settings.registry_uri,
        **process,
    )
    line = f"serving {model_uri} on http://{config.host}:{config.port} ({config.workers} worker(s))"
    # Said once the model passed its checks: a refused model prints only the refusal.
    serve(config, client, announce=lambda: click.echo(line, err=True))


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
        written = image_mod.write_dockerfile(dockerfile_only, **given(model_uri=model_uri))
        click.echo(f"wrote {written}")
        return
    if not image:
        raise click.UsageError("--image is required unless --dockerfile-only is given")
    if stock:
        if not model_uri:
            raise click.UsageError("--model is required with --stock")
        from mlcycle.extras import require

        require("ui", "docker", feature="mlcycle build-docker --stock")
        image_mod.build_stock_image(model_uri, image, env_manager)
    else:
        text = image_mod.render_dockerfile(**given(model_uri=model_uri))
        image_mod.build_image(image, text, context)
    click.echo(f"built image {image}")
