"""sklearn pipelines: preprocessing, estimators, search spaces and the skops trust list.

API: :data:`ESTIMATORS`, :func:`build_pipeline`, :func:`sample_params`,
:func:`trusted_types`, :func:`coerce_params`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlcycle.data import DatasetSpec, Task
from mlcycle.errors import ConfigError, TrainingError

#: estimator name -> task -> (class, default params)
ESTIMATORS: dict[str, dict[Task, tuple[type[BaseEstimator], dict[str, Any]]]] = {
    "linear": {
        "classification": (LogisticRegression, {"C": 1.0, "max_iter": 1000}),
        "regression": (Ridge, {"alpha": 1.0}),
    },
    "random_forest": {
        "classification": (
            RandomForestClassifier,
            {"n_estimators": 100, "max_depth": None, "min_samples_leaf": 1, "n_jobs": -1},
        ),
        "regression": (
            RandomForestRegressor,
            {"n_estimators": 100, "max_depth": None, "min_samples_leaf": 1, "n_jobs": -1},
        ),
    },
    "hist_gradient_boosting": {
        "classification": (
            HistGradientBoostingClassifier,
            {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31},
        ),
        "regression": (
            HistGradientBoostingRegressor,
            {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31},
        ),
    },
}

#: Short names accepted on the command line.
ALIASES = {
    "logistic": "linear",
    "ridge": "linear",
    "rf": "random_forest",
    "hgb": "hist_gradient_boosting",
}

# Search spaces: each entry draws one value from a seeded generator.
_Sampler = Callable[[np.random.Generator], Any]
SEARCH_SPACES: dict[str, dict[Task, dict[str, _Sampler]]] = {
    "linear": {
        "classification": {"C": lambda r: float(10 ** r.uniform(-3, 2))},
        "regression": {"alpha": lambda r: float(10 ** r.uniform(-3, 2))},
    },
    "random_forest": {
        task: {
            "n_estimators": lambda r: int(r.choice([50, 100, 200])),
            "max_depth": lambda r: [None, 6, 10, 16][int(r.integers(4))],
            "min_samples_leaf": lambda r: int(r.choice([1, 2, 5, 10])),
        }
        for task in ("classification", "regression")
    },
    "hist_gradient_boosting": {
        task: {
            "learning_rate": lambda r: float(10 ** r.uniform(-2, -0.5)),
            "max_iter": lambda r: int(r.choice([100, 200, 400])),
            "max_leaf_nodes": lambda r: int(r.choice([15, 31, 63])),
        }
        for task in ("classification", "regression")
    },
}

#: skops types reviewed as safe to load: sklearn's own tree structure and numpy dtype objects
#: (one-hot encoders keep their dtype). Anything else makes training fail loudly.
REVIEWED_TRUSTED_TYPES = frozenset(
    {
        # The arrays of a fitted decision tree (random forests).
        "sklearn.tree._tree.Tree",
        # The fitted trees of histogram gradient boosting.
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        # numpy dtype objects (one-hot categories, imputer statistics).
        "numpy.dtype",
    }
)


def resolve_estimator(name: str) -> str:
    """Canonical estimator name for ``name`` or one of its aliases.

    Raises:
        ConfigError: unknown estimator.
    """
    key = ALIASES.get(name, name)
    if key not in ESTIMATORS:
        raise ConfigError(
            f"unknown model '{name}'; choose one of: " + ", ".join([*ESTIMATORS, *ALIASES])
        )
    return key


def _parse_value(raw: str) -> Any:
    low = raw.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def coerce_params(model: str, task: Task, raw: dict[str, str]) -> dict[str, Any]:
    """Turn ``key=value`` strings into estimator parameters, refusing unknown keys.

    Raises:
        ConfigError: a parameter the estimator does not have.
    """
    cls, _ = ESTIMATORS[resolve_estimator(model)][task]
    valid = cls().get_params()
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in valid:
            raise ConfigError(
                f"{cls.__name__} has no parameter '{key}'; valid ones: " + ", ".join(sorted(valid))
            )
        out[key] = _parse_value(value) if isinstance(value, str) else value
    return out


def estimator_params(
    model: str, task: Task, overrides: dict[str, Any], seed: int
) -> dict[str, Any]:
    """Defaults merged with overrides (and the seed where the estimator takes one)."""
    cls, defaults = ESTIMATORS[resolve_estimator(model)][task]
    params = {**defaults, **overrides}
    if "random_state" in cls().get_params():
        params.setdefault("random_state", seed)
    return params


def build_pipeline(spec: DatasetSpec, model: str, params: dict[str, Any]) -> Pipeline:
    """Preprocessing (impute, scale, one-hot ignoring unknown categories) plus the estimator.

    Raises:
        ConfigError: unknown model or parameter values the estimator refuses.
    """
    key = resolve_estimator(model)
    cls, _ = ESTIMATORS[key][spec.task]
    tree_based = key != "linear"
    transformers: list[tuple[str, Any, list[str]]] = []
    if spec.numeric:
        transformers.append(
            (
                "num",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median"))]
                    # Trees split on thresholds: scaling changes nothing but float rounding,
                    # which would stop the ONNX copy from matching exactly.
                    + ([] if tree_based else [("scale", StandardScaler())])
                ),
                list(spec.numeric),
            )
        )
    if spec.categorical:
        transformers.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                        (
                            "onehot",
                            OneHotEncoder(
                                handle_unknown="ignore", sparse_output=False, max_categories=50
                            ),
                        ),
                    ]
                ),
                list(spec.categorical),
            )
        )
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for {cls.__name__}: {exc}") from exc
    pre = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
    return Pipeline([("preprocess", pre), ("model", estimator)])


def sample_params(model: str, task: Task, rng: np.random.Generator) -> dict[str, Any]:
    """One draw from the estimator's search space."""
    space = SEARCH_SPACES[resolve_estimator(model)][task]
    return {key: draw(rng) for key, draw in space.items()}


