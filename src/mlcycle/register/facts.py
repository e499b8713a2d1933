"""What the registry knows of one version's model: task, target, inputs; and their check.

API: :class:`ModelFacts`, :func:`model_facts`, :func:`check_schema`.

Read from the version's ``MLmodel`` file (signature) and its lifecycle contract
(:mod:`mlcycle.contract`); the gate and promotion refuse a challenger that cannot take the
champion's requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlcycle import contract
from mlcycle.errors import ModelNotFound, SchemaMismatch


@dataclass(frozen=True)
class ModelFacts:
    """What the gate needs to know about one registered version."""

    version: str
    download_uri: str
    run_id: str | None
    task: str
    target: str
    inputs: dict[str, str]  # input column → MLflow type
    required: tuple[str, ...]
    pos_label: str | None = None


def model_facts(client: Any, mv: Any, target: str | None = None) -> ModelFacts:
    """Task, target and input schema of a version, from its MLmodel file and its run.

    Args:
        client: an ``MlflowClient``.
        mv: the ``ModelVersion``.
        target: the column it predicts, when the version's contract does not say.

    Raises:
        ModelNotFound: the version's model files cannot be read.
        MissingPiece: neither the version nor ``target`` says which column it predicts.
    """
    import mlflow
    from mlflow.models import Model

    uri = client.get_model_version_download_uri(mv.name, mv.version)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri.rstrip("/") + "/MLmodel")
        model = Model.load(local)
    except Exception as exc:
        raise ModelNotFound(
            f"cannot read the model of {mv.name} version {mv.version}: {exc}"
        ) from exc
    terms = contract.read(dict(mv.tags or {}), (model.metadata or {}).get("mlcycle"))
    inputs: dict[str, str] = {}
    required: list[str] = []
    if model.signature is not None and model.signature.inputs is not None:
        for col in model.signature.inputs.to_dict():
            name = col.get("name")
            if name is None:
                continue
            inputs[name] = str(col.get("type"))
            if col.get("required", True):
                required.append(name)
    target = contract.require_target(terms.target or target, f"{mv.name} version {mv.version}")
    return ModelFacts(
        str(mv.version), uri, mv.run_id, terms.task, target, inputs, tuple(required),
        terms.pos_label,
    )  # fmt: skip


def check_schema(challenger: ModelFacts, champion: ModelFacts) -> None:
    """Refuse a challenger that cannot take the champion's requests.

    Compatible means: every input the challenger requires is one the champion takes, with
    the same type, and both predict the same column for the same task.

    Raises:
        SchemaMismatch: with the offending columns.
    """
    problems = []
    if challenger.target != champion.target:
        problems.append(f"predicts '{challenger.target}', champion predicts '{champion.target}'")
    if challenger.task != champion.task:
        problems.append(f"is a {challenger.task} model, champion is a {champion.task} model")
    if challenger.inputs and champion.inputs:
        new = [c for c in challenger.required if c not in champion.inputs]
        if new:
            problems.append(f"requires inputs the champion does not take: {', '.join(new)}")
        changed = [
            f"{c} ({champion.inputs[c]} → {t})"
            for c, t in challenger.inputs.items()
            if c in champion.inputs and champion.inputs[c] != t
        ]
        if changed:
            problems.append(f"changes input types: {', '.join(changed)}")
    if problems:
        raise SchemaMismatch(
            f"version {challenger.version} is incompatible with champion version "
            f"{champion.version}: " + "; ".join(problems) + " (use --force --reason to override)"
        )
