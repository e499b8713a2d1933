"""Optional dependency groups: one check that names the ``pip install`` a feature needs.

API: :func:`require`, :func:`available`, :class:`MissingExtra`, :data:`MODULES`.

The core install trains, registers, gates, promotes and scores in batch on MLflow's skinny
package (its Parquet with fastparquet); serving, monitoring, S3 (all three with pyarrow), the
ONNX copy and the full MLflow (web UI, ``mlflow server``, ``mlflow models build-docker``)
come with extras (README "Install"). A feature calls :func:`require` before doing any work,
so a missing extra ends in one line that says what to install instead of a
``ModuleNotFoundError`` halfway through.
"""

from __future__ import annotations

import importlib.util

from mlcycle.errors import MlcycleError

#: Top-level modules each extra of ``pyproject.toml`` provides that mlcycle imports.
MODULES: dict[str, tuple[str, ...]] = {
    "onnx": ("skl2onnx", "onnxruntime"),
    # pyarrow: the inference log, Parquet request bodies, monitoring's statistics, S3 datasets
    # (the core reads and writes its Parquet with fastparquet: mlcycle.parquet).
    "serve": ("uvicorn", "prometheus_client", "pyarrow"),
    "monitoring": ("evidently", "pyarrow"),
    "s3": ("boto3", "pyarrow"),
    # What the `mlflow` distribution adds to the core's mlflow-skinny that mlcycle's features
    # reach: Flask runs the UI and `mlflow server`, docker-py runs `models build-docker`.
    "ui": ("flask", "docker"),
    "server": ("flask", "flask_wtf", "psycopg2", "boto3"),
}


class MissingExtra(MlcycleError):
    """A feature needs an optional dependency group that is not installed."""


def available(*modules: str) -> bool:
    """Whether every top-level module in ``modules`` can be imported (without importing it)."""
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                return False
        except (ImportError, ValueError):
            # find_spec raises when a module is set to None in sys.modules (blocked).
            return False
    return True


def require(extra: str, *modules: str, feature: str | None = None) -> None:
    """Raise :class:`MissingExtra` unless every module of ``extra`` can be imported.

    Args:
        extra: name of the optional dependency group in ``pyproject.toml``.
        modules: top-level modules the feature imports from that group
            [default: all of :data:`MODULES` for ``extra``].
        feature: what the user asked for, for the message [default: the extra's name].

    Raises:
        MissingExtra: a module is missing; the message names ``pip install 'mlcycle[extra]'``.
    """
    missing = [m for m in modules or MODULES[extra] if not available(m)]
    if missing:
        raise MissingExtra(
            f"{feature or extra} needs the '{extra}' extra ({', '.join(missing)} not installed): "
            f"pip install 'mlcycle[{extra}]'"
        )
