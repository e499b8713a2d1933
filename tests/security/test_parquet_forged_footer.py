"""A Parquet body whose footer lies: the row count and sizes are the writer's word.

The footer check (rows, uncompressed sizes) reads numbers an attacker writes. Here a real
file's footer is rewritten to declare 10 rows and 1,000 bytes while its pages hold millions
of values: pyarrow allocates and decodes what each *page header* says. On the code before
the page check, a 140 KB forged body cost +568 MB RSS and 7 s before its 400.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle.serve.protocol import Column, InputSchema, RequestError, parse_request

SCHEMA = InputSchema((Column("x", "double"),))
PARQUET = "application/vnd.apache.parquet"


def _varint(b: bytes, i: int) -> tuple[int, int]:
    r = s = 0
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7F) << s
        s += 7
        if not x & 0x80:
            return r, i


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes([*out, n])


def _walk(b: bytes, i: int, kind: int, path: tuple, spans: list) -> int:
    """Thrift compact: record (path, start, end) of every i64 field."""
    if kind in (1, 2):
        return i
    if kind == 3:
        return i + 1
    if kind in (4, 5):
        return _varint(b, i)[1]
    if kind == 6:
        end = _varint(b, i)[1]
        spans.append((path, i, end))
        return end
    if kind == 7:
        return i + 8
    if kind == 8:
        n, i = _varint(b, i)
        return i + n
    if kind in (9, 10):
        h = b[i]
        n, i = (h >> 4, i + 1) if h >> 4 != 15 else _varint(b, i + 1)
        for _ in range(n):
            i = _walk(b, i, h & 0x0F, (*path, "[]"), spans)
        return i
    if kind == 12:
        last = 0
        while b[i]:
            h = b[i]
            i += 1
            if h >> 4:
                fid = last + (h >> 4)
            else:
                v, i = _varint(b, i)
                fid = (v >> 1) ^ -(v & 1)
            last = fid
            i = _walk(b, i, h & 0x0F, (*path, fid), spans)
        return i + 1
    raise ValueError(kind)


def forged(rows: int, declared_rows: int, declared_bytes: int, dictionary: bool = True) -> bytes:
    """A real file of ``rows`` zeros whose footer declares other row counts and sizes."""
    buf = io.BytesIO()
    pq.write_table(
        pa.table({"x": np.zeros(rows)}),
        buf,
        compression="zstd",
        row_group_size=rows,
        use_dictionary=dictionary,
    )
    body = buf.getvalue()
    n = struct.unpack("<I", body[-8:-4])[0]
    start = len(body) - 8 - n
    foot = body[start:-8]
    spans: list = []
    _walk(foot, 0, 12, (), spans)
    # FileMetaData.num_rows (3); RowGroup (4) total_byte_size (2), num_rows (3);
    # ColumnChunk (1) meta_data (3) total_uncompressed_size (6).
    lies = {
        (3,): declared_rows,
        (4, "[]", 3): declared_rows,
        (4, "[]", 2): declared_bytes,
        (4, "[]", 1, "[]", 3, 6): declared_bytes,
    }
    out, pos = bytearray(), 0
    for path, s, e in spans:
        if path in lies:
            out += foot[pos:s] + _zigzag(lies[path])
            pos = e
    out += foot[pos:]
    return body[:start] + bytes(out) + struct.pack("<I", len(out)) + b"PAR1"


def test_the_forgery_passes_a_footer_only_check() -> None:
    meta = pq.ParquetFile(io.BytesIO(forged(2_000_000, 10, 1000))).metadata
    assert meta.num_rows == 10
    assert meta.row_group(0).column(0).total_uncompressed_size == 1000


def test_a_footer_declaring_fewer_rows_than_its_pages_hold_is_refused_413() -> None:
    body = forged(2_000_000, 10, 1000)
    assert len(body) < 100_000
    with pytest.raises(RequestError) as err:
        parse_request(body, PARQUET, SCHEMA, max_rows=10_000, max_decoded_bytes=64 << 20)
    assert err.value.status == 413, err.value.message


def test_a_footer_declaring_fewer_bytes_than_its_pages_hold_is_refused_413() -> None:
    body = forged(5_000, 5_000, 1000, dictionary=False)  # 40 KB of doubles declared as 1 KB
    with pytest.raises(RequestError) as err:
        parse_request(body, PARQUET, SCHEMA, max_rows=10_000, max_decoded_bytes=20_000)
    assert err.value.status == 413 and "uncompressed" in err.value.message


def test_an_honest_file_still_parses() -> None:
    buf = io.BytesIO()
    pq.write_table(pa.table({"x": np.arange(5_000.0)}), buf)
    parsed = parse_request(
        buf.getvalue(), PARQUET, SCHEMA, max_rows=10_000, max_decoded_bytes=64 << 20
    )
    assert parsed.n_rows == 5_000 and parsed.columns["x"][4_999] == 4_999.0
