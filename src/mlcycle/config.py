"""One typed settings object; every environment variable mlcycle reads is declared here.

MLflow's own variables (``MLFLOW_TRACKING_URI``, ``MLFLOW_REGISTRY_URI``,
``MLFLOW_S3_ENDPOINT_URL``, ``AWS_*``) keep their MLflow meaning; mlcycle's own start with
``MLCYCLE_``.

Variables that are not settings of an mlcycle process (boto's S3 endpoint and region, the
Prometheus multiprocess directory, the hand-off of ``mlcycle serve`` to its workers, …) are
declared here as :class:`EnvVar` values, each with its type and default, like MLflow's
``mlflow/environment_variables.py``; other modules read them only through these.

The library never builds :class:`Settings`: the CLI and the server's startup do, and pass
them (or the values they need) down.

API: :class:`Settings`, :func:`load_settings`, :func:`apply_tracking`,
:func:`ensure_experiment`, :class:`EnvVar` and the variables declared with it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlcycle.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_ARTIFACT_ROOT = "./mlartifacts"


@dataclass(frozen=True)
class EnvVar:
    """One environment variable outside :class:`Settings`: its name, default and meaning.

    Each is a string (a path, URL, region or JSON document); an empty value counts as unset.
    """

    name: str
    default: str | None = None
    doc: str = ""

    def is_set(self) -> bool:
        """Whether the variable holds a non-empty value."""
        return bool(os.environ.get(self.name))

    def get(self) -> str | None:
        """The value, or the default when unset."""
        return os.environ.get(self.name) or self.default

    def set(self, value: str) -> None:
        """Put a value in this process's environment (inherited by child processes)."""
        os.environ[self.name] = value

    def unset(self) -> None:
        """Remove the variable from this process's environment."""
        os.environ.pop(self.name, None)


# MLflow's and boto's own variables, honoured with their meaning there.
MLFLOW_S3_ENDPOINT_URL = EnvVar("MLFLOW_S3_ENDPOINT_URL", doc="S3 endpoint (MinIO, moto).")
AWS_ENDPOINT_URL = EnvVar("AWS_ENDPOINT_URL", doc="boto's endpoint, when MLflow's is unset.")
AWS_DEFAULT_REGION = EnvVar("AWS_DEFAULT_REGION", doc="S3 region.")
AWS_REGION = EnvVar("AWS_REGION", doc="S3 region, when AWS_DEFAULT_REGION is unset.")
MLFLOW_TRACKING_USERNAME = EnvVar(
    "MLFLOW_TRACKING_USERNAME", doc="Tracking-server user; the actor of audit records."
)
MLFLOW_FLASK_SERVER_SECRET_KEY = EnvVar(
    "MLFLOW_FLASK_SERVER_SECRET_KEY", "", doc="Tracking server's session secret."
)
MLFLOW_SERVER_ENABLE_JOB_EXECUTION = EnvVar(
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION",
    "false",
    doc="MLflow's job runner in the tracking server (off unless asked for).",
)
# Other tools' variables.
XDG_RUNTIME_DIR = EnvVar("XDG_RUNTIME_DIR", doc="Per-user runtime directory (lock files).")
PROMETHEUS_MULTIPROC_DIR = EnvVar(
    "PROMETHEUS_MULTIPROC_DIR", doc="prometheus_client's shared directory of worker counters."
)
PYSPARK_PYTHON = EnvVar("PYSPARK_PYTHON", doc="Python of Spark's workers.")
# Set around `mlflow.projects.run` (monitoring/project.py), restored after it.
MLFLOW_TRACKING_URI = EnvVar("MLFLOW_TRACKING_URI", doc="MLflow's tracking store.")
PATH = EnvVar("PATH", default="", doc="Where child processes (python, uv) are looked up.")
# mlcycle's process hand-offs (set by mlcycle for its own children, not by users).
MLCYCLE_SERVE_CONFIG = EnvVar(
    "MLCYCLE_SERVE_CONFIG", doc="JSON ServerConfig handed to `mlcycle serve` workers."
)


