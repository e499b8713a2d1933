"""sklearn pipelines: preprocessing before an estimator, parameters and search spaces.

API: :func:`build_pipeline`, :func:`check_trainable`, :func:`coerce_params`,
:func:`estimator_params`, :data:`SEARCH_SPACES`, :func:`sample_params`, :func:`search_space`.

The estimators themselves are in :mod:`mlcycle.train.estimators` (the user's own in
:mod:`mlcycle.train.user_estimator`), saving and loading in :mod:`mlcycle.train.persist`;
their public names are re-exported here, where they were first published
(:data:`ESTIMATORS`, :func:`resolve_estimator`, :data:`REVIEWED_TRUSTED_TYPES`,
:func:`model_format`, :func:`load_reviewed_skops`, …).

Three kinds of estimator sit after the same preprocessing:

- scikit-learn's own (:data:`ESTIMATORS`);
- XGBoost and LightGBM through their scikit-learn API (:data:`OPTIONAL_ESTIMATORS`), each
  behind its optional extra;
- the user's own, named ``module:callable`` (``--estimator``): the callable returns an
  unfitted scikit-learn-compatible estimator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlcycle.data import DatasetSpec, Task
from mlcycle.errors import ConfigError
from mlcycle.train.estimators import (
    ALIASES,
    ESTIMATORS,
    OPTIONAL_ESTIMATORS,
    estimator_class,
    estimator_template,
    new_estimator,
    resolve_estimator,
)
from mlcycle.train.persist import (
    CLOUDPICKLE,
    REVIEWED_TRUSTED_TYPES,
    SKOPS,
    load_reviewed_skops,
    model_format,
    model_requirements,
    trusted_types,
)
from mlcycle.train.user_estimator import (
    USER_SEARCH_SPACE_ATTR,
    check_estimator_spec,
    is_user_estimator,
    user_callable,
    user_estimator,
)

# Published here first; the trust policy, the CLI and users import them from this module.
__all__ = [
    "ALIASES",
    "CLOUDPICKLE",
    "ESTIMATORS",
    "OPTIONAL_ESTIMATORS",
    "REVIEWED_TRUSTED_TYPES",
    "SEARCH_SPACES",
    "SKOPS",
    "USER_SEARCH_SPACE_ATTR",
    "build_pipeline",
    "check_estimator_spec",
    "check_trainable",
    "coerce_params",
    "estimator_class",
    "estimator_params",
    "is_user_estimator",
    "load_reviewed_skops",
    "model_format",
    "model_requirements",
    "resolve_estimator",
    "sample_params",
    "search_space",
    "trusted_types",
]

logger = logging.getLogger(__name__)

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
    "xgboost": {
        task: {
            "learning_rate": lambda r: float(10 ** r.uniform(-2, -0.5)),
            "n_estimators": lambda r: int(r.choice([100, 200, 400])),
            "max_depth": lambda r: int(r.choice([3, 6, 8])),
        }
        for task in ("classification", "regression")
    },
    "lightgbm": {
        task: {
            "learning_rate": lambda r: float(10 ** r.uniform(-2, -0.5)),
            "n_estimators": lambda r: int(r.choice([100, 200, 400])),
            "num_leaves": lambda r: int(r.choice([15, 31, 63])),
        }
        for task in ("classification", "regression")
    },
}


def check_trainable(
    model: str, spec: DatasetSpec, y: pd.Series, params: dict[str, Any], allow_pickle: bool
) -> None:
    """Refuse, before any run starts, what would only fail after the fit.

    - XGBoost's classifiers take only the labels ``0..n-1`` (LightGBM and scikit-learn
      encode any labels themselves);
    - a user's estimator whose class is not reviewed for skops needs ``allow_pickle``
      (checked on the unfitted pipeline; the fitted one is checked again when saved).

    Raises:
        ConfigError: XGBoost classification on other labels.
        TrainingError: a user's class without ``allow_pickle``.
    """
    key = resolve_estimator(model)
    if is_user_estimator(key):
        model_format(build_pipeline(spec, key, params), allow_pickle)
    if key != "xgboost" or spec.task != "classification":
        return
    labels = pd.unique(y.dropna())
    try:
        ok = sorted(int(v) for v in labels) == list(range(len(labels))) and all(
            float(v) == int(v) for v in labels
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        shown = ", ".join(repr(v) for v in sorted(map(str, labels))[:5])
        raise ConfigError(
            f"--model xgboost needs class labels 0..{len(labels) - 1}, but '{spec.target}' "
            f"holds {shown}: encode the target, or use --model lightgbm"
        )


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
    template = estimator_template(model, task)
    valid = template.get_params()
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in valid:
            raise ConfigError(
                f"{type(template).__name__} has no parameter '{key}'; valid ones: "
                + ", ".join(sorted(valid))
            )
        out[key] = _parse_value(value) if isinstance(value, str) else value
    return out


def estimator_params(
    model: str, task: Task, overrides: dict[str, Any], seed: int
) -> dict[str, Any]:
    """Defaults merged with overrides (and the seed where the estimator takes one)."""
    key = resolve_estimator(model)
    if is_user_estimator(key):
        # The user's callable sets its own defaults (and its own seed, if it wants one).
        return dict(overrides)
    cls, defaults = estimator_class(key, task)
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
    # Trees (and the user's estimators, whatever they are) get unscaled numbers; a user
    # who wants scaling puts it in the pipeline their callable returns.
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
    estimator = new_estimator(key, spec.task, params)
    pre = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
    return Pipeline([("preprocess", pre), ("model", estimator)])


def sample_params(model: str, task: Task, rng: np.random.Generator) -> dict[str, Any]:
    """One draw from the estimator's search space."""
    space = search_space(model, task)
    return {key: draw(rng) for key, draw in space.items()}


def search_space(model: str, task: Task) -> dict[str, _Sampler]:
    """The estimator's search space: built-in, or the user's ``search_space`` attribute.

    A user's callable may carry ``search_space = {"param": [choice, ...], ...}``; each
    parameter is drawn from its choices.

    Raises:
        ConfigError: a user's estimator without a usable ``search_space``.
    """
    key = resolve_estimator(model)
    if not is_user_estimator(key):
        return SEARCH_SPACES[key][task]
    raw = getattr(user_callable(key), USER_SEARCH_SPACE_ATTR, None)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(
            f"--estimator '{key}' cannot be searched (--trials): give the callable a "
            f"'{USER_SEARCH_SPACE_ATTR}' attribute mapping parameter names to lists of choices"
        )
    bad = [k for k, v in raw.items() if not isinstance(v, list | tuple) or not v]
    if bad:
        raise ConfigError(
            f"--estimator '{key}': {USER_SEARCH_SPACE_ATTR} entries must be non-empty lists "
            f"of choices ({', '.join(map(str, bad))} are not)"
        )
    template = user_estimator(key, task).get_params()
    unknown = [k for k in raw if k not in template]
    if unknown:
        raise ConfigError(
            f"--estimator '{key}': {USER_SEARCH_SPACE_ATTR} names unknown parameters "
            + ", ".join(map(str, unknown))
        )

    def choose(options: list[Any]) -> _Sampler:
        # r.integers keeps any choice value (None, strings, mixed) usable with optuna too.
        return lambda r: options[int(r.integers(len(options)))]

    return {str(k): choose(list(v)) for k, v in raw.items()}
