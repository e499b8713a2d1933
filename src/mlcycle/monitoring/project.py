"""Act through the user's MLflow project: the retrain action as declared data.

API: :class:`ProjectRetrain`, :func:`project_retrain`, :func:`check_project`,
:func:`run_project`.

The retrain action is mlcycle's own trainer unless a project is declared
(``--retrain-project`` / ``MLCYCLE_RETRAIN_PROJECT``); then retraining is
``mlflow run PROJECT -e ENTRY -P DATA_PARAM=<table> [-P KEY=VALUE ...] --env-manager M``
through :func:`mlflow.projects.run`. The table is written for that run by
:func:`mlcycle.monitoring.trigger.retrain`; what the project logs is then registered, gated
and promoted like any other run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from mlcycle.config import MLFLOW_TRACKING_URI, PATH
from mlcycle.errors import ConfigError, MonitoringError

logger = logging.getLogger(__name__)

#: ``mlflow run --env-manager`` values.
ENV_MANAGERS: tuple[str, ...] = ("local", "uv", "virtualenv", "conda")

#: Where each field is set, quoted by every configuration error.
OPTIONS = {
    "uri": "--retrain-project / MLCYCLE_RETRAIN_PROJECT",
    "entry": "--retrain-entry / MLCYCLE_RETRAIN_ENTRY",
    "data_param": "--retrain-data-param / MLCYCLE_RETRAIN_DATA_PARAM",
    "env_manager": "--retrain-env-manager / MLCYCLE_RETRAIN_ENV_MANAGER",
    "params": "--retrain-param KEY=VALUE / MLCYCLE_RETRAIN_PARAMS",
}


@dataclass(frozen=True)
class ProjectRetrain:
    """Retrain by running an MLflow project on the retrain table.

    Attributes:
        uri: the project: a local directory or anything ``mlflow run`` accepts (a Git URI).
        entry: its entry point.
        data_param: the entry point's parameter that receives the table's path.
        env_manager: ``local`` runs in mlcycle's own environment; ``uv`` / ``virtualenv``
            build the project's ``python_env.yaml``; ``conda`` its ``conda.yaml``.
        params: further ``-P`` parameters (for example the target column).
    """

    uri: str
    entry: str = "main"
    data_param: str = "data"
    env_manager: str = "local"
    params: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.uri:
            raise ConfigError(f"the retrain project needs a URI: {OPTIONS['uri']}")
        if self.env_manager not in ENV_MANAGERS:
            raise ConfigError(
                f"unknown env manager '{self.env_manager}' (choose {', '.join(ENV_MANAGERS)}): "
                f"{OPTIONS['env_manager']}"
            )
        if self.data_param in self.params:
            raise ConfigError(
                f"parameter '{self.data_param}' receives the retrain table; do not set it with "
                f"{OPTIONS['params']}"
            )

    def describe(self) -> str:
        """The equivalent ``mlflow run`` command line."""
        extra = "".join(f" -P {k}={v}" for k, v in self.params.items())
        return (
            f"mlflow run {self.uri} -e {self.entry} -P {self.data_param}=<table>{extra} "
            f"--env-manager {self.env_manager}"
        )


def project_retrain(settings: Any) -> ProjectRetrain | None:
    """The retrain action the settings declare: ``None`` means mlcycle's own trainer."""
    uri = getattr(settings, "retrain_project", None)
    if not uri:
        return None
    return ProjectRetrain(
        uri=uri,
        entry=settings.retrain_entry,
        data_param=settings.retrain_data_param,
        env_manager=settings.retrain_env_manager,
        params=_params(settings.retrain_params),
    )


def _params(text: str) -> dict[str, str]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"MLCYCLE_RETRAIN_PARAMS is not JSON ({exc}): {text[:200]}") from exc
    if not isinstance(value, dict):
        raise ConfigError('MLCYCLE_RETRAIN_PARAMS must be a JSON object: {"target": "y"}')
    return {str(k): str(v) for k, v in value.items()}


