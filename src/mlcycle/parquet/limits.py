"""Limits on what a Parquet file from an untrusted writer makes mlcycle decode.

API: :data:`MAX_DECLARED_BYTES`, :class:`Declared`, :func:`declared`, :func:`check_declared`,
:func:`string_bytes`, :func:`check_file` (what :func:`mlcycle.parquet.read_parquet` checks),
:func:`check_frame_strings`.

Each check reads the footer and the page headers (:mod:`mlcycle.parquet.pages`), never a
page's data, except the string check, which reads string columns dictionary-encoded so that
a dictionary value is held once, however many rows refer to it.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pandas.api.types import is_object_dtype

from mlcycle.errors import DataError
from mlcycle.parquet.pages import page_header

logger = logging.getLogger(__name__)

Source = str | os.PathLike[str] | bytes

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


def is_text(t: Any) -> bool:
    """Whether an Arrow type holds strings or bytes (large or not)."""
    import pyarrow as pa

    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
    )


def string_bytes(table: Any) -> int:
    """Bytes the string and binary columns of an Arrow table hold across its rows, a
    dictionary-encoded value counted once per row that refers to it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    size = 0
    for column in table.columns:
        for chunk in column.chunks:
            if pa.types.is_dictionary(chunk.type) and is_text(chunk.type.value_type):
                lengths = pc.binary_length(chunk.dictionary).take(chunk.indices)
            elif is_text(chunk.type):
                lengths = pc.binary_length(chunk)
            else:
                continue
            size += pc.sum(lengths).as_py() or 0
    return size


def arrow_string_bytes(source: Source) -> int:
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


def check_frame_strings(frame: pd.DataFrame, name: str, max_bytes: int) -> None:
    """Refuse ``frame`` when its object columns' strings exceed ``max_bytes`` across rows.

    Raises:
        DataError: naming the file and the limit.
    """
    size = 0
    for _, series in frame.items():
        if is_object_dtype(series.dtype):
            size += sum(len(v) for v in series if isinstance(v, (str, bytes)))
    check_strings(size, name, max_bytes)


def check_strings(size: int, name: str, max_bytes: int) -> None:
    """Refuse ``size`` bytes of string values across a file's rows when over ``max_bytes``.

    Raises:
        DataError: naming the file, the size and the limit.
    """
    if size > max_bytes:
        raise DataError(
            f"{name} holds {size:,} bytes of string values across its rows (a dictionary "
            f"value counted once per row that uses it), more than the {max_bytes:,} mlcycle "
            "reads from a Parquet file"
        )


def check_file(
    source: Source, name: str, chosen: str, max_cells: int | None, max_bytes: int | None
) -> None:
    """Refuse a file whose footer or page headers declare more than ``max_cells`` cells (or
    values) or ``max_bytes`` uncompressed bytes; a footer that ``chosen`` (the engine) cannot
    read is left to the read itself to report.

    Raises:
        DataError: naming the file, what it declares and the limit.
    """
    footer = _footer(source, chosen)
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
