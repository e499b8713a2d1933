"""Parquet files of the core, written and read alike by either pandas engine.

API: :func:`engine`, :func:`write_parquet`, :func:`read_parquet` (with optional bounds on the
cells and the uncompressed bytes a file declares, checked from its footer and page headers
before any page is decoded: :mod:`mlcycle.parquet.limits`); for files read another way (the
inference log's readers): :data:`MAX_DECLARED_BYTES`, :func:`declared`, :func:`check_declared`,
:func:`string_bytes`.

The core install has fastparquet; pyarrow comes with the extras that need it (serve,
monitoring, s3, spark). pandas uses whichever is installed (pyarrow first, as pandas' own
``engine="auto"`` does, or the one ``pd.options.io.parquet.engine`` names), and the two differ
where a file must not: fastparquet stores a categorical of booleans so that it reads back
wrong, its nullable ``Int64`` and ``boolean`` columns read back as ``float64`` and ``object``
under pyarrow, and it reads strings as ``object`` where pyarrow gives pandas' string dtype.
So every Parquet file of the core goes through here (the contract's ``reference/*.parquet``,
user tables, the retrain table, batch output):

- on write, categoricals become their values, booleans with missing values pandas' nullable
  ``boolean`` and ``string`` (``pd.NA``) columns its default string dtype, so the file holds
  plain values either engine reads back alike;
- on read, the nullable and duration dtypes the file's pandas metadata records (either
  engine's way of writing it) are restored, and ``object`` columns of strings get pandas'
  string dtype.

A file written under one engine then reads back with the same values and dtypes under the
other. Durations (``timedelta64``) are the exception: fastparquet stores them as times of day
(1 s reads back as 0), so under it :func:`write_parquet` refuses them by column name.

Files written elsewhere can use parts of the format fastparquet does not read (the
``DELTA_BYTE_ARRAY`` string encoding of Spark's and pyarrow's v2 writers, for one): when it
fails on one and pyarrow is not installed, :func:`read_parquet` says which install reads it.
"""

from __future__ import annotations

import io
import json
import logging
import os
from typing import Any

import pandas as pd
from pandas.api.types import infer_dtype, is_object_dtype

from mlcycle.errors import DataError
from mlcycle.extras import available
from mlcycle.parquet.limits import (
    MAX_DECLARED_BYTES,
    Declared,
    Source,
    arrow_string_bytes,
    check_declared,
    check_file,
    check_frame_strings,
    check_strings,
    declared,
    string_bytes,
)

__all__ = [
    "MAX_DECLARED_BYTES",
    "Declared",
    "check_declared",
    "declared",
    "engine",
    "read_parquet",
    "string_bytes",
    "write_parquet",
]

logger = logging.getLogger(__name__)

#: Nullable dtypes restored from a file's pandas metadata when the engine did not (and
#: ``timedelta64[unit]``).
_NULLABLE = frozenset(
    {f"Int{b}" for b in (8, 16, 32, 64)}
    | {f"UInt{b}" for b in (8, 16, 32, 64)}
    | {"Float32", "Float64", "boolean", "string"}
)

#: How to get pyarrow, for what fastparquet cannot do: pyarrow alone or an extra with it.
PYARROW_INSTALL = (
    "pip install pyarrow, or an extra that brings it: pip install 'mlcycle[monitoring]'"
)


def _default_str() -> Any:
    """pandas' dtype for a column of strings (``str`` from pandas 3, ``object`` before)."""
    return pd.Series(["a"]).dtype


