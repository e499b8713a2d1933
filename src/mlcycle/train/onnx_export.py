"""ONNX copy of a fitted pipeline, kept only when it reproduces sklearn's predictions.

API: :func:`convert`, :func:`onnx_feeds`, :class:`OnnxCheck`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlcycle.data import DatasetSpec
from mlcycle.extras import MODULES, available
from mlcycle.model_metrics import Predictions

logger = logging.getLogger(__name__)

#: Tolerances of the check: labels must match exactly, numbers within these.
RTOL = 1e-4
ATOL = 1e-5


@dataclass(frozen=True)
class OnnxCheck:
    """Outcome of the conversion and of the comparison with sklearn on the test split."""

    exact: bool
    reason: str
    #: False when the conversion was not tried (no converter, too large).
    attempted: bool = True
    rows_checked: int = 0
    max_abs_diff: float = 0.0
    label_mismatches: int = 0
    input_type: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (logged as ``onnx/check.json``)."""
        return asdict(self)


#: Probabilities are rounded to this many decimals before the arg-max, so that float32 noise
#: cannot break a tie (e.g. 50 of 100 trees) differently from sklearn's first-wins rule.
TIE_DECIMALS = 5


#: Estimators skl2onnx 1.20 fails on inside mlcycle's pipeline (checked: the converter
#: raises on the tree-ensemble node); not attempted, the check records why.
UNCONVERTIBLE = frozenset({"HistGradientBoostingClassifier", "HistGradientBoostingRegressor"})


#: Largest tree ensemble (total nodes) converted; a fully grown forest on 100k+ rows has
#: millions of nodes, which take minutes to convert and hundreds of MB to store.
MAX_TREE_NODES = 1_000_000


#: Why the copy is missing when the ``onnx`` extra is not installed (kept in onnx/check.json).
NOT_INSTALLED = "not attempted: the 'onnx' extra is not installed (pip install 'mlcycle[onnx]')"

_said_not_installed = False


def _not_installed() -> str:
    # One log line per process, not one per trial of a search.
    global _said_not_installed
    if not _said_not_installed:
        logger.warning("no ONNX copy: %s", NOT_INSTALLED)
        _said_not_installed = True
    return NOT_INSTALLED


def labels_from_proba(proba: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Class labels from ONNX probabilities with sklearn's rule (first class wins a tie)."""
    return classes[np.argmax(np.round(proba, TIE_DECIMALS), axis=1)]


def onnx_feeds(
    X: pd.DataFrame, spec: DatasetSpec, numeric_dtype: Any = np.float64
) -> dict[str, np.ndarray]:
    """ONNX inputs for a feature frame: one ``(n, 1)`` tensor per column.

    Missing categorical values become the empty string; the exported imputer maps it to the
    same constant the sklearn imputer uses.
    """
    feeds: dict[str, np.ndarray] = {}
    for col in spec.numeric:
        feeds[col] = X[col].to_numpy(dtype=numeric_dtype, na_value=np.nan).reshape(-1, 1)
    for col in spec.categorical:
        values = X[col].astype(object).where(X[col].notna(), "")
        feeds[col] = values.to_numpy(dtype=object).astype(str).reshape(-1, 1)
    return feeds


def _export_pipeline(pipe: Pipeline, spec: DatasetSpec) -> Pipeline:
    """A copy whose string imputers treat '' as missing (what ONNX string tensors can carry)."""
    import copy

    clone = copy.deepcopy(pipe)
    pre = clone.named_steps["preprocess"]
    for name, trans, _cols in pre.transformers_:
        if name == "cat":
            trans.named_steps["impute"].missing_values = ""
    return clone


#: XGBoost and LightGBM scikit-learn classes: skl2onnx alias, shape calculator kind, options.
_BOOSTERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "xgboost.sklearn.XGBClassifier": (
        "XGBoostXGBClassifier", "classifier", {"nocl": [True, False], "zipmap": [True, False]},
    ),
    "xgboost.sklearn.XGBRegressor": ("XGBoostXGBRegressor", "regressor", {}),
    "lightgbm.sklearn.LGBMClassifier": (
        "LightGbmLGBMClassifier", "classifier", {"nocl": [True, False], "zipmap": [True, False]},
    ),
    "lightgbm.sklearn.LGBMRegressor": ("LightGbmLGBMRegressor", "regressor", {"split": None}),
}  # fmt: skip


def _register_booster(model: Any) -> bool:
    """Teach skl2onnx ``model``'s XGBoost/LightGBM class with onnxmltools' converter.

    Nothing happens for other classes, or when onnxmltools is not installed (the class then
    has no converter and the copy is not attempted, as before). Returns whether it registered.
    """
    cls = type(model)
    dotted = f"{cls.__module__}.{cls.__name__}"
    if dotted not in _BOOSTERS:
        return False
    try:
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes,
            calculate_linear_regressor_output_shapes,
        )

        if dotted.startswith("xgboost"):
            from onnxmltools.convert.xgboost.operator_converters.XGBoost import (
                convert_xgboost as converter,
            )
        else:
            from onnxmltools.convert.lightgbm.operator_converters.LightGbm import (
                convert_lightgbm as converter,
            )
    except ImportError:
        return False
    alias, kind, options = _BOOSTERS[dotted]
    shapes = (
        calculate_linear_classifier_output_shapes
        if kind == "classifier"
        else calculate_linear_regressor_output_shapes
    )
    update_registered_converter(cls, alias, shapes, converter, options=options or None)
    return True


