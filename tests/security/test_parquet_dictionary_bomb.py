"""A Parquet dictionary bomb: one long string, referenced by every row.

The footer check counts the dictionary page once (1 MiB), and the parser keeps strings
dictionary-encoded, so parsing itself is cheap. But every scored row is that 1 MiB string:
the inference-log writer, the model's encoders and anything else that builds a per-row
column copy it once per row. An 843-byte body of 10,000 rows is 10 GiB of strings. The
limit on decoded bytes must apply to what the rows hold, not to what the pages hold.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle.serve.protocol import Column, InputSchema, RequestError, parse_request

SCHEMA = InputSchema((Column("s", "string"), Column("x", "double")))
PARQUET = "application/vnd.apache.parquet"


def _body(value: str, rows: int) -> bytes:
    strings = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array([value]))
    table = pa.table({"s": strings, "x": pa.array([1.0] * rows)})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def test_one_long_string_repeated_per_row_is_refused_413() -> None:
    body = _body("a" * (1 << 20), 10_000)
    assert len(body) < 2_000  # 10 GiB of row values
    with pytest.raises(RequestError) as err:
        parse_request(body, PARQUET, SCHEMA, max_rows=10_000, max_decoded_bytes=64 << 20)
    assert err.value.status == 413, err.value.message
    assert "string" in err.value.message


def test_repeated_short_strings_within_the_limit_are_scored() -> None:
    parsed = parse_request(
        _body("north", 1_000), PARQUET, SCHEMA, max_rows=10_000, max_decoded_bytes=64 << 20
    )
    assert parsed.n_rows == 1_000
    assert parsed.columns["s"][999] == "north"
