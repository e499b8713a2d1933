"""JSON bodies: MLflow's four payload keys into raw columns of the signature's inputs.

API: :data:`FORMATS`, :data:`REQUIRED_INPUT_FORMAT`, :func:`raw_from_json`.

Only the signature's columns are materialised; other keys are ignored as MLflow ignores
extra columns. The texts of the refusals are MLflow's where MLflow has one.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from mlcycle.serve.protocol.types import (
    ECHO_CHARS,
    INVALID_PARAMETER_VALUE,
    InputSchema,
    RequestError,
    _echo,
    _too_many_rows,
)

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_FORMATS_TEXT = "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}"
REQUIRED_INPUT_FORMAT = (
    f"The input must be a JSON dictionary with exactly one of the input fields {_FORMATS_TEXT}"
)


def _decode_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    # The body is declared UTF-8 (the charset is checked first). json.loads(bytes) would guess
    # UTF-16/32 from the first bytes and score a body that is not what its header says, so
    # decode strictly; a UTF-8 byte-order mark is tolerated as MLflow (json.loads) does.
    try:
        text = body.decode("utf-8-sig" if body[:3] == b"\xef\xbb\xbf" else "utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(
            "Invalid input. The body is not valid UTF-8, the only charset this server accepts: "
            f"{exc.reason} at byte {exc.start}"
        ) from None
    # orjson refuses NaN/Infinity tokens (not JSON); MLflow (json.loads) accepts them, so they
    # reach the column checks, which allow NaN only where missing values are allowed.
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RequestError(
            "Invalid input. Ensure that input is a valid JSON formatted string. "
            f"Error: {type(exc).__name__} at char {getattr(exc, 'pos', '?')}; "
            f"input starts {_echo(body[:ECHO_CHARS])}"
        ) from None


def _columns_from_records(
    records: Any, key: str, schema: InputSchema, max_rows: int | None
) -> tuple[dict[str, list[Any]], int]:
    if not isinstance(records, list):
        kind = "dictionary" if isinstance(records, dict) else f"type {type(records).__name__}"
        raise RequestError(
            f"Invalid input. Dataframe records format must be a list of records. Got {kind}."
        )
    n = len(records)
    _too_many_rows(n, max_rows)
    # Only the signature's columns are materialised: a body whose records each use a new key
    # would otherwise build one n-long column per key (16,000 records: 256M cells, 2 GB).
    # Other keys are ignored, as MLflow ignores extra columns; the first few are named if the
    # signature's columns turn out to be missing.
    cols: dict[str, list[Any]] = {name: [None] * n for name in schema.names}
    seen: set[str] = set()
    unknown: list[Any] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise RequestError(
                f"Invalid input. Provided {key} field is not a valid dataframe representation in "
                f"'records' format: record {i} is {_echo(rec)}"
            )
        for name, value in rec.items():
            col = cols.get(name)
            if col is None:
                if len(unknown) < 3 and name not in unknown:
                    unknown.append(name)
                continue
            seen.add(name)
            col[i] = value
    for name in schema.names:
        if name not in seen:
            del cols[name]
    if not cols and unknown:
        raise RequestError(
            "Failed to enforce schema of data with schema: Model is missing inputs "
            f"{_echo(list(schema.names))}; the records have unknown keys such as "
            f"{_echo(unknown)}.",
            error_code=INVALID_PARAMETER_VALUE,
        )
    return cols, n


def _columns_from_split(
    split: Any, schema: InputSchema, max_rows: int | None
) -> tuple[dict[Any, list[Any]], int]:
    if not isinstance(split, dict):
        kind = "list" if isinstance(split, list) else f"type {type(split).__name__}"
        raise RequestError(
            f"Invalid input. Dataframe split format must be a dictionary. Got {kind}."
        )
    keys = set(split)
    if "data" not in keys or keys - {"columns", "data", "index"}:
        raise RequestError(
            "Invalid input. Dataframe split format must have 'data' field and optionally "
            f"'columns' and 'index' fields. Got {_echo(sorted(keys))}."
        )
    data = split["data"]
    if not isinstance(data, list):
        raise RequestError("Invalid input. dataframe_split 'data' must be a list of rows")
    _too_many_rows(len(data), max_rows)
    index = split.get("index")
    if index is not None and (not isinstance(index, list) or len(index) != len(data)):
        # pandas would repeat a one-row body once per index entry; refused (docs/serving.md).
        got = len(index) if isinstance(index, list) else type(index).__name__
        raise RequestError(
            "Invalid input. Provided dataframe_split field is not a valid dataframe "
            f"representation in 'split' format. Error: 'Length of values ({len(data)}) does "
            f"not match length of index ({got})'"
        )
    names = split.get("columns")
    if names is None:
        # MLflow names such columns 0, 1, ... and then finds the model's inputs missing.
        raise RequestError(
            "Failed to enforce schema of data with schema: Model is missing inputs "
            f"{_echo(list(schema.names))}; dataframe_split has no 'columns'.",
            error_code=INVALID_PARAMETER_VALUE,
        )
    if not isinstance(names, list):
        raise RequestError("Invalid input. dataframe_split 'columns' must be a list")
    for name in names:
        if not isinstance(name, (str, int)):
            raise RequestError(
                f"Invalid input. dataframe_split 'columns' must be names: got {_echo(name)}"
            )
    width = len(names)
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            raise RequestError(
                "Invalid input. Provided dataframe_split field is not a valid dataframe "
                f"representation in 'split' format: row {i} does not have {width} values"
            )
    # Only the signature's columns are materialised.
    wanted = set(schema.names)
    position = {name: j for j, name in enumerate(names) if name in wanted}
    cols = {name: [row[j] for row in data] for name, j in position.items()}
    return cols, len(data)


def _columns_from_inputs(
    inputs: Any, key: str, schema: InputSchema, max_rows: int | None
) -> tuple[dict[str, Any], int]:
    if isinstance(inputs, list):
        return _columns_from_records(inputs, key, schema, max_rows)
    if not isinstance(inputs, dict):
        raise RequestError(
            "Invalid input. This model has named inputs: send a dictionary of columns or a list "
            f"of records under '{key}'"
        )
    cols: dict[str, Any] = {}
    n: int | None = None
    for name, values in inputs.items():
        if not isinstance(values, list):
            values = [values]
        if n is not None and len(values) != n:
            raise RequestError(
                "Invalid input. The length of values for each input/column name are not the same"
            )
        n = len(values)
        _too_many_rows(n, max_rows)
        cols[name] = values
    return cols, n or 0


def raw_from_json(
    body: bytes, schema: InputSchema, max_rows: int | None
) -> tuple[dict[Any, Any], int, Any]:
    doc = _decode_json(body)
    if isinstance(doc, list):
        raise RequestError(f"Invalid input. {REQUIRED_INPUT_FORMAT}. Received a list.")
    if not isinstance(doc, dict):
        raise RequestError(
            f"Invalid input. {REQUIRED_INPUT_FORMAT}. Received unexpected input type "
            f"'{type(doc).__name__}'."
        )
    keys = [k for k in doc if k in FORMATS]
    if len(keys) != 1:
        raise RequestError(
            f"{REQUIRED_INPUT_FORMAT}. Received dictionary with input fields: {_echo(list(doc))}."
        )
    key = keys[0]
    # Other top-level keys are ignored and a 'params' that is not a dictionary is dropped, as
    # MLflow does (it logs "Ignoring invalid params").
    params = doc.get("params")
    if not isinstance(params, dict):
        params = None
    payload = doc[key]
    if key == "dataframe_split":
        cols, n = _columns_from_split(payload, schema, max_rows)
    elif key == "dataframe_records":
        cols, n = _columns_from_records(payload, key, schema, max_rows)
    else:
        cols, n = _columns_from_inputs(payload, key, schema, max_rows)
    return cols, n, params
