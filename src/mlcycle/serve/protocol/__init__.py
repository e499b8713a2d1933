"""MLflow's scoring protocol as pure functions: request bytes in, columns or a response out.

API: :class:`Column`, :class:`InputSchema`, :class:`ParsedRequest`, :class:`RequestError`,
:func:`parse_request`, :func:`predict_method`, :func:`convert_column`,
:func:`predictions_body`, :func:`probabilities_body`, :func:`error_body`,
:func:`error_response`, :func:`invocations`, and the constants below.

The payload keys (``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``,
``params``), the response shape (``{"predictions": [...]}``) and the error codes and 415 texts
are those of ``mlflow/pyfunc/scoring_server``. Where MLflow silently changes data (1.5 into a
long column, integer overflow) the protocol refuses with a 400 that names the column; error
messages quote at most :data:`ECHO_CHARS` characters of the input.

Modules, one concern each (import from this package, not from them):

- :mod:`~mlcycle.serve.protocol.types` — content types, error codes, :class:`RequestError`,
  the signature's :class:`InputSchema`;
- :mod:`~mlcycle.serve.protocol.columns` — values into typed columns, exactly or refused;
- :mod:`~mlcycle.serve.protocol.json_payload` — the four JSON payload formats;
- :mod:`~mlcycle.serve.protocol.parquet` — Parquet bodies read under size limits;
- :mod:`~mlcycle.serve.protocol.request` — one request: content type, body, columns, params;
- :mod:`~mlcycle.serve.protocol.responses` — predictions and error documents.
"""

from mlcycle.serve.protocol.columns import convert_column
from mlcycle.serve.protocol.json_payload import FORMATS, REQUIRED_INPUT_FORMAT
from mlcycle.serve.protocol.request import parse_request, predict_method
from mlcycle.serve.protocol.responses import (
    error_body,
    error_response,
    invocations,
    predictions_body,
    probabilities_body,
)
from mlcycle.serve.protocol.types import (
    BAD_REQUEST,
    CONTENT_TYPE_CSV,
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_PARQUET,
    CONTENT_TYPES,
    ECHO_CHARS,
    INVALID_PARAMETER_VALUE,
    PREDICT_METHODS,
    Column,
    InputSchema,
    ParsedRequest,
    RequestError,
)

__all__ = [
    "BAD_REQUEST",
    "CONTENT_TYPES",
    "CONTENT_TYPE_CSV",
    "CONTENT_TYPE_JSON",
    "CONTENT_TYPE_PARQUET",
    "ECHO_CHARS",
    "FORMATS",
    "INVALID_PARAMETER_VALUE",
    "PREDICT_METHODS",
    "REQUIRED_INPUT_FORMAT",
    "Column",
    "InputSchema",
    "ParsedRequest",
    "RequestError",
    "convert_column",
    "error_body",
    "error_response",
    "invocations",
    "parse_request",
    "predict_method",
    "predictions_body",
    "probabilities_body",
]
