"""sklearn pipelines: preprocessing, estimators, search spaces and the skops trust list.

API: :data:`ESTIMATORS`, :data:`OPTIONAL_ESTIMATORS`, :func:`resolve_estimator`,
:func:`estimator_class`, :func:`build_pipeline`, :func:`sample_params`, :func:`search_space`,
:func:`check_target`, :func:`model_format`, :func:`trusted_types`, :func:`coerce_params`,
:func:`model_requirements`.

Three kinds of estimator sit after the same preprocessing:

- scikit-learn's own (:data:`ESTIMATORS`);
- XGBoost and LightGBM through their scikit-learn API (:data:`OPTIONAL_ESTIMATORS`), each
  behind its optional extra;
- the user's own, named ``module:callable`` (``--estimator``): the callable returns an
  unfitted scikit-learn-compatible estimator.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
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
from mlcycle.extras import require

logger = logging.getLogger(__name__)

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

#: Attribute a user's ``module:callable`` may carry to be searched: parameter -> choices.
USER_SEARCH_SPACE_ATTR = "search_space"

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
        # XGBoost and LightGBM (``--model xgboost|lightgbm``). Reviewed for xgboost 3.2 and
        # lightgbm 4.7: skops rebuilds each with ``cls.__new__`` and ``__setstate__``. The
        # estimators' ``__setstate__`` is scikit-learn's (it only updates ``__dict__``); the
        # boosters' hands the stored bytes (XGBoost) or model text (LightGBM) to the
        # library's native model parser, the same one ``mlflow.xgboost``/``mlflow.lightgbm``
        # run on the native files the trust policy already accepts. Every attribute value is
        # itself a skops node, so nothing outside this list and skops' defaults is built.
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        # LightGBM keeps its parameters in an OrderedDict (a plain mapping).
        "collections.OrderedDict",
    }
)


def is_user_estimator(model: str) -> bool:
    """Whether ``model`` names the user's ``module:callable`` rather than a built-in."""
    return ":" in model


def check_estimator_spec(spec: str) -> str:
    """Check the form of a ``module:callable`` spec without importing or calling anything.

    Returns:
        ``spec`` unchanged.

    Raises:
        ConfigError: no ``:``, an empty module or callable, a second ``:``, or a module of
            Python's standard library (``os:system`` is no estimator factory); the message
            starts with the spec and says which.
    """
    module_name, colon, attr = spec.partition(":")
    example = "(e.g. mypackage.models:make_estimator)"
    why = None
    if not colon:
        why = "no ':' between the module and the callable"
    elif ":" in attr:
        why = "more than one ':'"
    elif not module_name.strip():
        why = "the module before ':' is empty"
    elif not attr.strip():
        why = "the callable after ':' is empty"
    if why is not None:
        raise ConfigError(f"'{spec}' is not MODULE:CALLABLE: {why} {example}")
    top = module_name.strip().split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        # os:system, subprocess:…, shutil:rmtree… are no estimator factories: refuse before
        # anything is imported or called (the spec also comes back from a run's 'model' param).
        raise ConfigError(
            f"'{spec}': '{top}' is Python's standard library, not your estimator module {example}"
        )
    return spec


def _user_callable(spec: str) -> Callable[[], Any]:
    """The callable named by ``module:callable`` (``--estimator``).

    Raises:
        ConfigError: malformed spec, module not importable, missing or non-callable attribute.
    """
    try:
        check_estimator_spec(spec)
    except ConfigError as exc:
        raise ConfigError(f"--estimator {exc}") from None
    module_name, _, attr = spec.partition(":")
    import os

    # As uvicorn and gunicorn do for their app: a module beside the user is importable.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"--estimator '{spec}': cannot import module '{module_name}': "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"--estimator '{spec}': module '{module_name}' has no '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"--estimator '{spec}': '{attr}' is not callable")
    fn: Callable[[], Any] = obj
    return fn


