"""Object storage access shared by every stage, honouring MLflow's S3 variables.

API: :func:`s3_client`, :func:`split_s3`, :func:`filesystem`, :func:`apply_umask`,
:func:`private_dir`, :func:`private_file`, :func:`lock_dir`.

``MLFLOW_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL``) points boto3 and pyarrow at MinIO or
any S3-compatible store; credentials and region come from the usual ``AWS_*`` variables.

Local files are owner-only: the CLI applies the umask ``MLCYCLE_UMASK`` (default ``077``)
once at startup, so every file and directory mlcycle or MLflow creates inherits it;
:func:`private_dir` / :func:`private_file` enforce ``0700`` / ``0600`` where a path must stay
private whatever the umask (lock files, credentials).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from mlcycle.config import (
    AWS_DEFAULT_REGION,
    AWS_ENDPOINT_URL,
    AWS_REGION,
    MLFLOW_S3_ENDPOINT_URL,
    XDG_RUNTIME_DIR,
)
from mlcycle.errors import ConfigError
from mlcycle.extras import require


def _endpoint() -> str | None:
    return MLFLOW_S3_ENDPOINT_URL.get() or AWS_ENDPOINT_URL.get()


def s3_client() -> Any:
    """A boto3 S3 client for the configured endpoint.

    Raises:
        MissingExtra: boto3 is not installed (the ``s3`` extra).
    """
    require("s3", feature="s3:// paths")
    import boto3

    return boto3.client("s3", endpoint_url=_endpoint())


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/parts`` → ``("bucket", "key/parts")``."""
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def filesystem(root: str) -> tuple[Any, str]:
    """A pyarrow filesystem and the base path for a directory or an ``s3://`` prefix.

    Raises:
        MissingExtra: pyarrow is not installed (the ``monitoring`` extra; ``s3`` for s3://).
    """
    s3 = root.startswith("s3://")
    require("s3" if s3 else "monitoring", "pyarrow", feature="Parquet datasets (inference log)")
    import pyarrow.fs as pafs

    if s3:
        kwargs: dict[str, Any] = {}
        endpoint = _endpoint()
        if endpoint:
            scheme, _, host = endpoint.partition("://")
            kwargs.update(endpoint_override=host or endpoint, scheme=scheme if host else "https")
        region = AWS_DEFAULT_REGION.get() or AWS_REGION.get()
        if region:
            kwargs["region"] = region
        return pafs.S3FileSystem(**kwargs), root[len("s3://") :].rstrip("/")
    return pafs.LocalFileSystem(), str(Path(root).resolve())


def apply_umask(umask: str) -> int:
    """Set the process umask from its octal text (``"077"``) and return the previous one."""
    return os.umask(int(umask, 8))


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` as a ``0700`` directory of this user, or check that it is one.

    Raises:
        ConfigError: the directory exists but belongs to another user (someone may have
            pre-created it to plant or read files), or cannot be made private.
    """
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = p.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ConfigError(f"'{p}' is not a directory owned by this user; refusing to use it")
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            p.chmod(0o700)
        except OSError as exc:
            raise ConfigError(f"cannot make '{p}' private: {exc}") from exc
    return p


def private_file(path: str | os.PathLike[str]) -> Path:
    """Make an existing file ``0600`` (owner read/write only) and return its path."""
    p = Path(path)
    p.chmod(0o600)
    return p


def lock_dir() -> Path:
    """A private per-user directory for lock files that cannot live beside their store.

    ``$XDG_RUNTIME_DIR/mlcycle`` when the session has one, else ``<tmp>/mlcycle-<uid>``
    (``0700``, checked to belong to this user, never a fixed name others can pre-create).
    """
    runtime = XDG_RUNTIME_DIR.get()
    if runtime and Path(runtime).is_dir():
        return private_dir(Path(runtime) / "mlcycle")
    return private_dir(Path(tempfile.gettempdir()) / f"mlcycle-{os.getuid()}")
