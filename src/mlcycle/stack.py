"""The team tracking server: ``mlflow server`` on PostgreSQL and S3 with basic auth.

MLflow's server is safe only when started with the right flags and files; this module
builds them as pure values and runs them.

API:

- :class:`ServerOptions`, :func:`server_options` — what to start, from settings + overrides.
- :func:`server_command` → argv of ``mlflow server`` (no secret in it).
- :func:`server_env` → the variables the server process needs (secrets travel here).
- :func:`auth_config` → the basic-auth ini text (``default_permission = NO_PERMISSIONS``).
- :func:`upgrade_command` → ``mlflow db upgrade URI`` (what :func:`run_server` does first).
- :func:`check_admin_password`, :func:`redact_uri`, :func:`check_relative_path`.
- :func:`run_server` — write the auth config to a private file, upgrade the schema, run the
  server until it exits, forward SIGTERM/SIGINT, remove the file.
- :func:`render_stack_dockerfile` — ``docker/stack.Dockerfile``: the serving image with the
  tracking-server and monitoring extras, for the compose services ``mlflow`` and ``monitor``.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from mlcycle.config import MLFLOW_FLASK_SERVER_SECRET_KEY, MLFLOW_SERVER_ENABLE_JOB_EXECUTION
from mlcycle.errors import ConfigError
from mlcycle.redact import redact_uri  # re-exported: the one masker

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12  # MLflow's own minimum (mlflow.utils.validation._validate_password)
_WEAK = frozenset(
    {"password1234", "changeme", "change-me", "admin", "mlflow", "password", "secret"}
)
_PLACEHOLDER_MARK = "change-me"  # what .env.example puts in every secret
STACK_IMAGE_EXTRAS = ("serve", "monitoring", "postgres", "server")


@dataclass(frozen=True)
class ServerOptions:
    """What ``mlcycle server`` starts. Secrets are held but never rendered into argv."""

    backend_store_uri: str
    artifacts_destination: str
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 2
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
    cors_allowed_origins: tuple[str, ...] = ()
    auth_database_uri: str | None = None
    admin_username: str = "admin"
    auth_cache_ttl: int = 0
    admin_password: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)

    @property
    def auth_uri(self) -> str:
        """Where users and permissions live: the backend store unless told otherwise."""
        return self.auth_database_uri or self.backend_store_uri


def _split(text: str | Sequence[str] | None) -> tuple[str, ...]:
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(x.strip() for x in items if x.strip())


def check_store_uri(uri: str) -> str:
    """Refuse store URIs that fail late or silently.

    Raises:
        ConfigError: a bare ``postgresql://`` (SQLAlchemy 2.1 then looks for psycopg 3, which
            is not installed), or a scheme MLflow's SQL store does not take.
    """
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in ("postgresql", "postgres"):
        raise ConfigError(
            f"use postgresql+psycopg2:// instead of {scheme}:// for the store: with "
            "SQLAlchemy 2.1 the bare scheme loads psycopg 3, which mlcycle does not install"
        )
    if not scheme.startswith(("postgresql+", "sqlite", "mysql", "mssql")):
        raise ConfigError(
            f"the store must be a database URI (postgresql+psycopg2://…, sqlite:///…), "
            f"got {redact_uri(uri)}"
        )
    return uri


def check_relative_path(path: str, what: str = "path") -> str:
    """Refuse a path that climbs out of its root (``..`` segments) or is absolute.

    Raises:
        ConfigError: the path contains a ``..`` segment, a NUL byte or starts with ``/``.
    """
    if "\x00" in path:
        raise ConfigError(f"{what} contains a NUL byte")
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if path.startswith(("/", "\\")) or ".." in parts:
        raise ConfigError(f"{what} '{path}' must stay inside its root (no '..', not absolute)")
    return path


def check_destination(uri: str) -> str:
    """An artifact destination: ``s3://bucket[/prefix]`` or a local directory, without ``..``.

    Raises:
        ConfigError: the URI is empty, has a ``..`` segment, or an S3 URI names no bucket.
    """
    if not uri:
        raise ConfigError("an artifacts destination is required")
    if ".." in PurePosixPath(uri.split("://", 1)[-1]).parts:
        raise ConfigError(f"artifacts destination '{uri}' must not contain '..'")
    if uri.startswith("s3://") and not urlsplit(uri).netloc:
        raise ConfigError(f"artifacts destination '{uri}' names no bucket")
    return uri


def check_admin_password(password: str | None, username: str = "admin") -> str:
    """The admin password must be given and not guessable.

    The message never repeats the password.

    Raises:
        ConfigError: missing, shorter than 12 characters, a known default or placeholder,
            containing the username, or made of fewer than 6 distinct characters.
    """
    if not password:
        raise ConfigError(
            "MLCYCLE_ADMIN_PASSWORD is not set: the tracking server needs the first admin "
            "user's password from the environment (see .env.example)"
        )
    low = password.lower()
    if len(password) < MIN_PASSWORD_LENGTH:
        why = f"shorter than {MIN_PASSWORD_LENGTH} characters"
    elif low in _WEAK or _PLACEHOLDER_MARK in low:
        why = "a known default or placeholder"
    elif username and username.lower() in low:
        why = "contains the username"
    elif len(set(password)) < 6:
        why = "fewer than 6 distinct characters"
    else:
        return password
    raise ConfigError(f"MLCYCLE_ADMIN_PASSWORD is too weak: {why}")


def _has_password(uri: str) -> bool:
    try:
        return urlsplit(uri).password is not None
    except ValueError:
        return True


def expand_hosts(hosts: Sequence[str], port: int) -> tuple[str, ...]:
    """MLflow compares the whole Host header, port included; a bare name allows any port.

    Without this, ``--allowed-hosts mlflow`` would still refuse ``Host: mlflow:5000``.
    """
    out: list[str] = []
    for host in hosts:
        out.append(host)
        bare = not host.startswith("[") and ":" not in host
        if bare and host != "*":
            out.append(f"{host}:*")
        elif host.startswith("[") and host.endswith("]"):
            out.append(f"[[]{host[1:]}:*")
    return tuple(dict.fromkeys(out))


def server_options(settings: Any, **overrides: Any) -> ServerOptions:
    """Build and validate :class:`ServerOptions` from settings; ``None`` overrides are ignored.

    Raises:
        ConfigError: a store URI, the destination or the admin password is unusable.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    password = settings.admin_password.get_secret_value() if settings.admin_password else None
    username = settings.admin_username
    opts = ServerOptions(
        backend_store_uri=given.get("backend_store_uri", settings.backend_store_uri),
        artifacts_destination=given.get("artifacts_destination", settings.artifacts_destination),
        host=given.get("host", ServerOptions.host),
        port=int(given.get("port", ServerOptions.port)),
        workers=int(given.get("workers", ServerOptions.workers)),
        allowed_hosts=_split(given.get("allowed_hosts", settings.allowed_hosts)),
        cors_allowed_origins=_split(
            given.get("cors_allowed_origins", settings.cors_allowed_origins)
        ),
        auth_database_uri=given.get("auth_database_uri", settings.auth_database_uri),
        admin_username=username,
        auth_cache_ttl=int(given.get("auth_cache_ttl", settings.auth_cache_ttl)),
        admin_password=check_admin_password(password, username),
        secret_key=MLFLOW_FLASK_SERVER_SECRET_KEY.get() or "",
    )
    check_store_uri(opts.backend_store_uri)
    check_store_uri(opts.auth_uri)
    check_destination(opts.artifacts_destination)
    if not opts.allowed_hosts:
        raise ConfigError("at least one allowed host is required")
    if "*" in opts.allowed_hosts:
        raise ConfigError("'*' in allowed hosts turns off DNS-rebinding protection; list names")
    return opts


