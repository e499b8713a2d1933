"""The estimators mlcycle can fit: scikit-learn's own, XGBoost and LightGBM, the user's.

API: :data:`ESTIMATORS`, :data:`OPTIONAL_ESTIMATORS`, :data:`ALIASES`,
:func:`resolve_estimator`, :func:`estimator_class`, :func:`new_estimator`,
:func:`estimator_template`.

Re-exported by :mod:`mlcycle.train.pipelines`, which puts them after the preprocessing.
"""

from __future__ import annotations

import importlib
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge

from mlcycle.data import Task
from mlcycle.errors import ConfigError
from mlcycle.extras import require
from mlcycle.train.user_estimator import is_user_estimator, user_callable, user_estimator

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

#: Boosting libraries behind an optional extra: name -> (extra, task -> (dotted class,
#: default params)). Imported only when chosen, after the extra is checked.
OPTIONAL_ESTIMATORS: dict[str, tuple[str, dict[Task, tuple[str, dict[str, Any]]]]] = {
    "xgboost": (
        "xgboost",
        {
            "classification": (
                "xgboost.sklearn.XGBClassifier",
                {"n_estimators": 200, "learning_rate": 0.1, "max_depth": 6, "n_jobs": -1},
            ),
            "regression": (
                "xgboost.sklearn.XGBRegressor",
                {"n_estimators": 200, "learning_rate": 0.1, "max_depth": 6, "n_jobs": -1},
            ),
        },
    ),
    "lightgbm": (
        "lightgbm",
        {
            "classification": (
                "lightgbm.sklearn.LGBMClassifier",
                {"n_estimators": 200, "learning_rate": 0.1, "num_leaves": 31, "verbose": -1},
            ),
            "regression": (
                "lightgbm.sklearn.LGBMRegressor",
                {"n_estimators": 200, "learning_rate": 0.1, "num_leaves": 31, "verbose": -1},
            ),
        },
    ),
}

#: Short names accepted on the command line.
ALIASES = {
    "logistic": "linear",
    "ridge": "linear",
    "rf": "random_forest",
    "hgb": "hist_gradient_boosting",
    "xgb": "xgboost",
    "lgbm": "lightgbm",
}


def resolve_estimator(name: str) -> str:
    """Canonical estimator name for ``name`` or one of its aliases.

    Raises:
        ConfigError: unknown estimator.
    """
    if is_user_estimator(name):
        user_callable(name)
        return name
    key = ALIASES.get(name, name)
    if key not in ESTIMATORS and key not in OPTIONAL_ESTIMATORS:
        raise ConfigError(
            f"unknown model '{name}'; choose one of: "
            + ", ".join([*ESTIMATORS, *OPTIONAL_ESTIMATORS, *ALIASES])
            + " (or --estimator module:callable)"
        )
    if key in OPTIONAL_ESTIMATORS:
        extra, classes = OPTIONAL_ESTIMATORS[key]
        modules = {dotted.split(".", 1)[0] for dotted, _ in classes.values()}
        require(extra, *sorted(modules), feature=f"--model {key}")
    return key


def new_estimator(key: str, task: Task, params: dict[str, Any]) -> BaseEstimator:
    """An unfitted estimator ``key`` for ``task`` with ``params`` applied.

    Raises:
        ConfigError: parameter values the estimator refuses.
    """
    if is_user_estimator(key):
        est = user_estimator(key, task)
        try:
            est.set_params(**params)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad parameters for {type(est).__name__}: {exc}") from exc
        return est
    cls, _ = estimator_class(key, task)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for {cls.__name__}: {exc}") from exc


def estimator_class(model: str, task: Task) -> tuple[type[BaseEstimator], dict[str, Any]]:
    """The class and default parameters of a built-in estimator (optional ones imported).

    Raises:
        ConfigError: unknown model or a user's ``module:callable``.
        MissingExtra: XGBoost or LightGBM chosen without its extra.
    """
    key = resolve_estimator(model)
    if key in ESTIMATORS:
        return ESTIMATORS[key][task]
    if key in OPTIONAL_ESTIMATORS:
        dotted, defaults = OPTIONAL_ESTIMATORS[key][1][task]
        module_name, _, cls_name = dotted.rpartition(".")
        cls: type[BaseEstimator] = getattr(importlib.import_module(module_name), cls_name)
        return cls, defaults
    raise ConfigError(f"'{model}' is not a built-in estimator")


def estimator_template(model: str, task: Task) -> BaseEstimator:
    key = resolve_estimator(model)
    if is_user_estimator(key):
        return user_estimator(key, task)
    cls, _ = estimator_class(key, task)
    return cls()
