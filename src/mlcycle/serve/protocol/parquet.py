"""Parquet bodies read under limits: a decompression bomb is refused before it is decoded.

API: :func:`read_parquet`.

The footer's row count and sizes, then every page header, are checked before pyarrow
allocates anything; string columns stay dictionary-encoded and their per-row size is counted.
"""

from __future__ import annotations

from typing import Any

from mlcycle.serve.protocol.types import RequestError, _too_many_rows


def read_parquet(body: bytes, max_rows: int | None, max_decoded_bytes: int | None) -> Any:
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
