"""The protocol's vocabulary: content types, error codes, the request error and the schema.

API: :class:`RequestError`, :class:`Column`, :class:`InputSchema`, :class:`ParsedRequest`,
the ``CONTENT_TYPE_*`` and error-code constants, :data:`ECHO_CHARS`, :data:`PREDICT_METHODS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlcycle.errors import ServingError

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_PARQUET = "application/vnd.apache.parquet"
#: MLflow's list, quoted in its 415 message.
CONTENT_TYPES = [CONTENT_TYPE_CSV, CONTENT_TYPE_JSON, CONTENT_TYPE_PARQUET]
#: Longest piece of client input an error message may quote.
ECHO_CHARS = 40

BAD_REQUEST = "BAD_REQUEST"
INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
#: Values of ``params.predict_method`` (MLflow's documented convention for PythonModels).
PREDICT_METHODS = ("predict", "predict_proba")


class RequestError(ServingError):
    """A request the server refuses; carries the HTTP status and MLflow error code."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        error_code: str = BAD_REQUEST,
        headers: dict[str, str] | None = None,
        mimetype: str = CONTENT_TYPE_JSON,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.headers = headers or {}
        self.mimetype = mimetype


@dataclass(frozen=True)
class Column:
    """One named input of the model signature."""

    name: str
    kind: str  # MLflow DataType name: long, integer, double, float, string, boolean
    allow_missing: bool = False


@dataclass(frozen=True)
class InputSchema:
    """The model's named inputs in signature order."""

    columns: tuple[Column, ...]
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(c.name for c in self.columns))


@dataclass
class ParsedRequest:
    """Validated columns (signature order, equal lengths) and the request's params."""

    columns: dict[str, np.ndarray]
    n_rows: int
    params: dict[str, Any] | None = None


def _echo(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= ECHO_CHARS else text[: ECHO_CHARS - 3] + "..."


def _too_many_rows(n: int, max_rows: int | None) -> None:
    if max_rows is not None and n > max_rows:
        raise RequestError(
            f"request has {n} rows; this server accepts at most {max_rows} per request",
            413,
            "REQUEST_LIMIT_EXCEEDED",
        )