def engine() -> str:
    """The pandas Parquet engine in use: ``pd.options.io.parquet.engine`` unless ``auto``,
    else pyarrow when installed (pandas' own order), else fastparquet."""
    chosen = str(pd.get_option("io.parquet.engine"))
    if chosen != "auto":
        return chosen
    return "pyarrow" if available("pyarrow") else "fastparquet"


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with categoricals as their values and ``string`` as the default string."""
    out: pd.DataFrame | None = None
    for name, series in frame.items():
        dtype = series.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            kind = dtype.categories.dtype.kind
            if series.hasnans and kind == "b":
                values = series.astype("boolean")
            elif series.hasnans and kind in "iu":
                values = series.astype("float64")  # what pandas makes of integers with NaN
            else:
                values = series.astype(dtype.categories.dtype)
        elif is_object_dtype(dtype) and series.hasnans and infer_dtype(series) == "boolean":
            # fastparquet would store these as floats (1.0, NaN): nullable booleans read back.
            values = series.astype("boolean")
        elif isinstance(dtype, pd.StringDtype) and dtype != _default_str():
            values = series.astype(object).where(series.notna(), None).astype(_default_str())
        else:
            continue
        if out is None:
            out = frame.copy(deep=False)
        out[name] = values
    return frame if out is None else out


def write_parquet(
    frame: pd.DataFrame,
    dest: str | os.PathLike[str] | io.BytesIO,
    *,
    row_group_rows: int | None = None,
) -> None:
    """Write ``frame`` (without its index) as Parquet to a path or a buffer.

    Args:
        frame: the table; categoricals are stored as their values (module docstring).
        dest: a local path or a binary buffer.
        row_group_rows: rows per row group [default: the engine's].

    Raises:
        DataError: a duration column under fastparquet, which cannot store it exactly.
    """
    chosen = engine()
    if chosen == "fastparquet":
        durations = [str(c) for c, t in frame.dtypes.items() if t.kind == "m"]
        if durations:
            raise DataError(
                f"column(s) {', '.join(durations)} hold durations (timedelta64), which "
                "fastparquet, the core install's Parquet engine, stores as times of day (1 s "
                "reads back as 0): convert them to numbers (e.g. seconds), or install pyarrow "
                f"({PYARROW_INSTALL})"
            )
    kwargs: dict[str, Any] = {}
    if row_group_rows is not None:
        key = "row_group_size" if chosen == "pyarrow" else "row_group_offsets"
        kwargs[key] = row_group_rows
    _plain(frame).to_parquet(dest, engine=chosen, index=False, **kwargs)


def _fastparquet_misreads(source: Source, name: str) -> list[str]:
    """Refuse nested columns fastparquet reads wrongly; the BOOLEAN columns it reads as floats.

    fastparquet reads a struct as its first field's values, lists of lists or of structs as
    ``None`` and float16 as raw bytes, without an error; it reads booleans with missing values
    as 1.0/0.0/NaN (restored as nullable booleans by the caller).
    A column is nested when it has several leaves or a leaf two, or four and more, levels
    deep (a list of plain values is three: ``name.list.element``, read as Python lists).

    Raises:
        DataError: a nested or float16 column, naming the install that brings pyarrow.
    """
    import fastparquet

    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
        pf = fastparquet.ParquetFile(handle)
        groups = pf.row_groups
    except Exception as exc:  # the read itself reports a footer it cannot parse
        logger.debug("no Parquet layout read before decoding: %s", exc)
        return []
    leaves: dict[str, list[tuple[list[str], int]]] = {}
    for chunk in groups[0].columns if groups else []:
        path = list(chunk.meta_data.path_in_schema)
        leaves.setdefault(path[0], []).append((path, chunk.meta_data.type))
    booleans = []
    for column, found in leaves.items():
        depth = len(found[0][0])
        if len(found) > 1 or depth == 2 or depth >= 4:
            raise DataError(
                f"column '{column}' of {name} is nested (a struct, map, or list of lists or "
                "structs), which fastparquet, the core install's Parquet engine, reads wrongly "
                f"without an error; flatten it, or install pyarrow ({PYARROW_INSTALL})"
            )
        if depth == 1 and found[0][1] == 0:  # parquet's physical type BOOLEAN
            booleans.append(column)
        if depth == 1 and found[0][1] == 7 and not _known_fixed(pf, found[0][0]):
            raise DataError(
                f"column '{column}' of {name} holds fixed-length values of a type fastparquet, "
                "the core install's Parquet engine, does not know (float16 is one) and would "
                f"read as raw bytes; install pyarrow ({PYARROW_INSTALL})"
            )
    return booleans


def _known_fixed(pf: Any, path: list[str]) -> bool:
    """Whether a FIXED_LEN_BYTE_ARRAY column carries a type fastparquet decodes (a decimal,
    or any logical type its schema names); float16 is one it reads as raw bytes."""
    element = pf.schema.schema_element(path)
    if element.converted_type is not None:
        return True
    logical = element.logicalType
    return logical is not None and any(
        getattr(logical, field, None) is not None
        for field in ("DECIMAL", "UUID", "STRING", "JSON", "BSON", "ENUM")
    )


def _recorded_dtypes(raw: Source) -> dict[str, str]:
    """Column → nullable dtype the file's pandas metadata records (pyarrow writes the dtype
    as ``numpy_type``, fastparquet as ``pandas_type``); ``{}`` when there is none."""
    import fastparquet

    try:
        handle = io.BytesIO(raw) if isinstance(raw, bytes) else os.fspath(raw)
        meta = json.loads(fastparquet.ParquetFile(handle).key_value_metadata.get("pandas", "{}"))
    except Exception as exc:  # a footer fastparquet cannot parse still reads with pyarrow
        logger.debug("no pandas metadata read from the Parquet footer: %s", exc)
        return {}
    recorded: dict[str, str] = {}
    for col in meta.get("columns", []):
        names = {str(col.get("numpy_type")), str(col.get("pandas_type"))}
        # Durations too: each engine reads the other's as integers or objects.
        kinds = (names & _NULLABLE) or {n for n in names if n.startswith("timedelta64[")}
        if kinds and isinstance(col.get("name"), str):
            recorded[col["name"]] = kinds.pop()
    return recorded


def _restore(frame: pd.DataFrame, recorded: dict[str, str]) -> pd.DataFrame:
    text = _default_str()
    strings_differ = not is_object_dtype(text)  # pandas < 3 reads strings as object anyway
    for name, series in frame.items():
        want = recorded.get(str(name))
        if want is not None and str(series.dtype) != want:
            try:
                frame[name] = series.astype(want)
            except (TypeError, ValueError) as exc:
                logger.debug("column %s kept as %s (not %s): %s", name, series.dtype, want, exc)
        elif strings_differ and is_object_dtype(series.dtype) and infer_dtype(series) == "string":
            frame[name] = series.astype(text)
    return frame


def read_parquet(
    source: Source,
    *,
    max_cells: int | None = None,
    max_bytes: int | None = None,
    name: str | None = None,
) -> pd.DataFrame:
    """Read a Parquet file (a local path or its bytes) with the engine in use.

    Args:
        source: a local path or the file's bytes.
        max_cells: refuse a file whose footer declares more rows x columns than this, or
            whose pages declare more values in all, before decoding it (a few KB of
            compressed zeros can declare tens of millions of rows).
        max_bytes: refuse a file whose footer or page headers declare more uncompressed
            bytes than this, before decoding it (a few KB of zstd can declare gigabytes of
            strings), or whose string columns hold more across their rows (a dictionary
            value once per row that uses it), counted before any per-row copy is made;
            :data:`MAX_DECLARED_BYTES` for a file from an untrusted writer.
        name: how those errors name the file [default: its path].

    Raises:
        DataError: the file declares more than ``max_cells`` cells or ``max_bytes`` bytes,
            or (with either bound) a page header cannot be read; or fastparquet cannot decode
            it and pyarrow, which reads more of the format, is not installed (the message
            says how to install it).
        Exception: whatever the engine raises on a missing or unreadable file.
    """
    chosen = engine()
    if name is None:
        name = "the file" if isinstance(source, bytes) else os.fspath(source)
    if max_cells is not None or max_bytes is not None:
        check_file(source, name, chosen, max_cells, max_bytes)
    with_arrow = available("pyarrow")
    if max_bytes is not None and with_arrow:
        check_strings(arrow_string_bytes(source), name, max_bytes)
    booleans = _fastparquet_misreads(source, name) if chosen == "fastparquet" else []
    data = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        frame = pd.read_parquet(data, engine=chosen)
    except OSError:
        raise  # a missing or unreadable path: no other engine would open it
    except Exception as exc:
        if chosen != "fastparquet" or with_arrow:
            raise
        raise DataError(
            f"fastparquet, the core install's Parquet engine, cannot read {name} "
            f"({type(exc).__name__}: {exc}); pyarrow reads parts of the Parquet format "
            f"fastparquet does not (newer encodings, some nested types): {PYARROW_INSTALL}"
        ) from exc
    if max_bytes is not None and not with_arrow:
        # fastparquet alone: a dictionary value is one Python object every row refers to, so
        # the frame is cheap; counted before anything makes a copy per row.
        check_frame_strings(frame, name, max_bytes)
    for column in booleans:
        if column in frame.columns and frame[column].dtype.kind == "f":
            frame[column] = frame[column].astype("boolean")  # 1.0/0.0/NaN as read
    return _restore(frame, _recorded_dtypes(source))
