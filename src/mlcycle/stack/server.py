"""Run MLflow's tracking server safely: its argv, environment and auth config as pure values.

API: :func:`server_command` → argv of ``mlflow server`` (no secret in it);
:func:`server_env` → the variables the server process needs (secrets travel here);
:func:`auth_config` → the basic-auth ini text (``default_permission = NO_PERMISSIONS``);
:func:`upgrade_command`, :func:`run_upgrade`; :func:`write_private`; :func:`run_server` —
write the auth config to a private file, upgrade the schema, run the server until it exits,
forward SIGTERM/SIGINT, remove the file.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlcycle.config import MLFLOW_SERVER_ENABLE_JOB_EXECUTION
from mlcycle.errors import ConfigError
from mlcycle.redact import redact_uri
from mlcycle.stack.options import ServerOptions, expand_hosts, has_password

logger = logging.getLogger(__name__)


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
    if not has_password(opts.backend_store_uri):
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
    if has_password(opts.backend_store_uri):
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
