"""Class probabilities from a loaded ``PyFuncModel``: the one way mlcycle asks for them.

API: :func:`class_probabilities`.

An sklearn model (``get_raw_model()`` with ``predict_proba`` and ``classes_``) is asked
directly, as the server's sklearn path does; any other pyfunc gets
``params={"predict_method": "predict_proba"}`` (MLflow's convention for PythonModels) and
must answer with a DataFrame of one column per class. Used by batch scoring and the gate.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _raw_model(model: Any) -> Any:
    try:
        return model.get_raw_model()
    except (AttributeError, NotImplementedError):
        # PyFuncModel raises NotImplementedError for wrappers without one (PythonModels).
        return None


def class_probabilities(model: Any, features: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(probabilities, classes)`` of ``features`` (rows x classes), or ``None`` when the
    model gives no class probabilities (a regressor, or a pyfunc that returns labels only)."""
    raw = _raw_model(model)
    if raw is not None and hasattr(raw, "predict_proba") and hasattr(raw, "classes_"):
        return np.asarray(raw.predict_proba(features), dtype=np.float64), np.asarray(raw.classes_)
    if raw is not None and hasattr(raw, "predict"):
        return None  # a raw model without predict_proba: params would be ignored anyway
    out = model.predict(features, params={"predict_method": "predict_proba"})
    columns = getattr(out, "columns", None)
    if columns is None or getattr(out, "ndim", 1) != 2 or len(columns) < 2:
        return None
    try:
        values = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        return None  # labels in several columns, not probabilities
    return values, np.asarray(columns)
