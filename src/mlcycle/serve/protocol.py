"""MLflow's scoring protocol as pure functions: request bytes in, columns or a response out.

API: :class:`Column`, :class:`InputSchema`, :class:`ParsedRequest`, :class:`RequestError`,
:func:`parse_request`, :func:`predict_method`, :func:`predictions_body`,
:func:`probabilities_body`, :func:`error_response`, :func:`invocations`.

The payload keys (``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``,
``params``), the response shape (``{"predictions": [...]}``) and the error codes and 415 texts
are those of ``mlflow/pyfunc/scoring_server``. Where MLflow silently changes data (1.5 into a
long column, integer overflow) this module refuses with a 400 that names the column; error
messages quote at most :data:`ECHO_CHARS` characters of the input.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from mlcycle.errors import ServingError
from mlcycle.schema_types import NUMPY_DTYPES

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_PARQUET = "application/vnd.apache.parquet"
#: MLflow's list, quoted in its 415 message.
CONTENT_TYPES = [CONTENT_TYPE_CSV, CONTENT_TYPE_JSON, CONTENT_TYPE_PARQUET]
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_FORMATS_TEXT = "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}"
REQUIRED_INPUT_FORMAT = (
    f"The input must be a JSON dictionary with exactly one of the input fields {_FORMATS_TEXT}"
)
#: Longest piece of client input an error message may quote.
ECHO_CHARS = 40

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
#: Largest magnitude up to which every integer is exact as a float64.
_FLOAT_EXACT = 2**53
_BOOL_TYPES = frozenset({bool, np.bool_})

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


def _bad_value(col: Column, value: Any, why: str) -> RequestError:
    return RequestError(
        f"Invalid input. Data is not compatible with model signature. Column '{col.name}' "
        f"({col.kind}): {why}: {_echo(value)}",
        error_code=BAD_REQUEST,
    )


def _missing(col: Column) -> RequestError:
    return RequestError(
        f"Invalid input. Column '{col.name}' ({col.kind}) has a missing value (null/NaN) and "
        "the model's signature does not allow missing values there",
        error_code=BAD_REQUEST,
    )


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


# --------------------------------------------------------------------------- columns


def _to_int(col: Column, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, (bool, np.bool_)):
        raise _bad_value(col, v, "a boolean in a numeric column")
    if isinstance(v, int):
        out = v
    elif isinstance(v, float):
        if math.isinf(v):
            raise _bad_value(col, v, "infinite value")
        if not v.is_integer():
            raise _bad_value(col, v, "lossy cast of a non-integer to an integer column")
        if abs(v) > _FLOAT_EXACT:
            # orjson reads integer literals outside int64 as floats (-2**63 - 1 becomes -2**63):
            # past 2**53 a float cannot say which integer the client sent.
            raise _bad_value(col, v, "integer overflow (or not exact as a float)")
        out = int(v)
    elif isinstance(v, str):
        try:
            out = int(v.strip())
        except ValueError:
            try:
                f = float(v)
            except ValueError:
                raise _bad_value(col, v, "not a number") from None
            return _to_int(col, f, lo, hi)
    elif isinstance(v, np.generic):
        return _to_int(col, v.item(), lo, hi)
    else:
        raise _bad_value(col, v, "not a number")
    if not lo <= out <= hi:
        raise _bad_value(col, v, "integer overflow")
    return out


def _int_column(col: Column, values: Sequence[Any] | np.ndarray) -> np.ndarray:
    dtype = NUMPY_DTYPES[col.kind]
    lo, hi = (_INT64_MIN, _INT64_MAX) if col.kind == "long" else (_INT32_MIN, _INT32_MAX)
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "b" and values.size:
            raise _bad_value(col, bool(values[0]), "a boolean in a numeric column")
        if values.dtype.kind in "iu":
            if values.size and (values.min() < lo or values.max() > hi):
                bad = values[(values < lo) | (values > hi)][0]
                raise _bad_value(col, int(bad), "integer overflow")
            return values.astype(dtype)
        values = values.tolist()
    if all(type(v) is int for v in values):
        try:
            arr = np.array(values, dtype=np.int64)
        except OverflowError:
            bad = next(v for v in values if not _INT64_MIN <= v <= _INT64_MAX)
            raise _bad_value(col, bad, "integer overflow") from None
        if dtype is np.int32 and arr.size and (arr.min() < lo or arr.max() > hi):
            raise _bad_value(col, int(arr[(arr < lo) | (arr > hi)][0]), "integer overflow")
        return arr.astype(dtype, copy=False)
    out = np.empty(len(values), dtype=dtype)
    for i, v in enumerate(values):
        if _is_missing(v):
            raise RequestError(
                f"Invalid input. Column '{col.name}' ({col.kind}) has a missing value (null/NaN); "
                "an integer column cannot hold one",
                error_code=BAD_REQUEST,
            )
        out[i] = _to_int(col, v, lo, hi)
    return out


def _float_column(col: Column, values: Sequence[Any] | np.ndarray) -> np.ndarray:
    dtype = NUMPY_DTYPES[col.kind]
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "b" and values.size:
            raise _bad_value(col, bool(values[0]), "a boolean in a numeric column")
        if values.dtype.kind == "O":  # e.g. a Parquet boolean column with nulls
            values = values.tolist()
    if not isinstance(values, np.ndarray) and not _BOOL_TYPES.isdisjoint(map(type, values)):
        # numpy would read True as 1.0
        raise _bad_value(col, True, "a boolean in a numeric column")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        for v in values:
            if _is_missing(v):
                continue
            try:
                float(v)
                if isinstance(v, (list, dict)):
                    raise TypeError
            except (TypeError, ValueError, OverflowError):
                raise _bad_value(col, v, "not a number") from None
        raise _bad_value(col, values[0], "not a number") from None  # pragma: no cover
    if arr.ndim != 1:
        raise _bad_value(col, values[0], "not a number")
    finite = np.isfinite(arr)
    if not finite.all():
        bad = arr[~finite]
        if np.isinf(bad).any():
            raise _bad_value(col, float(bad[np.isinf(bad)][0]), "infinite value")
        if not col.allow_missing:
            raise _missing(col)
    if dtype is np.float32:
        return arr.astype(np.float32)
    return arr


def _str_column(col: Column, values: Sequence[Any] | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        values = values.tolist()
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if type(v) is str:
            out[i] = v
        elif _is_missing(v):
            if not col.allow_missing:
                raise _missing(col)
            out[i] = None
        elif isinstance(v, (bool, int, float)):
            out[i] = str(v)
        else:
            raise _bad_value(col, v, "not a string")
    return out


def _bool_column(col: Column, values: Sequence[Any] | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        values = values.tolist()
    out = np.empty(len(values), dtype=bool)
    for i, v in enumerate(values):
        if isinstance(v, bool) or v in (0, 1):
            out[i] = bool(v)
        elif _is_missing(v):
            raise _missing(col)
        else:
            raise _bad_value(col, v, "not a boolean")
    return out


_CONVERTERS: dict[str, Callable[[Column, Any], np.ndarray]] = {
    "long": _int_column,
    "integer": _int_column,
    "double": _float_column,
    "float": _float_column,
    "string": _str_column,
    "boolean": _bool_column,
}


def convert_column(col: Column, values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """One column of request values as a numpy array of the signature's type.

    Raises:
        RequestError: a value cannot be represented exactly (400 naming the column).
    """
    try:
        conv = _CONVERTERS[col.kind]
    except KeyError:  # pragma: no cover - guarded when the schema is built
        raise RequestError(f"unsupported column type {col.kind}", 500, "INTERNAL_ERROR") from None
    return conv(col, values)


# --------------------------------------------------------------------------- payloads


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


def _too_many_rows(n: int, max_rows: int | None) -> None:
    if max_rows is not None and n > max_rows:
        raise RequestError(
            f"request has {n} rows; this server accepts at most {max_rows} per request",
            413,
            "REQUEST_LIMIT_EXCEEDED",
        )


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


def _raw_from_json(
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


def _read_parquet(body: bytes, max_rows: int | None, max_decoded_bytes: int | None) -> Any:
    """The Parquet body as a DataFrame, refused from its footer before any page is decoded.

    A few hundred KB of Parquet can declare tens of millions of rows (a decompression bomb):
    the footer's row count and uncompressed sizes are checked first. String columns stay
    dictionary-encoded while decoding, so one long value repeated per row is held once.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(pa.BufferReader(body))
    meta = pf.metadata
    _too_many_rows(meta.num_rows, max_rows)
    if max_decoded_bytes is not None:
        size = 0
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            size += max(
                rg.total_byte_size,
                sum(rg.column(c).total_uncompressed_size for c in range(rg.num_columns)),
            )
        if size > max_decoded_bytes:
            raise RequestError(
                f"Parquet body declares {size} bytes of uncompressed data; this server accepts "
                f"at most {max_decoded_bytes}",
                413,
                "REQUEST_LIMIT_EXCEEDED",
            )
    _check_pages(body, meta, max_rows, max_decoded_bytes)
    strings = [
        f.name
        for f in pf.schema_arrow
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    pf = pq.ParquetFile(pa.BufferReader(body), read_dictionary=strings)
    table = pf.read(use_pandas_metadata=True)
    if table.num_rows != meta.num_rows:  # pragma: no cover - pyarrow reads what the footer says
        raise ValueError("row count differs from the footer")
    if max_decoded_bytes is not None:
        _check_row_strings(table, max_decoded_bytes)
    return table.to_pandas()


def _varint(b: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(b) or shift > 63:
            raise ValueError("truncated or overlong varint")
        x = b[i]
        i += 1
        value |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            return value, i


def _thrift_skip(b: bytes, i: int, kind: int, out: dict[tuple[int, ...], int] | None,
                 path: tuple[int, ...], depth: int) -> int:  # fmt: skip
    """Skip one Thrift compact value at ``i``; integers of structs go into ``out`` by path."""
    if depth > 8:
        raise ValueError("nested too deep")
    if kind in (1, 2):  # bool: the value is in the field header
        return i
    if kind == 3:
        return i + 1
    if kind in (4, 5, 6):
        v, i = _varint(b, i)
        if out is not None:
            out.setdefault(path, (v >> 1) ^ -(v & 1))
        return i
    if kind == 7:
        return i + 8
    if kind == 8:
        n, i = _varint(b, i)
        return i + n
    if kind in (9, 10):
        h = b[i]
        n, i = (h >> 4, i + 1) if h >> 4 != 15 else _varint(b, i + 1)
        for _ in range(n):
            i = _thrift_skip(b, i, h & 0x0F, None, path, depth + 1)
        return i
    if kind == 11:
        n, i = _varint(b, i)
        if n:
            kv = b[i]
            i += 1
            for _ in range(n):
                i = _thrift_skip(b, i, kv >> 4, None, path, depth + 1)
                i = _thrift_skip(b, i, kv & 0x0F, None, path, depth + 1)
        return i
    if kind == 12:
        last = 0
        while True:
            h = b[i]
            i += 1
            if h == 0:
                return i
            if h >> 4:
                fid = last + (h >> 4)
            else:
                v, i = _varint(b, i)
                fid = (v >> 1) ^ -(v & 1)
            last = fid
            i = _thrift_skip(b, i, h & 0x0F, out, (*path, fid), depth + 1)
    raise ValueError(f"unknown Thrift type {kind}")


def _check_pages(
    body: bytes, meta: Any, max_rows: int | None, max_decoded_bytes: int | None
) -> None:
    """Check every page header against the limits: the footer's totals are the writer's word.

    A forged footer can declare 10 rows and 1 KB while its pages hold 50M values (140 KB of
    zstd became +568 MB before any error). pyarrow allocates what each page header says and
    decodes as many values as it declares, so those are summed here, before any decoding.
    """
    if max_rows is None and max_decoded_bytes is None:
        return
    decoded = 0
    try:
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            for c in range(rg.num_columns):
                col = rg.column(c)
                start = col.data_page_offset
                if col.has_dictionary_page and col.dictionary_page_offset:
                    start = min(start, col.dictionary_page_offset)
                end = start + col.total_compressed_size
                if start < 4 or end > len(body) - 8:
                    raise ValueError("a column chunk lies outside the body")
                values = entries = 0
                pos = start
                while pos < end:
                    fields: dict[tuple[int, ...], int] = {}
                    pos = _thrift_skip(body, pos, 12, fields, (), 0)
                    size, compressed = fields.get((2,), -1), fields.get((3,), -1)
                    if size < 0 or compressed < 0:
                        raise ValueError("a page header has no sizes")
                    decoded += size
                    # num_values (field 1) of a data page v1 (5) or v2 (8), or of a dictionary
                    # page (7): as many values are decoded as the header says.
                    values += fields.get((5, 1), 0) + fields.get((8, 1), 0)
                    entries = max(entries, fields.get((7, 1), 0))
                    pos += compressed
                    if max_rows is not None and max(values, entries) > max_rows:
                        _too_many_rows(max(values, entries), max_rows)
                    if max_decoded_bytes is not None and decoded > max_decoded_bytes:
                        raise RequestError(
                            f"Parquet pages declare more than {max_decoded_bytes} bytes of "
                            "uncompressed data; this server accepts at most that",
                            413,
                            "REQUEST_LIMIT_EXCEEDED",
                        )
    except (ValueError, IndexError) as exc:
        raise RequestError(f"Invalid Parquet body: {exc}") from None


def _check_row_strings(table: Any, max_decoded_bytes: int) -> None:
    """Refuse string columns whose rows hold more than the limit, counted per row.

    The footer counts a dictionary page once, but one long value referenced by every row is
    copied once per row by whatever builds a per-row column (the inference log, encoders):
    843 bytes of Parquet can be 10 GiB of row values.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    size = 0
    for column in table.columns:
        # Dictionary-encoded: read so above, or so declared by the file's own Arrow schema.
        if not pa.types.is_dictionary(column.type):
            continue
        values = column.type.value_type
        if not (
            pa.types.is_string(values)
            or pa.types.is_large_string(values)
            or pa.types.is_binary(values)
            or pa.types.is_large_binary(values)
        ):
            continue
        for chunk in column.chunks:
            lengths = pc.binary_length(chunk.dictionary).take(chunk.indices)
            size += pc.sum(lengths).as_py() or 0
    if size > max_decoded_bytes:
        raise RequestError(
            f"Parquet body holds {size} bytes of string values across its rows; this server "
            f"accepts at most {max_decoded_bytes}",
            413,
            "REQUEST_LIMIT_EXCEEDED",
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
            frame = _read_parquet(body, max_rows, max_decoded_bytes)
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
        raw, n, params = _raw_from_json(body, schema, max_rows)
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


# --------------------------------------------------------------------------- responses


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
