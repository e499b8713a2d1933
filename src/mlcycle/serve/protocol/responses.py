"""Responses in MLflow's shapes: predictions, class probabilities and error documents.

API: :func:`predictions_body`, :func:`probabilities_body`, :func:`error_body`,
:func:`error_response`, :func:`invocations`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson

from mlcycle.serve.protocol.request import parse_request
from mlcycle.serve.protocol.types import CONTENT_TYPE_JSON, InputSchema, RequestError


def predictions_body(predictions: np.ndarray | Sequence[Any]) -> bytes:
    """``{"predictions": [...]}`` as MLflow writes it (numbers stay ints or floats)."""
    if isinstance(predictions, np.ndarray) and predictions.dtype.kind not in "biuf":
        predictions = predictions.tolist()  # orjson serialises numeric arrays only
    return orjson.dumps(
        {"predictions": predictions},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def probabilities_body(proba: np.ndarray, classes: Sequence[Any]) -> bytes:
    """``{"predictions": [{class: probability, ...}, ...]}``: one object per row keyed by class
    name, as MLflow writes the DataFrame a PythonModel's ``predict_proba`` returns."""
    keys = [str(c) for c in classes]
    rows = [dict(zip(keys, row, strict=True)) for row in np.asarray(proba, float).tolist()]
    return orjson.dumps({"predictions": rows})


def error_body(error_code: str, message: str) -> bytes:
    """MLflow's error document."""
    return orjson.dumps({"error_code": error_code, "message": message})


def error_response(exc: RequestError) -> tuple[bytes, int, str]:
    """``(body, status, mimetype)`` for a refused request (415s are plain text, as MLflow's)."""
    if exc.mimetype == "text/plain":
        return exc.message.encode(), exc.status, "text/plain"
    return error_body(exc.error_code, exc.message), exc.status, CONTENT_TYPE_JSON


def invocations(
    body: bytes,
    content_type: str | None,
    schema: InputSchema,
    predict: Callable[[dict[str, np.ndarray]], np.ndarray],
    max_rows: int | None = None,
) -> tuple[bytes, int, str]:
    """Handle one request synchronously: ``(body, status, mimetype)``.

    The server runs the same steps split around its micro-batcher; this is the plain form.
    """
    try:
        parsed = parse_request(body, content_type, schema, max_rows)
    except RequestError as exc:
        return error_response(exc)
    return predictions_body(predict(parsed.columns)), 200, CONTENT_TYPE_JSON
