"""Parquet page headers read without the page: what a reader will allocate and decode.

API: :class:`PageHeader`, :func:`page_header`.

A page header is a Thrift compact struct in front of each page. Readers (pyarrow,
fastparquet) allocate its uncompressed size and decode as many values as it declares,
whatever the footer's totals say, so a check of a file from an untrusted writer reads them.
"""

from __future__ import annotations

from dataclasses import dataclass


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