def _origins(opts: ServerOptions) -> tuple[str, ...]:
    # The UI's own origins, then the configured ones.
    own = (f"http://localhost:{opts.port}", f"http://127.0.0.1:{opts.port}")
    return tuple(dict.fromkeys((*own, *opts.cors_allowed_origins)))


def server_command(opts: ServerOptions, python: str | None = None) -> list[str]:
    """The argv of ``mlflow server``. A store URI carrying a password goes in :func:`server_env`.

    Args:
        opts: validated options.
        python: interpreter to run ``-m mlflow`` with; plain ``mlflow`` when ``None``.
    """
    head = [python, "-m", "mlflow"] if python else ["mlflow"]
    cmd = [*head, "server"]
    if not _has_password(opts.backend_store_uri):
        cmd += ["--backend-store-uri", opts.backend_store_uri]
    return [
        *cmd,
        "--artifacts-destination",
        opts.artifacts_destination,
        "--serve-artifacts",
        "--app-name",
        "basic-auth",
        "--allowed-hosts",
        ",".join(expand_hosts(opts.allowed_hosts, opts.port)),
        "--cors-allowed-origins",
        ",".join(_origins(opts)),
        "--x-frame-options",
        "DENY",
        "--host",
        opts.host,
        "--port",
        str(opts.port),
        "--workers",
        str(opts.workers),
    ]


