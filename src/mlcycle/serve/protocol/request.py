"""One ``/invocations`` request validated against the model's signature.

API: :func:`parse_request`, :func:`predict_method`.
"""

from __future__ import annotations

import io
from typing import Any

from mlcycle.serve.protocol.columns import convert_column
from mlcycle.serve.protocol.json_payload import raw_from_json
from mlcycle.serve.protocol.parquet import read_parquet
from mlcycle.serve.protocol.types import (
    CONTENT_TYPE_CSV,
    CONTENT_TYPE_JSON,
    CONTENT_TYPES,
    INVALID_PARAMETER_VALUE,
    PREDICT_METHODS,
    InputSchema,
    ParsedRequest,
    RequestError,
    _echo,
    _too_many_rows,
)


def _raw_from_table(
    body: bytes,
    mime: str,
    schema: InputSchema,
    max_rows: int | None,
    max_decoded_bytes: int | None,
) -> tuple[dict[Any, Any], int]:
    import pandas as pd

    fmt, method = ("CSV", "to_csv") if mime == CONTENT_TYPE_CSV else ("Parquet", "to_parquet")
    wanted = set(schema.names)
    try:
        if mime == CONTENT_TYPE_CSV:
            # usecols: a header of many names over short rows would otherwise be padded to a
            # names x rows table; nrows: stop one past the limit.
            frame = pd.read_csv(
                io.StringIO(body.decode("utf-8")),
                keep_default_na=True,
                usecols=lambda c: c in wanted,
                nrows=None if max_rows is None else max_rows + 1,
            )
        else:
            frame = read_parquet(body, max_rows, max_decoded_bytes)
    except RequestError:
        raise
    except Exception as exc:
        raise RequestError(
            "Failed to parse input as a Pandas DataFrame. Ensure that the input is a valid "
            f"{fmt}-formatted Pandas DataFrame produced using the `pandas.DataFrame.{method}()` "
            f"method. Error: {type(exc).__name__}"
        ) from None
    _too_many_rows(len(frame), max_rows)
    cols: dict[Any, Any] = {}
    for name in frame.columns:
        if name not in wanted:
            continue
        s = frame[name]
        cols[name] = s.to_numpy() if s.dtype.kind in "iufb" else s.astype(object).tolist()
    return cols, len(frame)


def _check_content_type(content_type: str | None) -> str:
    parts = [p.strip() for p in (content_type or "").split(";")]
    mime = parts[0].lower()
    params = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in parts[1:])}
    if params.get("charset", "utf-8").lower() != "utf-8":
        raise RequestError("The scoring server only supports UTF-8", 415, mimetype="text/plain")
    extra = set(params) - {"charset"}
    if extra:
        raise RequestError(
            f"Unrecognized content type parameters: {', '.join(sorted(extra))}.",
            415,
            mimetype="text/plain",
        )
    if mime not in CONTENT_TYPES:
        raise RequestError(
            "This predictor only supports the following content types: Types: "
            f"{CONTENT_TYPES}. Got {_echo(content_type or '')}.",
            415,
            mimetype="text/plain",
        )
    return mime


def parse_request(
    body: bytes,
    content_type: str | None,
    schema: InputSchema,
    max_rows: int | None = None,
    max_decoded_bytes: int | None = None,
) -> ParsedRequest:
    """Validate one ``/invocations`` request against the model's signature.

    Args:
        body: the request body.
        content_type: the ``Content-Type`` header (JSON, CSV or Parquet).
        schema: the model's named inputs.
        max_rows: refuse requests with more rows (413), checked before columns are built.
        max_decoded_bytes: refuse Parquet bodies whose footer declares more uncompressed data
            (413), checked before any page is decoded.

    Raises:
        RequestError: 415 for other content types, 413 over the row limit, 400 otherwise.
    """
    mime = _check_content_type(content_type)
    params = None
    if mime == CONTENT_TYPE_JSON:
        raw, n, params = raw_from_json(body, schema, max_rows)
    else:
        raw, n = _raw_from_table(body, mime, schema, max_rows, max_decoded_bytes)
    _too_many_rows(n, max_rows)
    if n == 0:
        raise RequestError(
            "Failed to enforce schema: the request has no rows", error_code=INVALID_PARAMETER_VALUE
        )
    missing = [c.name for c in schema.columns if c.name not in raw]
    if missing:
        raise RequestError(
            "Failed to enforce schema of data with schema: Model is missing inputs "
            f"{_echo(missing)}.",
            error_code=INVALID_PARAMETER_VALUE,
        )
    columns = {c.name: convert_column(c, raw[c.name]) for c in schema.columns}
    return ParsedRequest(columns=columns, n_rows=n, params=params)


def predict_method(params: dict[str, Any] | None, classifier: bool) -> str:
    """The method ``params`` asks for: ``predict`` (default) or ``predict_proba``.

    Raises:
        RequestError: an unknown method, or ``predict_proba`` of a model without classes (400).
    """
    method = (params or {}).get("predict_method", "predict")
    if method not in PREDICT_METHODS:
        raise RequestError(
            f"Invalid params. predict_method {_echo(method)} is not one of "
            f"{', '.join(PREDICT_METHODS)}",
            error_code=INVALID_PARAMETER_VALUE,
        )
    if method == "predict_proba" and not classifier:
        raise RequestError(
            "Invalid params. predict_method 'predict_proba' needs a classifier; this model "
            "predicts numbers (use predict)",
            error_code=INVALID_PARAMETER_VALUE,
        )
    return str(method)
