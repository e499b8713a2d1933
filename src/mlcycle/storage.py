"""Object storage access shared by every stage, honouring MLflow's S3 variables.

API: :func:`s3_client`, :func:`split_s3`, :func:`filesystem`.

``MLFLOW_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL``) points boto3 and pyarrow at MinIO or
any S3-compatible store; credentials and region come from the usual ``AWS_*`` variables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlcycle.extras import require


def _endpoint() -> str | None:
    return os.environ.get("MLFLOW_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")


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
    """A pyarrow filesystem and the base path for a directory or an ``s3://`` prefix."""
    import pyarrow.fs as pafs

    if root.startswith("s3://"):
        kwargs: dict[str, Any] = {}
        endpoint = _endpoint()
        if endpoint:
            scheme, _, host = endpoint.partition("://")
            kwargs.update(endpoint_override=host or endpoint, scheme=scheme if host else "https")
        region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
        if region:
            kwargs["region"] = region
        return pafs.S3FileSystem(**kwargs), root[len("s3://") :].rstrip("/")
    return pafs.LocalFileSystem(), str(Path(root).resolve())