def server_env(opts: ServerOptions, config_path: str | Path) -> dict[str, str]:
    """Variables the server process needs on top of the current environment."""
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config_path),
        # MLflow's own bootstrap variable: the password never touches the config file.
        "MLFLOW_AUTH_ADMIN_USERNAME": opts.admin_username,
        "MLFLOW_AUTH_ADMIN_PASSWORD": opts.admin_password,
        # Sessions survive restarts only with a fixed key; a random one per start is safe.
        "MLFLOW_FLASK_SERVER_SECRET_KEY": opts.secret_key or secrets.token_hex(32),
        # The job runner (GenAI scorers, prompt optimisation) starts eight huey consumers in
        # sessions of their own that outlive a stopped server; mlcycle uses none of it.
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION.name: MLFLOW_SERVER_ENABLE_JOB_EXECUTION.get() or "",
    }
    if _has_password(opts.backend_store_uri):
        env["MLFLOW_BACKEND_STORE_URI"] = opts.backend_store_uri
    return env


def auth_config(
    database_uri: str,
    admin_username: str = "admin",
    default_permission: str = "NO_PERMISSIONS",
    auth_cache_ttl: int = 0,
) -> str:
    """The basic-auth ini. Users see nothing they were not granted (``NO_PERMISSIONS``).

    The admin password is deliberately absent: it reaches MLflow through
    ``MLFLOW_AUTH_ADMIN_PASSWORD`` in the server's environment only.

    Args:
        database_uri: users and permissions store.
        admin_username: the first admin, created on the first start.
        default_permission: what a user may do with a resource nobody granted them.
        auth_cache_ttl: seconds a verified password stays cached per worker (0: verify the
            password hash on every request; costs ~0.1–0.5 s of CPU per request).
    """
    if auth_cache_ttl < 0:
        raise ConfigError("the auth cache TTL cannot be negative")
    # configparser treats '%' as interpolation; URL-encoded passwords contain it.
    db = database_uri.replace("%", "%%")
    return (
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = {db}\n"
        f"admin_username = {admin_username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
        f"auth_cache_ttl_seconds = {int(auth_cache_ttl)}\n"
    )


def upgrade_command(uri: str, python: str | None = None) -> list[str]:
    """``mlflow db upgrade URI``: bring the tracking schema to this MLflow's version."""
    head = [python, "-m", "mlflow"] if python else ["mlflow"]
    return [*head, "db", "upgrade", uri]


def write_private(text: str, directory: str | None = None) -> Path:
    """Write ``text`` to a new file only its owner can read (0600), in a 0700 directory."""
    folder = Path(tempfile.mkdtemp(prefix="mlcycle-server-", dir=directory))
    path = folder / "basic_auth.ini"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