def _has_converter(model: Any) -> bool:
    """Whether skl2onnx can convert ``model`` (XGBoost, LightGBM and most user classes: no)."""
    from skl2onnx._supported_operators import sklearn_operator_name_map

    if isinstance(model, Pipeline):
        return all(_has_converter(step) for _, step in model.steps if step != "passthrough")
    return type(model) in sklearn_operator_name_map


def convert(
    pipe: Pipeline,
    spec: DatasetSpec,
    X_check: pd.DataFrame,
    sklearn_predictions: Callable[[], Predictions] | None = None,
) -> tuple[bytes | None, OnnxCheck]:
    """Convert ``pipe`` to ONNX and compare with sklearn on ``X_check``.

    Args:
        pipe: the fitted pipeline.
        spec: its data spec.
        X_check: the rows compared (the test split).
        sklearn_predictions: returns ``pipe``'s predictions of ``X_check`` when the caller
            computes them anyway (a training run scores the test split); called only after
            the conversion, so that both can run at once. ``None``: predicted here.

    Returns:
        The serialized model only when labels match exactly and numbers within
        :data:`RTOL`/:data:`ATOL`; otherwise ``None``. And the check, with the reason.
    """
    if not available(*MODULES["onnx"]):
        return None, OnnxCheck(False, _not_installed())
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    model = pipe.named_steps["model"]
    estimator = type(model).__name__
    if estimator in UNCONVERTIBLE:
        return None, OnnxCheck(
            False, f"skl2onnx cannot convert {estimator} in this pipeline", attempted=False
        )
    # onnxmltools' tree converters write ai.onnx.ml version 3 at most.
    opset: Any = {"": 17, "ai.onnx.ml": 3} if _register_booster(model) else 17
    if not _has_converter(model):
        reason = f"skl2onnx has no converter for {type(model).__module__}.{estimator}"
        logger.info("no ONNX copy: %s", reason)
        return None, OnnxCheck(False, reason, attempted=False)
    nodes = sum(
        int(t.tree_.node_count) for t in getattr(model, "estimators_", []) if hasattr(t, "tree_")
    )
    if nodes > MAX_TREE_NODES:
        return None, OnnxCheck(
            False,
            f"{nodes:,} tree nodes exceed {MAX_TREE_NODES:,}: the ONNX copy would be too large "
            "to convert and load quickly (limit max_depth or min_samples_leaf to get one)",
            attempted=False,
        )
    export = _export_pipeline(pipe, spec)
    initial = [(c, FloatTensorType([None, 1])) for c in spec.numeric] + [
        (c, StringTensorType([None, 1])) for c in spec.categorical
    ]
    options: dict[Any, Any] = {}
    if spec.task == "classification":
        options = {id(export.named_steps["model"]): {"zipmap": False}}
    try:
        onx = convert_sklearn(export, initial_types=initial, options=options, target_opset=opset)
        blob = onx.SerializeToString()
        # One thread: the check runs once, beside the run's other work, and onnxruntime's
        # pool threads spin-wait between calls (0.03 s of a core for nothing).
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        sess = ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])
        outs = sess.run(None, onnx_feeds(X_check, spec, np.float32))
    except Exception as exc:
        # Converter errors can quote every node attribute of a tree ensemble (megabytes).
        reason = f"conversion failed: {type(exc).__name__}: {str(exc)[:300]}"
        logger.info("ONNX conversion not kept: %s", reason)
        return None, OnnxCheck(False, reason)
    n = len(X_check)
    if n == 0:
        return None, OnnxCheck(False, "no rows to compare with sklearn")
    if sklearn_predictions is not None:
        want = sklearn_predictions()
        want_label, want_p = np.asarray(want.y_pred), want.proba
    else:
        want_label = np.asarray(pipe.predict(X_check))
        has_proba = spec.task == "classification" and hasattr(pipe, "predict_proba")
        want_p = np.asarray(pipe.predict_proba(X_check)) if has_proba else None
    if spec.task == "classification" and want_p is not None:
        got_p = np.asarray(outs[1], dtype=float)
        got_label = labels_from_proba(got_p, np.asarray(pipe.classes_))
        mism = int((got_label.astype(str) != want_label.astype(str)).sum())
        diff = float(np.max(np.abs(want_p - got_p)))
        ok = mism == 0 and np.allclose(got_p, want_p, rtol=RTOL, atol=ATOL)
    elif spec.task == "classification":
        # No probabilities to compare (an estimator without predict_proba): labels only.
        got_label = np.asarray(outs[0]).ravel()
        mism = int((got_label.astype(str) != want_label.astype(str)).sum())
        diff = 0.0
        ok = mism == 0
    else:
        want_v = want_label.astype(float)
        got = np.asarray(outs[0], dtype=float).ravel()
        diff = float(np.max(np.abs(want_v - got)))
        mism = 0
        ok = bool(np.allclose(got, want_v, rtol=RTOL, atol=ATOL))
    check = OnnxCheck(
        exact=ok,
        reason="reproduces sklearn on the test split" if ok else "predictions differ from sklearn",
        rows_checked=n,
        max_abs_diff=diff,
        label_mismatches=mism,
        input_type="float+string",
    )
    return (blob if ok else None), check
