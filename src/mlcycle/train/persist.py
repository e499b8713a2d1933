"""How a fitted pipeline is saved and loaded: skops with reviewed types, or cloudpickle.

API: :data:`REVIEWED_TRUSTED_TYPES`, :func:`type_proxy`, :func:`trusted_types`,
:func:`model_format`, :func:`model_requirements`, :func:`dump_skops`, :func:`load_reviewed_skops`,
:data:`SKOPS`, :data:`CLOUDPICKLE`.

Re-exported by :mod:`mlcycle.train.pipelines`, where these names were first published.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from mlcycle.errors import TrainingError

logger = logging.getLogger(__name__)

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


#: Ensemble attributes whose members all share one type: one member shows every type.
_ENSEMBLE_MEMBERS = ("estimators_", "_predictors")


def _one_class_of_many(members: Any) -> bool:
    """Whether ``members`` (``None``, a list or an object array) holds 2+ of one class."""
    if members is None or len(members) < 2:
        return False
    return len({type(m) for m in _leaves(members)}) == 1


def _leaves(members: Any) -> Iterator[Any]:
    """The members of a (nested) list or object array of ensemble members."""
    for m in members:
        if isinstance(m, list | tuple | np.ndarray):
            yield from _leaves(m)
        else:
            yield m


def type_proxy(pipeline: Pipeline) -> Pipeline:
    """A pipeline with the same types as ``pipeline`` but one member per ensemble.

    Serialising a 100-tree forest grown on 100k+ rows just to list its types costs seconds;
    every tree of an ensemble has the same types, so one tree lists them all (and loading
    it back proves they all load). Only ensembles whose members are all of one class are cut
    (a voting ensemble of different estimators is not). Returns ``pipeline`` itself when
    nothing is cut.
    """
    import copy

    model = pipeline.steps[-1][1]
    members = [a for a in _ENSEMBLE_MEMBERS if _one_class_of_many(getattr(model, a, None))]
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

    needed = sorted(sio.get_untrusted_types(data=sio.dumps(type_proxy(pipeline))))
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


def dump_skops(obj: Any, path: str | Path) -> None:
    """``skops.io.dump(obj, path)``: the same archive entries, written straight to ``path``.

    skops builds the whole archive in memory before writing it (for a forest grown on 200k
    rows, a second 0.5 GB copy), and writes its schema with ``indent=2``, which Python's
    json encodes in pure Python (half a second of held GIL for 100 deep trees). This is
    skops' own ``_save`` with the archive opened on the file and a compact schema: the same
    entries and the same JSON value, loaded by ``skops.io.load``. When skops' internals are
    not where this expects them, skops' own ``dump`` writes the file.
    """
    import json
    from zipfile import ZIP_STORED, ZipFile

    import skops
    import skops.io as sio

    try:
        from skops.io._utils import SaveContext, get_state
    except ImportError:  # pragma: no cover - a skops release that moved them
        sio.dump(obj, path)
        return
    with ZipFile(path, "w", compression=ZIP_STORED) as zip_file:
        context = SaveContext(zip_file=zip_file)
        state = get_state(obj, context)
        context.clear_memo()
        state["protocol"] = context.protocol
        state["_skops_version"] = skops.__version__
        zip_file.writestr("schema.json", json.dumps(state))


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
