"""The user's own estimator, named ``module:callable`` (``--estimator``).

API: :func:`is_user_estimator`, :func:`check_estimator_spec`, :func:`user_callable`,
:func:`user_estimator`, :data:`USER_SEARCH_SPACE_ATTR`.

The callable returns an unfitted scikit-learn-compatible estimator; mlcycle puts it after
its preprocessing like a built-in one.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from sklearn.base import BaseEstimator

from mlcycle.data import Task
from mlcycle.errors import ConfigError

#: Attribute a user's ``module:callable`` may carry to be searched: parameter -> choices.
USER_SEARCH_SPACE_ATTR = "search_space"


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


def user_callable(spec: str) -> Callable[[], Any]:
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


def user_estimator(spec: str, task: Task) -> BaseEstimator:
    """A fresh unfitted estimator from the user's callable, checked for the task.

    Raises:
        ConfigError: the callable fails or returns something that is not an unfitted
            scikit-learn estimator for ``task``.
    """
    fn = user_callable(spec)
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
