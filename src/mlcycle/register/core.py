"""Registering a training run's model and reading the registry's state.

API: :func:`register`, :func:`adopt`, :func:`champion_version`, :func:`production_versions`,
:func:`snapshot`, :func:`set_stage`; versions are resolved by :func:`mlcycle.uris.resolve_version`.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException

from mlcycle import contract
from mlcycle.errors import ModelNotFound
from mlcycle.register.types import CHALLENGER, CHAMPION
from mlcycle.tags import (
    MLCYCLE_DATA_DIGEST,
    MLCYCLE_ESTIMATOR,
    MLCYCLE_METRIC_PREFIX,
    MLCYCLE_MODEL_URI,
    MLCYCLE_TASK,
)
from mlcycle.uris import is_not_found, logged_model_id, logged_model_uri

logger = logging.getLogger(__name__)

_EXISTS = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")


def _is(exc: MlflowException, codes: tuple[str, ...]) -> bool:
    return exc.error_code in codes


def _get_run(client: Any, run_id: str) -> Any:
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if is_not_found(exc):
            raise ModelNotFound(f"no MLflow run with id '{run_id}'") from exc
        raise


def _model_source(client: Any, run: Any) -> tuple[str, str | None]:
    """The run's logged model as ``(source URI, logged model id or None)``.

    Raises:
        ModelNotFound: the run logged no model.
    """
    tagged = run.data.tags.get(MLCYCLE_MODEL_URI) or ""
    tagged_id = logged_model_id(tagged)
    if tagged_id:
        return tagged, tagged_id
    outputs = getattr(run, "outputs", None)
    model_outputs = list(getattr(outputs, "model_outputs", None) or [])
    if model_outputs:
        model_id = model_outputs[-1].model_id
        return logged_model_uri(model_id), model_id
    # MLflow 2-style runs keep the model as run artifacts.
    if any(a.path == "model/MLmodel" for a in client.list_artifacts(run.info.run_id, "model")):
        return f"runs:/{run.info.run_id}/model", None
    raise ModelNotFound(f"run '{run.info.run_id}' has no logged model to register")


def _ensure_registered_model(client: Any, name: str) -> None:
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if not _is(exc, _EXISTS):
            raise


#: The one metric kept as a version tag, per task; the others go to the description.
HEADLINE_METRIC = {"classification": "test_roc_auc", "regression": "test_rmse"}


def _run_tags(run: Any) -> dict[str, str]:
    # Only what users filter the registry on: every tag is a line in each registry row (the
    # run id is the version's own run_id field).
    tags: dict[str, str] = {}
    keys = (contract.TAG_TASK, contract.TAG_TARGET, contract.TAG_POS_LABEL)
    for key in (*keys, MLCYCLE_DATA_DIGEST, MLCYCLE_ESTIMATOR):
        if key in run.data.tags:
            tags[key] = run.data.tags[key]
    headline = HEADLINE_METRIC.get(run.data.tags.get(MLCYCLE_TASK, ""))
    if headline in run.data.metrics:
        tags[f"{MLCYCLE_METRIC_PREFIX}{headline}"] = f"{run.data.metrics[headline]:.6g}"
    return tags


def _describe(run: Any, description: str | None) -> str:
    """The version description: the user's words, then the run and its test metrics."""
    metrics = "  ".join(
        f"{k.removeprefix('test_')}={v:.4g}"
        for k, v in sorted(run.data.metrics.items())
        if k.startswith("test_")
    )
    lines = [description] if description else []
    lines.append(f"mlcycle: registered from run {run.info.run_id}")
    if metrics:
        lines.append(f"test split: {metrics}")
    return "\n\n".join(lines)


