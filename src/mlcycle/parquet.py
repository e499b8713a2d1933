"""Parquet files of the core, written and read alike by either pandas engine.

API: :func:`engine`, :func:`write_parquet`, :func:`read_parquet` (with optional bounds on the
cells and the uncompressed bytes a file declares, checked from its footer and page headers
before any page is decoded); for files read another way (the inference log's streaming
readers): :data:`MAX_DECLARED_BYTES`, :func:`declared`, :func:`check_declared`, and
:func:`page_header` (the Thrift page header, also read by the model server's body parser).

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
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pandas.api.types import infer_dtype, is_object_dtype

from mlcycle.errors import DataError
from mlcycle.extras import available

logger = logging.getLogger(__name__)

#: Nullable dtypes restored from a file's pandas metadata when the engine did not (and
#: ``timedelta64[unit]``).
_NULLABLE = frozenset(
    {f"Int{b}" for b in (8, 16, 32, 64)}
    | {f"UInt{b}" for b in (8, 16, 32, 64)}
    | {"Float32", "Float64", "boolean", "string"}
)

Source = str | os.PathLike[str] | bytes


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
                "(pip install pyarrow, or an extra that brings it: 'mlcycle[monitoring]')"
            )
    kwargs: dict[str, Any] = {}
    if row_group_rows is not None:
        key = "row_group_size" if chosen == "pyarrow" else "row_group_offsets"
        kwargs[key] = row_group_rows
    _plain(frame).to_parquet(dest, engine=chosen, index=False, **kwargs)


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


#: Most uncompressed bytes a Parquet file from an untrusted writer (a model version's contract
#: files, the inference log) may declare for what one read decodes at once: the whole file when
#: it is read whole, a row group when it is streamed. A few KB of zstd can declare gigabytes
#: (40 KB held three 400 MB strings and cost 2.2 GB to read); honest files stay far below: the
#: 100M float cells of the contract's cell bound are 800 MB, a 1M-row row group of 100 numbers
#: 800 MB.
MAX_DECLARED_BYTES = 2 * 1024**3

#: Bytes read at a time while walking page headers (a header is a few dozen bytes, more with
#: statistics; a longer one is read whole).
_HEADER_BLOCK = 1 << 16


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


@dataclass(frozen=True)
class PageHeader:
    """What a Parquet page header declares: its sizes and how many values it decodes to."""

    uncompressed: int
    compressed: int
    #: Values of a data page (v1 or v2); 0 for a dictionary or index page.
    values: int
    #: Entries of a dictionary page; 0 for any other page.
    entries: int


def page_header(buf: bytes, pos: int) -> tuple[PageHeader, int]:
    """The page header (Thrift compact) at ``buf[pos:]`` and the position after it.

    Raises:
        ValueError: the header is malformed or ``buf`` ends inside it.
        IndexError: ``buf`` ends inside it.
    """
    fields: dict[tuple[int, ...], int] = {}
    end = _thrift_skip(buf, pos, 12, fields, (), 0)
    if end > len(buf):
        raise ValueError("the page header runs past the bytes read")
    size, compressed = fields.get((2,), -1), fields.get((3,), -1)
    if size < 0 or compressed < 0:
        raise ValueError("a page header has no sizes")
    # num_values (field 1) of a data page v1 (5) or v2 (8), or of a dictionary page (7): as
    # many values are decoded as the header says.
    values = max(fields.get((5, 1), 0), 0) + max(fields.get((8, 1), 0), 0)
    return PageHeader(size, compressed, values, max(fields.get((7, 1), 0), 0)), end


@dataclass(frozen=True)
class _Chunk:
    """One column chunk as the footer places it: where its pages start, what it declares."""

    start: int
    compressed: int
    uncompressed: int


@dataclass(frozen=True)
class _RowGroup:
    total_byte_size: int
    chunks: tuple[_Chunk, ...]


@dataclass(frozen=True)
class _Footer:
    rows: int
    columns: int
    row_groups: tuple[_RowGroup, ...]


def _chunk(start: int, dictionary: int | None, compressed: int, uncompressed: int) -> _Chunk:
    if dictionary:  # writers disagree on whether 0 means "none"; a real offset is past b"PAR1"
        start = min(start, dictionary)
    return _Chunk(start, compressed, uncompressed)


def _footer_pyarrow(meta: Any) -> _Footer:
    groups = []
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        chunks = []
        for c in range(rg.num_columns):
            col = rg.column(c)
            dictionary = col.dictionary_page_offset if col.has_dictionary_page else None
            chunks.append(
                _chunk(
                    col.data_page_offset,
                    dictionary,
                    col.total_compressed_size,
                    col.total_uncompressed_size,
                )
            )
        groups.append(_RowGroup(rg.total_byte_size, tuple(chunks)))
    return _Footer(meta.num_rows, meta.num_columns, tuple(groups))


def _footer_fastparquet(pf: Any) -> _Footer:
    groups = []
    for rg in pf.fmd.row_groups or []:
        chunks = []
        for col in rg.columns or []:
            md = col.meta_data
            chunks.append(
                _chunk(
                    md.data_page_offset,
                    md.dictionary_page_offset,
                    md.total_compressed_size,
                    md.total_uncompressed_size,
                )
            )
        groups.append(_RowGroup(rg.total_byte_size or 0, tuple(chunks)))
    return _Footer(int(pf.count()), len(pf.columns), tuple(groups))


def _footer(source: Source, chosen: str) -> _Footer | None:
    """What the file's footer declares, or ``None`` when it cannot be read (the read itself
    then reports the file)."""
    handle: Any = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
    try:
        if chosen == "pyarrow":
            import pyarrow.parquet as pq

            return _footer_pyarrow(pq.ParquetFile(handle).metadata)
        import fastparquet

        return _footer_fastparquet(fastparquet.ParquetFile(handle))
    except Exception as exc:
        logger.debug("no footer read from the Parquet file: %s", exc)
        return None


ReadAt = Callable[[int, int], bytes]


def _chunk_pages(chunk: _Chunk, read_at: ReadAt, size: int) -> tuple[int, int]:
    """``(uncompressed bytes, values)`` the page headers of ``chunk`` declare.

    Only headers are read (a block at a time, skipping each page's body): the readers
    allocate and decode what each header says, whatever the footer's totals.

    Raises:
        ValueError: the chunk lies outside the file or a header is malformed.
    """
    pos, end = chunk.start, chunk.start + chunk.compressed
    if pos < 4 or chunk.compressed < 0 or end > size - 8:
        raise ValueError("a column chunk lies outside the file")
    total = values = 0
    buf, at = b"", pos
    while pos < end:
        try:
            header, after = page_header(buf, pos - at)
        except (ValueError, IndexError):
            if at == pos and len(buf) >= end - pos:
                raise ValueError(f"a malformed page header at byte {pos}") from None
            grow = max(_HEADER_BLOCK, 2 * len(buf)) if at == pos else _HEADER_BLOCK
            buf, at = read_at(pos, min(grow, end - pos)), pos
            continue
        if header.compressed < 0 or header.uncompressed < 0:
            raise ValueError(f"a page header at byte {pos} declares a negative size")
        total += header.uncompressed
        values += header.values
        pos = at + after + header.compressed
    return total, values


@dataclass(frozen=True)
class Declared:
    """What a Parquet file declares, footer and page headers alike, before any page is
    decoded: per row group the larger of the footer's and the page headers' uncompressed
    bytes, and the values its data pages hold."""

    rows: int
    columns: int
    row_group_bytes: tuple[int, ...]
    values: int

    @property
    def bytes(self) -> int:
        """Uncompressed bytes of the whole file."""
        return sum(self.row_group_bytes)


def _declared(footer: _Footer, read_at: ReadAt | None, size: int) -> Declared:
    """What ``footer`` declares, and with ``read_at`` what its page headers declare too."""
    sizes = []
    values = 0
    for rg in footer.row_groups:
        from_footer = sum(c.uncompressed for c in rg.chunks)
        from_pages = 0
        if read_at is not None:
            for chunk in rg.chunks:
                b, v = _chunk_pages(chunk, read_at, size)
                from_pages += b
                values += v
        sizes.append(max(rg.total_byte_size, from_footer, from_pages))
    return Declared(footer.rows, footer.columns, tuple(sizes), values)


def declared(handle: Any, name: str, *, pages: bool = True) -> Declared:
    """What the Parquet file open in ``handle`` (a pyarrow file) declares (:class:`Declared`).

    Reads the footer and, with ``pages``, every page header, never a page's data.

    Raises:
        DataError: the footer or a page header cannot be read.
    """
    import pyarrow.parquet as pq

    try:
        size = handle.size()
        footer = _footer_pyarrow(pq.ParquetFile(handle).metadata)
        read_at = (lambda at, n: handle.read_at(n, at)) if pages else None
        return _declared(footer, read_at, size)
    except Exception as exc:
        raise DataError(f"{name} is unreadable ({type(exc).__name__}: {exc})") from exc


def check_declared(
    found: Declared, name: str, *, max_bytes: int, per_row_group: bool = False
) -> None:
    """Refuse a file that declares more than ``max_bytes`` uncompressed bytes: in all, or in
    any one row group when ``per_row_group`` (a reader that streams row group by row group).

    Raises:
        DataError: naming the file, what it declares and the limit.
    """
    if per_row_group:
        worst = max(found.row_group_bytes, default=0)
        if worst > max_bytes:
            g = found.row_group_bytes.index(worst)
            raise DataError(
                f"{name} declares {worst:,} bytes of uncompressed data in row group {g}, more "
                f"than the {max_bytes:,} mlcycle decodes at once from a Parquet file"
            )
    elif found.bytes > max_bytes:
        raise DataError(
            f"{name} declares {found.bytes:,} bytes of uncompressed data, more than the "
            f"{max_bytes:,} mlcycle reads from a Parquet file"
        )


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
            or (with either bound) a page header cannot be read.
        Exception: whatever the engine raises on a missing or unreadable file.
    """
    if name is None:
        name = "the file" if isinstance(source, bytes) else os.fspath(source)
    if max_cells is not None or max_bytes is not None:
        _check(source, name, max_cells, max_bytes)
    with_arrow = available("pyarrow")
    if max_bytes is not None and with_arrow:
        _check_strings(_arrow_string_bytes(source), name, max_bytes)
    data = io.BytesIO(source) if isinstance(source, bytes) else source
    frame = pd.read_parquet(data, engine=engine())
    if max_bytes is not None and not with_arrow:
        # fastparquet alone: a dictionary value is one Python object every row refers to, so
        # the frame is cheap; counted before anything makes a copy per row.
        _check_strings(_frame_string_bytes(frame), name, max_bytes)
    return _restore(frame, _recorded_dtypes(source))


def string_bytes(table: Any) -> int:
    """Bytes the string and binary columns of an Arrow table hold across its rows, a
    dictionary-encoded value counted once per row that refers to it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def text(t: Any) -> bool:
        return bool(
            pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_binary(t)
            or pa.types.is_large_binary(t)
        )

    size = 0
    for column in table.columns:
        for chunk in column.chunks:
            if pa.types.is_dictionary(chunk.type) and text(chunk.type.value_type):
                lengths = pc.binary_length(chunk.dictionary).take(chunk.indices)
            elif text(chunk.type):
                lengths = pc.binary_length(chunk)
            else:
                continue
            size += pc.sum(lengths).as_py() or 0
    return size


def _arrow_string_bytes(source: Source) -> int:
    """:func:`string_bytes` of a file's string columns, read dictionary-encoded: a dictionary
    page's values are held once, never copied per row (843 bytes can declare 10 GiB)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def handle() -> Any:
        return pa.BufferReader(source) if isinstance(source, bytes) else os.fspath(source)

    try:
        schema = pq.ParquetFile(handle()).schema_arrow
    except Exception as exc:  # the read itself reports the file
        logger.debug("no schema read from the Parquet file: %s", exc)
        return 0
    names = [
        f.name
        for f in schema
        if pa.types.is_string(f.type)
        or pa.types.is_large_string(f.type)
        or pa.types.is_binary(f.type)
        or pa.types.is_large_binary(f.type)
        or pa.types.is_dictionary(f.type)
    ]
    if not names or len(set(schema.names)) != len(schema.names):
        return 0
    return string_bytes(pq.ParquetFile(handle(), read_dictionary=names).read(columns=names))


def _frame_string_bytes(frame: pd.DataFrame) -> int:
    size = 0
    for _, series in frame.items():
        if is_object_dtype(series.dtype):
            size += sum(len(v) for v in series if isinstance(v, (str, bytes)))
    return size


def _check_strings(size: int, name: str, max_bytes: int) -> None:
    if size > max_bytes:
        raise DataError(
            f"{name} holds {size:,} bytes of string values across its rows (a dictionary "
            f"value counted once per row that uses it), more than the {max_bytes:,} mlcycle "
            "reads from a Parquet file"
        )


def _check(source: Source, name: str, max_cells: int | None, max_bytes: int | None) -> None:
    footer = _footer(source, engine())
    if footer is None:
        return
    if max_cells is not None and footer.rows * footer.columns > max_cells:
        raise DataError(
            f"{name} declares {footer.rows:,} rows x {footer.columns} columns, more than the "
            f"{max_cells:,} cells mlcycle reads from it"
        )
    if max_bytes is not None:  # the footer's totals first: no page header is read for them
        check_declared(_declared(footer, None, 0), name, max_bytes=max_bytes)
    try:
        if isinstance(source, bytes):
            found = _declared(footer, lambda at, n: source[at : at + n], len(source))
        else:
            with open(source, "rb") as fh:

                def read_at(at: int, n: int) -> bytes:
                    fh.seek(at)
                    return fh.read(n)

                found = _declared(footer, read_at, os.fstat(fh.fileno()).st_size)
    except ValueError as exc:
        raise DataError(f"{name} is not a readable Parquet file: {exc}") from exc
    if max_cells is not None and found.values > max_cells:
        raise DataError(
            f"{name} has pages declaring {found.values:,} values, more than the {max_cells:,} "
            "cells mlcycle reads from it"
        )
    if max_bytes is not None:
        check_declared(found, name, max_bytes=max_bytes)