def run_upgrade(uri: str) -> None:
    """Create or upgrade the tracking schema, in process (no password in any argv).

    Raises:
        ConfigError: the database cannot be reached or migrated.
    """
    from mlflow.db import upgrade

    logger.info("upgrading the tracking schema of %s", redact_uri(uri))
    try:
        upgrade.callback(uri)  # type: ignore[misc]  # the body of `mlflow db upgrade URI`
    except Exception as exc:
        raise ConfigError(
            f"cannot upgrade the tracking schema of {redact_uri(uri)}: {type(exc).__name__}"
        ) from exc


def run_server(
    opts: ServerOptions,
    *,
    upgrade: bool = True,
    extra_env: Mapping[str, str] | None = None,
) -> int:
    """Write the auth config, upgrade the schema, run ``mlflow server`` until it exits.

    SIGTERM and SIGINT are passed on to the server, which stops its workers; the private
    config file is removed afterwards.

    Returns:
        The server's exit code.
    """
    path = write_private(
        auth_config(opts.auth_uri, opts.admin_username, auth_cache_ttl=opts.auth_cache_ttl)
    )
    try:
        if upgrade:
            run_upgrade(opts.backend_store_uri)
        env = {**os.environ, **(extra_env or {}), **server_env(opts, path)}
        cmd = server_command(opts, python=sys.executable)
        logger.info(
            "starting mlflow server on %s:%s (store %s, artifacts %s, basic auth, "
            "default permission NO_PERMISSIONS)",
            opts.host,
            opts.port,
            redact_uri(opts.backend_store_uri),
            opts.artifacts_destination,
        )
        proc = subprocess.Popen(cmd, env=env)

        def forward(signum: int, _frame: Any) -> None:
            if proc.poll() is None:
                proc.send_signal(signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            return proc.wait()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    finally:
        path.unlink(missing_ok=True)
        path.parent.rmdir()


def render_stack_dockerfile() -> str:
    """The image of the compose services that track and monitor (``mlflow``, ``monitor``).

    The model server's lean image (the repository's ``Dockerfile``) lacks MLflow's auth app
    and Evidently. This recipe repeats that image's instructions unchanged up to its install
    layer, so a builder that has built (or pulled the cache of) one image reuses those layers
    for the other, and then installs only the tracking-server and monitoring extras on top.
    Both Dockerfiles stay standalone: neither needs the other's tag to build. Compose overrides
    the command and health check per service.
    """
    from mlcycle.serve.image import render_dockerfile

    text = render_dockerfile()
    body = text[text.index("FROM ") :]
    # The serving recipe switches to the unprivileged user right after its install layer;
    # the extra install must run before that, as root.
    cut = body.index("USER mlcycle\n")
    wheel = f'"$(ls /tmp/dist/mlcycle-*.whl)[{",".join(STACK_IMAGE_EXTRAS)}]"'
    extra = (
        "# Everything above is the model-server image, layer for layer (its cache is reused);\n"
        "# only the tracking-server and monitoring extras are added here.\n"
        "COPY --from=build /dist /tmp/dist\n"
        f"RUN pip install --no-cache-dir {wheel} \\\n"
        "    && rm -rf /tmp/dist\n"
    )
    # The monitor's reports volume: Docker seeds an empty named volume from the image's
    # directory, owner included; without it the volume is root's and the monitor cannot write.
    workdir = "WORKDIR /home/mlcycle\n"
    after = body.index(workdir, cut) + len(workdir)
    reports = "RUN mkdir -p /home/mlcycle/reports\n"
    return (
        "# syntax=docker/dockerfile:1\n"
        "# Generated by mlcycle.stack.render_stack_dockerfile(): the model-server recipe plus\n"
        f"# the extras {','.join(STACK_IMAGE_EXTRAS)} (MLflow's auth app, Evidently), for the\n"
        "# compose services `mlflow` and `monitor`; a test keeps the two equal. Compose sets\n"
        "# each service's command and health check.\n\n"
        + body[:cut]
        + extra
        + body[cut:after]
        + reports
        + body[after:]
    )
