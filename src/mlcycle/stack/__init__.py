"""The team tracking server: ``mlflow server`` on PostgreSQL and S3 with basic auth.

MLflow's server is safe only when started with the right flags and files; this package
builds them as pure values and runs them.

- :mod:`mlcycle.stack.options`: :class:`ServerOptions`, :func:`server_options` — what to
  start, from settings + overrides — and the checks (:func:`check_admin_password`,
  :func:`check_store_uri`, :func:`check_destination`, :func:`check_relative_path`,
  :func:`expand_hosts`, :func:`redact_uri`);
- :mod:`mlcycle.stack.server`: :func:`server_command`, :func:`server_env`,
  :func:`auth_config`, :func:`upgrade_command`, :func:`run_upgrade`, :func:`write_private`,
  :func:`run_server`;
- :mod:`mlcycle.stack.image`: :func:`render_stack_dockerfile` — ``docker/stack.Dockerfile``,
  the serving image with the tracking-server and monitoring extras, for the compose services
  ``mlflow`` and ``monitor``.
"""

from mlcycle.stack.image import STACK_IMAGE_EXTRAS, render_stack_dockerfile
from mlcycle.stack.options import (
    MIN_PASSWORD_LENGTH,
    ServerOptions,
    check_admin_password,
    check_destination,
    check_relative_path,
    check_store_uri,
    expand_hosts,
    redact_uri,
    server_options,
)
from mlcycle.stack.server import (
    auth_config,
    run_server,
    run_upgrade,
    server_command,
    server_env,
    upgrade_command,
    write_private,
)

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "STACK_IMAGE_EXTRAS",
    "ServerOptions",
    "auth_config",
    "check_admin_password",
    "check_destination",
    "check_relative_path",
    "check_store_uri",
    "expand_hosts",
    "redact_uri",
    "render_stack_dockerfile",
    "run_server",
    "run_upgrade",
    "server_command",
    "server_env",
    "server_options",
    "upgrade_command",
    "write_private",
]
