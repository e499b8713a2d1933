"""What ``mlcycle server`` starts, validated: :class:`ServerOptions` and its checks.

API: :class:`ServerOptions`, :func:`server_options`, :func:`check_store_uri`,
:func:`check_destination`, :func:`check_relative_path`, :func:`check_admin_password`,
:func:`expand_hosts`, :func:`has_password`, :func:`redact_uri` (re-exported: the one masker).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from mlcycle.config import MLFLOW_FLASK_SERVER_SECRET_KEY
from mlcycle.errors import ConfigError
from mlcycle.redact import redact_uri  # re-exported: the one masker

MIN_PASSWORD_LENGTH = 12  # MLflow's own minimum (mlflow.utils.validation._validate_password)
_WEAK = frozenset(
    {"password1234", "changeme", "change-me", "admin", "mlflow", "password", "secret"}
)
_PLACEHOLDER_MARK = "change-me"  # what .env.example puts in every secret


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


def has_password(uri: str) -> bool:
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