def set_stage(client: Any, name: str, version: str, stage: str, archive: bool = False) -> None:
    """Move a version to a stage; with ``archive`` the same transaction archives the others.

    Stages are deprecated in MLflow 3 but still served (and still what ``models:/NAME/Stage``
    resolves), so the deprecation warning is silenced here, in one place.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(
            name, version, stage, archive_existing_versions=archive
        )


def register(client: Any, run_id: str, name: str, description: str | None = None) -> Any:
    """Register a training run's model as a new version in Staging with alias ``@challenger``.

    The version is tagged with the run id, the data digest, task, target, estimator and the
    headline test metric (:data:`HEADLINE_METRIC`); its description lists every test metric.

    Args:
        client: an ``MlflowClient`` for the configured stores.
        run_id: the training run.
        name: registered model name (created when new).
        description: the version's description.

    Returns:
        The new ``ModelVersion`` (as read back after the stage and alias were set).

    Raises:
        ModelNotFound: no such run, or the run logged no model.
    """
    run = _get_run(client, run_id)
    source, model_id = _model_source(client, run)
    _ensure_registered_model(client, name)
    mv = client.create_model_version(
        name,
        source,
        run_id=run_id,
        tags=_run_tags(run),
        description=_describe(run, description),
        model_id=model_id,
    )
    set_stage(client, name, mv.version, "Staging")
    client.set_registered_model_alias(name, CHALLENGER, mv.version)
    logger.info(
        "registered %s version %s from run %s (Staging, @challenger)", name, mv.version, run_id
    )
    return client.get_model_version(name, mv.version)


def adopt(
    client: Any,
    run_id: str,
    name: str,
    reference: pd.DataFrame,
    *,
    target: str,
    eval_data: pd.DataFrame | None = None,
    task: str | None = None,
    pos_label: Any = None,
    allow_pickle: bool = False,
    description: str | None = None,
) -> Any:
    """Register any run's model after writing the lifecycle contract onto its run.

    For models mlcycle did not train (plain ``log_model`` code, ``autolog`` runs): the
    reference table becomes the drift reference, ``eval_data`` the gate's default evaluation
    split, and the run gets the target/task tags, as :func:`mlcycle.log_contract` would have
    written them.

    Args:
        client: an ``MlflowClient``.
        run_id: the run that logged the model.
        name: registered model name.
        reference: training (reference) rows, features and target.
        target: the column the model predicts.
        eval_data: held-out rows for the gate.
        task: ``classification`` or ``regression``; inferred when ``None``.
        pos_label: the positive class of a binary classifier.
        allow_pickle: let the trust policy load a pickled model to score the reference.
        description: the version's description.

    Raises:
        ModelNotFound: no such run, or the run logged no model.
        DataError: the tables lack the target or are unusable.
    """
    run = _get_run(client, run_id)
    source, _ = _model_source(client, run)
    contract.write(
        client,
        run_id,
        reference,
        eval_data,
        target=target,
        task=task,
        pos_label=pos_label,
        model_uri=source,
        allow_pickle=allow_pickle,
    )
    return register(client, run_id, name, description)


def get_registered_model(client: Any, name: str) -> Any:
    """The registered model, or :class:`ModelNotFound`."""
    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if is_not_found(exc):
            raise ModelNotFound(f"no registered model named '{name}'") from exc
        raise


def alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version an alias names, or ``None``."""
    aliases = get_registered_model(client, name).aliases or {}
    value = aliases.get(alias)
    return str(value) if value is not None else None


def champion_version(client: Any, name: str) -> str | None:
    """The version ``@champion`` names, or ``None`` before the first promotion.

    Raises:
        ModelNotFound: no registered model of that name.
    """
    return alias_version(client, name, CHAMPION)


def all_versions(client: Any, name: str) -> list[Any]:
    """Every version of a model."""
    return list(client.search_model_versions(f"name = '{name}'"))


def production_versions(client: Any, name: str) -> list[str]:
    """Versions currently in stage Production, ascending."""
    return sorted(
        (str(v.version) for v in all_versions(client, name) if v.current_stage == "Production"),
        key=int,
    )


def snapshot(client: Any, name: str) -> dict[str, Any]:
    """Stages and aliases of every version: what a failed operation must leave unchanged."""
    stages = {str(v.version): v.current_stage for v in all_versions(client, name)}
    aliases = dict(get_registered_model(client, name).aliases or {})
    return {"stages": stages, "aliases": {k: str(v) for k, v in aliases.items()}}
