"""Request values into typed numpy columns, refusing what would not survive exactly.

API: :func:`convert_column`.

Where MLflow silently changes data (1.5 into a long column, integer overflow, ``True`` read
as 1.0) a column is refused with a 400 that names it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlcycle.schema_types import NUMPY_DTYPES
from mlcycle.serve.protocol.types import BAD_REQUEST, Column, RequestError, _echo

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
#: Largest magnitude up to which every integer is exact as a float64.
_FLOAT_EXACT = 2**53
_BOOL_TYPES = frozenset({bool, np.bool_})


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
