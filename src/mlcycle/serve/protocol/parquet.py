"""Parquet bodies read under limits: a decompression bomb is refused before it is decoded.

API: :func:`read_parquet`.

The footer's row count and sizes, then every page header, are checked before pyarrow
allocates anything; string columns stay dictionary-encoded and their per-row size is counted.
"""

from __future__ import annotations

from typing import Any

from mlcycle.parquet.limits import string_bytes
from mlcycle.parquet.pages import page_header
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
                    header, pos = page_header(body, pos)
                    decoded += header.uncompressed
                    values += header.values
                    entries = max(entries, header.entries)
                    pos += header.compressed
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
    843 bytes of Parquet can be 10 GiB of row values. Counted as contract and log files are
    (:func:`mlcycle.parquet.limits.string_bytes`).
    """
    size = string_bytes(table)
    if size > max_decoded_bytes:
        raise RequestError(
            f"Parquet body holds {size} bytes of string values across its rows; this server "
            f"accepts at most {max_decoded_bytes}",
            413,
            "REQUEST_LIMIT_EXCEEDED",
        )