def _local_dir(uri: str) -> Path | None:
    """The directory of a local project URI, ``None`` for Git and other remote URIs."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:  # a Windows drive letter is not a scheme
        return None
    if "#" in uri or re.match(r"^[\w.-]+@[\w.-]+:", uri):  # repo#subdir, user@host:repo
        return None
    return Path(uri)


def _spec(directory: Path) -> dict[str, Any]:
    files = [p for p in directory.iterdir() if p.name.lower() == "mlproject"]
    if not files:
        raise ConfigError(
            f"retrain project '{directory}' has no MLproject file declaring entry points: "
            f"{OPTIONS['uri']}"
        )
    try:
        spec = yaml.safe_load(files[0].read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot read {files[0]}: {exc}") from exc
    if not isinstance(spec, dict):
        raise ConfigError(f"{files[0]} is not an MLproject mapping")
    return spec


def check_project(action: ProjectRetrain) -> None:
    """Check a local project before anything runs: it exists, declares the entry point, and
    the entry point takes the data parameter and gets every required parameter.

    Remote (Git) projects are checked by ``mlflow run`` when they are fetched.

    Raises:
        ConfigError: naming the option that is wrong.
    """
    directory = _local_dir(action.uri)
    if directory is None:
        return
    if not directory.is_dir():
        raise ConfigError(
            f"retrain project '{action.uri}' is not a directory or a Git URI: {OPTIONS['uri']}"
        )
    entries = _spec(directory).get("entry_points") or {}
    if action.entry not in entries:
        declared = ", ".join(sorted(entries)) or "none"
        raise ConfigError(
            f"retrain project '{action.uri}' declares no entry point '{action.entry}' "
            f"(declared: {declared}): {OPTIONS['entry']}"
        )
    params = (entries[action.entry] or {}).get("parameters") or {}
    if action.data_param not in params:
        declared = ", ".join(sorted(params)) or "none"
        raise ConfigError(
            f"entry point '{action.entry}' of retrain project '{action.uri}' declares no "
            f"parameter '{action.data_param}' to receive the retrain table (it declares: "
            f"{declared}): {OPTIONS['data_param']}"
        )
    for name, spec in params.items():
        has_default = isinstance(spec, dict) and "default" in spec
        if name != action.data_param and name not in action.params and not has_default:
            raise ConfigError(
                f"entry point '{action.entry}' of retrain project '{action.uri}' needs "
                f"parameter '{name}': {OPTIONS['params']} ({name}=VALUE)"
            )


def _absolute_store(uri: str) -> str:
    """A tracking URI the project's process, started in the project directory, still finds."""
    for prefix in ("sqlite:///", "file:"):
        if uri.startswith(prefix):
            rest = uri.removeprefix(prefix)
            if prefix == "file:" and rest.startswith("//"):
                return uri
            if rest.startswith("/") or rest.startswith(":memory:"):
                return uri
            resolved = Path(rest).resolve()
            return f"sqlite:///{resolved}" if prefix == "sqlite:///" else resolved.as_uri()
    if "://" not in uri:  # a bare directory is a file store
        return Path(uri).resolve().as_uri()
    return uri


@contextlib.contextmanager
def _project_environment(client: Any) -> Iterator[None]:
    """Point ``mlflow.projects`` at the client's store, and ``PATH`` at this Python's tools.

    ``mlflow.projects.run`` reads the fluent tracking URI and starts ``python`` (or ``uv``,
    ``virtualenv``) from ``PATH`` in the project directory; both are set for the call and
    restored after it.
    """
    import mlflow

    saved_uri = mlflow.get_tracking_uri()
    saved_env = {var: var.get() if var.is_set() else None for var in (MLFLOW_TRACKING_URI, PATH)}
    mlflow.set_tracking_uri(_absolute_store(client.tracking_uri))
    # `local` means the environment mlcycle runs in, even when it was not activated; uv and
    # virtualenv are looked up there first too.
    bindir = str(Path(sys.executable).parent)
    PATH.set(os.pathsep.join([bindir, PATH.get() or ""]))
    try:
        yield
    finally:
        for var, value in saved_env.items():
            if value is None:
                var.unset()
            else:
                var.set(value)
        mlflow.set_tracking_uri(saved_uri)


def run_project(
    client: Any,
    action: ProjectRetrain,
    data_path: Path,
    experiment_id: str,
    run_name: str,
) -> str:
    """Run the project on ``data_path`` and wait for it; return the run id it logged to.

    Raises:
        ConfigError: the project is misdeclared (see :func:`check_project`).
        MonitoringError: the project run failed.
    """
    import mlflow.projects
    from mlflow.exceptions import ExecutionException, MlflowException

    check_project(action)
    parameters = {**action.params, action.data_param: str(data_path)}
    logger.info("retrain: %s", action.describe().replace("<table>", str(data_path)))
    try:
        with _project_environment(client):
            submitted = mlflow.projects.run(
                action.uri,
                entry_point=action.entry,
                parameters=parameters,
                experiment_id=experiment_id,
                run_name=run_name,
                env_manager=action.env_manager,
                synchronous=True,
            )
    except ExecutionException as exc:  # mlflow has marked the run FAILED
        raise MonitoringError(f"retrain project run failed ({action.describe()}): {exc}") from exc
    except BaseException as exc:
        # mlflow.projects creates the run before it builds the environment: a failure there
        # (or an interrupt) would leave it RUNNING for ever. End that run, and only that one.
        _end_orphans(client, experiment_id, action.data_param, str(data_path))
        if isinstance(exc, MlflowException):
            raise ConfigError(f"cannot run retrain project {action.uri}: {exc.message}") from exc
        raise
    return str(submitted.run_id)


def _end_orphans(client: Any, experiment_id: str, param: str, value: str) -> None:
    """Mark FAILED the RUNNING runs whose ``param`` is this retrain's own table."""
    quoted = value.replace("'", "\\'")
    try:
        runs = client.search_runs(
            [experiment_id],
            f"attributes.status = 'RUNNING' and params.`{param}` = '{quoted}'",
        )
        for run in runs:
            logger.warning("ending retrain project run %s left RUNNING", run.info.run_id)
            client.set_terminated(run.info.run_id, "FAILED")
    except Exception as exc:  # the original error matters more than this clean-up
        logger.warning("could not end the retrain project's run: %s", exc)
