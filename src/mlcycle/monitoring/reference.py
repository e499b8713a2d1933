"""The reference a window is compared with: what training stored, or a table given by the user.

API: :class:`ReferenceData`, :func:`resolve_version`, :func:`load_reference`,
:func:`reference_from_frame`, :func:`reference_for_table`.
"""

from __future__ import annotations

__all__ = [
    "CHAMPION",
    "ReferenceData",
    "load_reference",
    "reference_for_table",
    "reference_from_frame",
    "resolve_version",
]

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlcycle import contract, reference_profile
from mlcycle.data import DatasetSpec, prepare_features
from mlcycle.errors import DataError, ModelNotFound, MonitoringError
from mlcycle.monitoring.summary import class_labels
from mlcycle.uris import CHAMPION, resolve_version


@dataclass(frozen=True)
class ReferenceData:
    """What the current window is compared with."""

    profile: dict[str, Any]
    sample: pd.DataFrame
    task: str
    target: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    classes: tuple[str, ...] = ()
    quality: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        """Feature columns in model input order."""
        return [*self.numeric, *self.categorical]

    def prediction_profile(self) -> dict[str, Any]:
        """Profile entry of the ``prediction`` column, built from the sample."""
        pred = self.sample["prediction"]
        if self.task == "classification":
            counts = class_labels(pred).value_counts()
            return {
                "type": "categorical",
                "categories": {str(k): int(v) for k, v in counts.items()},
                "n_categories": int(counts.size),
            }
        spec = DatasetSpec(
            target=self.target, task="regression", numeric=("prediction",), categorical=()
        )
        frame = pd.DataFrame({"prediction": pd.to_numeric(pred, errors="coerce")})
        return dict(reference_profile.profile(frame, spec)["columns"]["prediction"])


def _quality_from_run(metrics: dict[str, float], task: str) -> dict[str, float]:
    keys = ("accuracy", "f1") if task == "classification" else ("rmse", "mae", "r2")
    return {k: float(metrics[f"test_{k}"]) for k in keys if f"test_{k}" in metrics}


def load_reference(client: Any, name: str, version: str | None = None) -> ReferenceData:
    """The reference that training stored for a registered model version.

    Args:
        client: an ``MlflowClient``.
        name: registered model name.
        version: a version number; the ``@champion`` when omitted.

    Raises:
        ModelNotFound: no such version or it has no training run.
        MissingPiece: the run has no ``reference/`` artifacts (a model not trained by
            mlcycle whose contract was never written; give a reference table instead).
    """
    mv = resolve_version(client, name, version)
    if not mv.run_id:
        raise ModelNotFound(f"model '{name}' version {mv.version} has no training run")
    run = client.get_run(mv.run_id)
    profile, sample = contract.load_reference_files(client, mv.run_id, f"'{name}' v{mv.version}")
    cols = profile["columns"]
    terms = contract.read(run.data.tags, {"task": profile.get("task"), "target": None})
    task = terms.task
    target = terms.target or profile.get("target", "")
    classes: tuple[str, ...] = ()
    if task == "classification" and target in sample.columns:
        classes = tuple(sorted(map(str, pd.unique(sample[target]))))
    return ReferenceData(
        profile=profile,
        sample=sample,
        task=task,
        target=target,
        numeric=tuple(c for c, v in cols.items() if v["type"] == "numeric"),
        categorical=tuple(c for c, v in cols.items() if v["type"] == "categorical"),
        classes=classes,
        quality=_quality_from_run(run.data.metrics, task),
        run_id=mv.run_id,
        model_name=name,
        model_version=str(mv.version),
        params=dict(run.data.params),
    )


def reference_from_frame(
    df: pd.DataFrame,
    like: ReferenceData | None = None,
    spec: DatasetSpec | None = None,
    seed: int = 0,
) -> ReferenceData:
    """A reference built from a table (features, target, optionally ``prediction``).

    The columns and task come from ``like`` (the model's own reference) or ``spec``.

    Raises:
        ConfigError: neither ``like`` nor ``spec`` is given.
        DataError: the table lacks feature columns.
    """
    if spec is None:
        if like is None:
            raise MonitoringError("a reference table needs the model's spec (give the model)")
        spec = DatasetSpec(
            target=like.target,
            task=like.task,  # type: ignore[arg-type]
            numeric=like.numeric,
            categorical=like.categorical,
            classes=like.classes,
        )
    X = prepare_features(df, spec)
    profile = reference_profile.profile(X, spec)
    sample = X.copy()
    if spec.target in df.columns:
        sample[spec.target] = df[spec.target].to_numpy()
    if "prediction" in df.columns:
        sample["prediction"] = df["prediction"].to_numpy()
    if len(sample) > reference_profile.MAX_REFERENCE_ROWS:
        sample = sample.sample(reference_profile.MAX_REFERENCE_ROWS, random_state=seed)
    return ReferenceData(
        profile=profile,
        sample=sample.reset_index(drop=True),
        task=spec.task,
        target=spec.target,
        numeric=spec.numeric,
        categorical=spec.categorical,
        classes=spec.classes or (like.classes if like else ()),
        quality=dict(like.quality) if like else {},
        run_id=like.run_id if like else None,
        model_name=like.model_name if like else None,
        model_version=like.model_version if like else None,
        params=dict(like.params) if like else {},
    )


def reference_for_table(
    client: Any,
    name: str,
    version: str | None,
    df: pd.DataFrame,
    target: str | None = None,
    seed: int = 0,
) -> ReferenceData:
    """A reference table given by the user, used as given.

    When the version has its own reference, its columns, task and quality frame the table
    (:func:`reference_from_frame`); otherwise the table alone defines them, with the target
    from ``target`` or the version's contract, so no artifacts are needed.

    Raises:
        ModelNotFound: no such version.
        MissingPiece: neither the version nor ``target`` says which column it predicts.
        DataError: the table lacks the target or is unusable.
    """
    from mlcycle.data import infer_spec

    try:
        like = load_reference(client, name, version)
    except contract.MissingPiece:
        like = None
    if like is not None and (target is None or target == like.target):
        return reference_from_frame(df, like=like, seed=seed)
    mv = resolve_version(client, name, version)
    terms = contract.read(dict(mv.tags or {}))
    col = contract.require_target(target or terms.target, f"'{name}' v{mv.version}")
    if col not in df.columns:
        raise DataError(f"the reference table lacks the target column '{col}'")
    # A task the contract states is kept; otherwise the target's values decide.
    task = terms.task if contract.TAG_TASK in (mv.tags or {}) else None
    spec = infer_spec(df, col, task)  # type: ignore[arg-type]
    ref = reference_from_frame(df, spec=spec, seed=seed)
    return ReferenceData(
        **{
            **ref.__dict__,
            "run_id": mv.run_id,
            "model_name": name,
            "model_version": str(mv.version),
        }
    )