#: Ensemble attributes whose members all share one type: one member shows every type.
_ENSEMBLE_MEMBERS = ("estimators_", "_predictors")


def _type_proxy(pipeline: Pipeline) -> Pipeline:
    """A pipeline with the same types as ``pipeline`` but one member per ensemble.

    Serialising a 100-tree forest grown on 100k+ rows just to list its types costs seconds;
    every tree of an ensemble has the same types, so one tree lists them all.
    """
    import copy

    model = pipeline.steps[-1][1]
    members = [a for a in _ENSEMBLE_MEMBERS if len(getattr(model, a, None) or []) > 1]
    if not members:
        return pipeline
    small = copy.copy(model)
    for attr in members:
        setattr(small, attr, getattr(model, attr)[:1])
    return Pipeline([*pipeline.steps[:-1], (pipeline.steps[-1][0], small)])


def trusted_types(pipeline: Pipeline) -> list[str]:
    """The non-default skops types ``pipeline`` needs, all of them reviewed.

    Raises:
        TrainingError: the pipeline needs a type nobody reviewed.
    """
    import skops.io as sio

    needed = sorted(sio.get_untrusted_types(data=sio.dumps(_type_proxy(pipeline))))
    unreviewed = [t for t in needed if t not in REVIEWED_TRUSTED_TYPES]
    if unreviewed:
        raise TrainingError(
            "the model needs skops types that are not reviewed as safe: " + ", ".join(unreviewed)
        )
    return needed


def load_reviewed_skops(path: str) -> Pipeline:
    """Load a skops model file trusting only reviewed types, whatever the file itself lists.

    MLflow's loader trusts the allow-list stored *in the model* and therefore refuses skops
    models too when ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``; this loader keeps that
    variable off and still loads mlcycle's models safely.

    Raises:
        TrainingError: the file needs a type that is not reviewed.
    """
    import skops.io as sio

    needed = sorted(sio.get_untrusted_types(file=path))
    unreviewed = [t for t in needed if t not in REVIEWED_TRUSTED_TYPES]
    if unreviewed:
        raise TrainingError(
            f"{path} needs skops types that are not reviewed as safe: " + ", ".join(unreviewed)
        )
    model: Pipeline = sio.load(path, trusted=needed)
    return model