class Settings(BaseSettings):
    """Resolved configuration of one mlcycle process."""

    # populate_by_name: Settings(tracking_uri=...) must work as well as the env aliases.
    model_config = SettingsConfigDict(
        env_prefix="MLCYCLE_", extra="ignore", frozen=True, populate_by_name=True
    )

    tracking_uri: str = Field(
        DEFAULT_TRACKING_URI,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "MLCYCLE_TRACKING_URI"),
        description="MLflow tracking store (MLflow's own MLFLOW_TRACKING_URI).",
    )
    registry_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("MLFLOW_REGISTRY_URI", "MLCYCLE_REGISTRY_URI"),
        description="Model registry store; the tracking store when unset.",
    )
    artifact_root: str = Field(
        DEFAULT_ARTIFACT_ROOT,
        description="Where new experiments keep artifacts when the tracking store is local.",
    )
    experiment: str = Field("mlcycle", description="Experiment of training runs.")
    model_name: str = Field("mlcycle-model", description="Default registered model name.")
    inference_log: str = Field(
        "./inference-log", description="Inference log root: a directory or an s3:// prefix."
    )
    seed: int = Field(42, description="Default random seed.")
    allow_pickle: bool = Field(
        False,
        description="Load models whose files can run code (pickle, cloudpickle, code/): the "
        "environment form of --allow-pickle; see mlcycle.trust.",
    )
    # The retrain action (docs/bring-your-own-model.md): mlcycle's trainer, or the user's
    # MLflow project when retrain_project is set.
    retrain_project: str | None = Field(
        None,
        description="MLflow project (directory or Git URI) the retrain action runs with "
        "`mlflow run`; unset: mlcycle's own trainer.",
    )
    retrain_entry: str = Field("main", description="Entry point of the retrain project.")
    retrain_data_param: str = Field(
        "data", description="Parameter of that entry point that receives the retrain table."
    )
    retrain_env_manager: Literal["local", "uv", "virtualenv", "conda"] = Field(
        "local",
        description="How `mlflow run` builds the project's environment: local (mlcycle's own), "
        "uv or virtualenv (python_env.yaml), conda.",
    )
    retrain_params: str = Field(
        "",
        description='Further parameters of the retrain project, a JSON object: {"target": "y"}.',
    )
    umask: str = Field(
        "077",
        pattern=r"^0?[0-7]{3}$",
        description=(
            "Octal umask of every mlcycle command: files it creates (mlflow.db, artifacts, the "
            "inference log, reports) are owner-only by default; 022 makes them world-readable."
        ),
    )

    # ``mlcycle server`` (the team tracking server; see mlcycle.stack).
    backend_store_uri: str = Field(
        "sqlite:///mlflow.db",
        description="Tracking server's store: postgresql+psycopg2://user:pw@host/db in a team.",
    )
    artifacts_destination: str = Field(
        "./mlartifacts", description="Where the tracking server keeps artifacts: s3://bucket/…"
    )
    allowed_hosts: str = Field(
        "localhost,127.0.0.1",
        description="Host headers the tracking server answers (comma-separated; a name "
        "without a port also allows it on any port).",
    )
    cors_allowed_origins: str = Field(
        "", description="Extra browser origins allowed to change state (comma-separated)."
    )
    auth_database_uri: str | None = Field(
        None, description="Users and permissions store [default: the backend store]."
    )
    admin_username: str = Field("admin", description="Tracking server's first admin user.")
    auth_cache_ttl: int = Field(
        0, ge=0, description="Seconds a verified password stays cached per server worker."
    )
    registry_lock_uri: str | None = Field(
        None,
        description=(
            "PostgreSQL URI (postgresql+psycopg2://) whose advisory locks serialise promotions "
            "when the registry is a tracking server over HTTP, across every machine."
        ),
    )
    admin_password: SecretStr | None = Field(
        None, description="Password of the first admin user (required by mlcycle server)."
    )

    # Canary checks (``mlcycle canary``, ``mlcycle loop --canary``; mlcycle.monitoring.canary).
    canary_metric: str = Field(
        "accuracy", description="Canary: quality measure judged (accuracy, mae or mse)."
    )
    canary_min_labelled: int = Field(
        200, ge=1, description="Canary: labelled records each arm needs before a decision."
    )
    canary_tolerance: float = Field(
        0.0,
        ge=0,
        description="Canary: how much worse the challenger may be and still be promoted "
        "(lower bound of the 95% CI of the gain >= -tolerance).",
    )
    canary_max_error_rate: float = Field(
        0.01, ge=0, le=1, description="Canary: challenger failed-request share that rolls back."
    )
    canary_min_requests: int = Field(
        100, ge=1, description="Canary: challenger requests before its error rate is judged."
    )
    canary_max_p99_ms: float | None = Field(
        None, gt=0, description="Canary: challenger p99 latency (ms) that rolls back."
    )
    canary_steps: str = Field(
        "0.1,0.5,1",
        description="Canary: traffic shares gone through; good evidence below the last "
        "step raises the share, at the step before 1 it promotes.",
    )
    canary_metrics_url: str | None = Field(
        None,
        description="Canary: the model server's /metrics URL (per-arm errors and latency).",
    )
    canary_labels: str | None = Field(
        None, description="Canary: labels file (CSV/Parquet) re-read at every check."
    )
    canary_act: bool = Field(
        False, description="Canary: carry decisions out (promote / roll back / raise share)."
    )

    def client_kwargs(self) -> dict[str, Any]:
        """Arguments for ``MlflowClient`` built from these settings."""
        return {"tracking_uri": self.tracking_uri, "registry_uri": self.registry_uri}


def load_settings(**overrides: Any) -> Settings:
    """Read the environment, apply explicit overrides (``None`` values are ignored).

    Raises:
        ConfigError: a variable has a value of the wrong type.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:  # pragma: no cover - exercised through the CLI
        raise ConfigError(f"invalid configuration: {exc}") from exc


def apply_tracking(settings: Settings) -> None:
    """Point the ``mlflow`` fluent API at the configured stores."""
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    if settings.registry_uri:
        mlflow.set_registry_uri(settings.registry_uri)


#: The MLflow UI opens experiments of this kind on their training runs, not the GenAI overview.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def _is_local_store(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("sqlite:", "file:", "postgresql", "mysql")) or "://" not in (
        tracking_uri
    )


def ensure_experiment(client: Any, name: str, settings: Settings | None = None) -> str:
    """Return the id of experiment ``name``, creating it (artifacts under the root) if needed.

    The artifact root is ``settings.artifact_root`` (:data:`DEFAULT_ARTIFACT_ROOT` without
    settings); whether the store is local is read from the client.
    """
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return str(exp.experiment_id)
    root = settings.artifact_root if settings is not None else DEFAULT_ARTIFACT_ROOT
    location = None
    if _is_local_store(client.tracking_uri) and "://" not in root:
        location = (Path(root).resolve() / name).as_uri()
    elif "://" in root:
        location = root.rstrip("/") + "/" + name
    try:
        return str(client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS))
    except Exception:
        # Another process may have created it between the lookup and the create.
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)