def _user_estimator(spec: str, task: Task) -> BaseEstimator:
    """A fresh unfitted estimator from the user's callable, checked for the task.

    Raises:
        ConfigError: the callable fails or returns something that is not an unfitted
            scikit-learn estimator for ``task``.
    """
    fn = _user_callable(spec)
    try:
        est = fn()
    except Exception as exc:
        raise ConfigError(
            f"--estimator '{spec}': calling it raised {type(exc).__name__}: {exc}"
        ) from exc
    needed = ["get_params", "set_params", "fit", "predict"]
    if task == "classification":
        needed.append("predict_proba")
    missing = [m for m in needed if not callable(getattr(est, m, None))]
    if missing:
        raise ConfigError(
            f"--estimator '{spec}' returned {type(est).__name__}, not a scikit-learn "
            f"{'classifier' if task == 'classification' else 'estimator'} "
            f"(it lacks {', '.join(missing)})"
        )
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(est)
    except Exception:
        return est
    raise ConfigError(
        f"--estimator '{spec}' returned a fitted {type(est).__name__}; return an unfitted one "
        "(mlcycle fits it after its preprocessing)"
    )


def resolve_estimator(name: str) -> str:
    """Canonical estimator name for ``name`` or one of its aliases.

    Raises:
        ConfigError: unknown estimator.
    """
    if is_user_estimator(name):
        _user_callable(name)
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


def _new_estimator(key: str, task: Task, params: dict[str, Any]) -> BaseEstimator:
    """An unfitted estimator ``key`` for ``task`` with ``params`` applied.

    Raises:
        ConfigError: parameter values the estimator refuses.
    """
    if is_user_estimator(key):
        est = _user_estimator(key, task)
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


def _estimator_template(model: str, task: Task) -> BaseEstimator:
    key = resolve_estimator(model)
    if is_user_estimator(key):
        return _user_estimator(key, task)
    cls, _ = estimator_class(key, task)
    return cls()


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
    template = _estimator_template(model, task)
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
    estimator = _new_estimator(key, spec.task, params)
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
    raw = getattr(_user_callable(key), USER_SEARCH_SPACE_ATTR, None)
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
    template = _user_estimator(key, task).get_params()
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


#: How a fitted pipeline is saved: ``skops`` (default) or ``cloudpickle`` (opted in).
SKOPS = "skops"
CLOUDPICKLE = "cloudpickle"


def model_format(pipeline: Pipeline, allow_pickle: bool = False) -> tuple[str, list[str]]:
    """How to save ``pipeline``: skops with its reviewed types, or cloudpickle when opted in.

    A pipeline that needs only reviewed skops types is saved with skops, which every
    mlcycle command loads by default. One that needs other types (a user's own estimator
    class) runs its author's code when loaded, whatever the format: it is saved with
    cloudpickle only when ``allow_pickle`` says the user accepts that, and every command
    that loads it then needs ``--allow-pickle`` too (docs/security.md).

    Returns:
        The serialization format and the skops types to trust (empty for cloudpickle).

    Raises:
        TrainingError: unreviewed types without ``allow_pickle``.
    """
    try:
        return SKOPS, trusted_types(pipeline)
    except TrainingError as exc:
        if not allow_pickle:
            raise TrainingError(
                f"{exc}. mlcycle loads models by default only when they cannot run code; pass "
                "--allow-pickle to save this one with cloudpickle instead (serve, gate, "
                "promote and predict then need --allow-pickle too)"
            ) from exc
    logger.warning(
        "saving the model with cloudpickle (--allow-pickle): loading it runs the code of %s",
        type(pipeline.steps[-1][1]).__module__,
    )
    return CLOUDPICKLE, []


def model_requirements(pipeline: Pipeline, serialization_format: str) -> list[str]:
    """Pinned requirements the fitted estimator adds to mlcycle's own (its library's dist).

    The distribution is looked up from the estimator's top-level module; a module that no
    installed distribution provides (a local file) adds nothing and must be importable
    wherever the model is loaded.
    """
    top = type(pipeline.steps[-1][1]).__module__.split(".", 1)[0]
    names: list[str] = []
    if top not in ("sklearn", "mlcycle"):
        names.extend(importlib.metadata.packages_distributions().get(top, [])[:1])
    if serialization_format == CLOUDPICKLE:
        names.append("cloudpickle")
    out = []
    for name in names:
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


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
