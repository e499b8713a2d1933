"""Attacks on request parsing (issue 10, items 3, 4 and 8): each body is what an attacker sent.

Cost is checked by work done, never by time: Python allocations (tracemalloc) for the
distinct-key body, and, for the Parquet bomb, a body whose data pages are destroyed so that
any attempt to decode them fails: only a footer check can answer 413.
"""

from __future__ import annotations

import io
import json
import tracemalloc

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle.serve.protocol import Column, InputSchema, RequestError, parse_request

SCHEMA = InputSchema((Column("age", "long"), Column("score", "double"), Column("small", "integer")))
JSON = "application/json"
PARQUET = "application/vnd.apache.parquet"


def refused(body: bytes, content_type: str = JSON, **limits: int) -> RequestError:
    with pytest.raises(RequestError) as err:
        parse_request(body, content_type, SCHEMA, **limits)
    return err.value


# --------------------------------------------------------------------------- item 3


def test_records_with_a_new_key_each_cost_memory_linear_in_the_body() -> None:
    # [{"k0":0},{"k1":0},...]: today's parser builds one n-long column per key, n*n cells
    # (16,000 records: +1.95 GB). 4,000 records keep the failing run at ~130 MB.
    n = 4000
    body = json.dumps({"dataframe_records": [{f"k{i}": 0} for i in range(n)]}).encode()
    tracemalloc.start()
    try:
        err = refused(body, max_rows=10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.status == 400
    assert "'k0'" in err.message and "age" in err.message
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB for a {len(body)} byte body"


def test_the_row_limit_is_checked_before_columns_are_built() -> None:
    n = 3000
    body = json.dumps({"dataframe_records": [{f"k{i}": 0} for i in range(n)]}).encode()
    tracemalloc.start()
    try:
        err = refused(body, max_rows=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.status == 413 and "3000 rows" in err.message
    assert peak < 8 * 1024 * 1024


def test_a_csv_header_of_many_names_over_short_rows_is_not_padded_to_a_table() -> None:
    # 3,000 names over 3,000 one-field rows: pandas pads 9M cells (72 MB) unless only the
    # signature's columns are read.
    header = ",".join(["age", "score", "small"] + [f"c{i}" for i in range(3000)])
    body = (header + "\n" + "1,2.0,3\n" * 3000).encode()
    tracemalloc.start()
    try:
        parsed = parse_request(body, "text/csv", SCHEMA, max_rows=10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parsed.n_rows == 3000 and list(parsed.columns) == ["age", "score", "small"]
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


# --------------------------------------------------------------------------- item 4


def _parquet(frame: pd.DataFrame, **kw: object) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf, **kw)  # type: ignore[arg-type]
    return buf.getvalue()


def _destroy_pages(body: bytes) -> bytes:
    """Overwrite everything between the leading magic and the footer with garbage."""
    footer_len = int.from_bytes(body[-8:-4], "little")
    end = len(body) - 8 - footer_len
    return body[:4] + bytes([0xFF]) * (end - 4) + body[end:]


def test_a_parquet_bomb_is_refused_from_its_footer_without_decoding_pages() -> None:
    rows = 2_000_000  # compresses to a few KB; the attack used 50M rows in 218 KB
    frame = pd.DataFrame(
        {
            "age": np.zeros(rows, np.int64),
            "score": np.zeros(rows),
            "small": np.zeros(rows, np.int32),
        }
    )
    body = _parquet(frame, compression="zstd")
    assert len(body) < 200_000
    err = refused(_destroy_pages(body), PARQUET, max_rows=10_000)
    assert err.status == 413, err.message
    assert "2000000 rows" in err.message


def test_parquet_declaring_more_uncompressed_data_than_allowed_is_refused() -> None:
    frame = pd.DataFrame(
        {
            "age": np.arange(5000),
            "score": np.arange(5000.0),
            "small": np.arange(5000, dtype=np.int32),
        }
    )
    body = _destroy_pages(_parquet(frame, compression="zstd"))
    err = refused(body, PARQUET, max_rows=10_000, max_decoded_bytes=20_000)
    assert err.status == 413 and "uncompressed" in err.message


def test_parquet_within_the_limits_is_still_scored() -> None:
    frame = pd.DataFrame({"age": [1, 2], "score": [0.5, 1.5], "small": [3, 4]})
    parsed = parse_request(
        _parquet(frame), PARQUET, SCHEMA, max_rows=10, max_decoded_bytes=1_000_000
    )
    assert parsed.columns["age"].tolist() == [1, 2]
    assert parsed.columns["small"].dtype == np.int32


# --------------------------------------------------------------------------- item 8


def _records_body(**row: object) -> bytes:
    base: dict[str, object] = {"age": 1, "score": 1.0, "small": 1}
    return json.dumps({"dataframe_records": [{**base, **row}]}).encode()


def test_an_integer_just_below_int64_is_refused_not_rounded() -> None:
    # orjson reads -2**63 - 1 as the float -2**63, which used to pass the range check.
    body = _records_body(age=0).replace(b'"age": 0', b'"age": -9223372036854775809')
    err = refused(body)
    assert err.status == 400 and "'age'" in err.message


@pytest.mark.parametrize("column", ["age", "small", "score"])
def test_json_booleans_are_refused_in_numeric_columns(column: str) -> None:
    err = refused(_records_body(**{column: True}))
    assert err.status == 400 and f"'{column}'" in err.message and "boolean" in err.message


def test_booleans_are_refused_in_split_and_columnar_inputs_too() -> None:
    split = {"dataframe_split": {"columns": ["age", "score", "small"], "data": [[1, False, 2]]}}
    assert "'score'" in refused(json.dumps(split).encode()).message
    columnar = {"inputs": {"age": [True], "score": [1.0], "small": [1]}}
    assert "'age'" in refused(json.dumps(columnar).encode()).message


@pytest.mark.parametrize("content_type", [JSON, JSON + "; charset=utf-8"])
def test_a_utf16_body_labelled_utf8_is_refused(content_type: str) -> None:
    body = _records_body().decode().encode("utf-16")  # with a byte-order mark
    err = refused(body, content_type)
    assert err.status == 400 and "UTF-8" in err.message
