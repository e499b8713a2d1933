"""The scoring protocol as pure functions: every payload format, CSV, params and each refusal."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from mlcycle.serve import protocol as P
from mlcycle.serve.protocol import Column, InputSchema, RequestError

SCHEMA = InputSchema(
    (
        Column("age", "long"),
        Column("charges", "double", allow_missing=True),
        Column("usage", "double"),
        Column("plan", "string", allow_missing=True),
    )
)
ROWS = [
    {"age": 40, "charges": 70.5, "usage": 1.0, "plan": "basic"},
    {"age": 31, "charges": None, "usage": 2.5, "plan": None},
]
JSON = "application/json"


def parse(doc: object, content_type: str = JSON, max_rows: int | None = None) -> P.ParsedRequest:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return P.parse_request(body, content_type, SCHEMA, max_rows)


def refused(doc: object, content_type: str = JSON, max_rows: int | None = None) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse(doc, content_type, max_rows)
    return info.value


def assert_rows(parsed: P.ParsedRequest) -> None:
    assert parsed.n_rows == 2
    assert parsed.columns["age"].dtype == np.int64
    assert parsed.columns["age"].tolist() == [40, 31]
    assert parsed.columns["charges"].dtype == np.float64
    assert parsed.columns["charges"][0] == 70.5 and np.isnan(parsed.columns["charges"][1])
    assert parsed.columns["plan"].tolist() == ["basic", None]
    assert list(parsed.columns) == list(SCHEMA.names)


@pytest.mark.parametrize(
    "doc",
    [
        {"dataframe_records": ROWS},
        {"dataframe_split": {"columns": list(ROWS[0]), "data": [list(r.values()) for r in ROWS]}},
        {
            "dataframe_split": {
                "columns": list(ROWS[0]),
                "data": [list(r.values()) for r in ROWS],
                "index": [7, 8],
            }
        },
        {"instances": ROWS},
        {"inputs": ROWS},
        {"inputs": {k: [r[k] for r in ROWS] for k in ROWS[0]}},
        {"instances": ROWS, "extra": 1},
    ],
    ids=["records", "split", "split_index", "instances", "inputs", "columnar", "extra_key"],
)
def test_every_payload_format_parses_to_the_same_columns(doc: dict) -> None:
    assert_rows(parse(doc))


def test_params_are_accepted_and_returned() -> None:
    assert parse({"dataframe_records": ROWS, "params": {"k": 1}}).params == {"k": 1}


@pytest.mark.parametrize("params", [[1], "predict_proba", 3])
def test_params_that_are_not_a_dictionary_are_ignored_as_mlflow_does(params: object) -> None:
    parsed = parse({"dataframe_records": ROWS, "params": params})
    assert parsed.params is None
    assert_rows(parsed)


def test_dataframe_split_without_columns_is_missing_inputs_as_in_mlflow() -> None:
    err = refused({"dataframe_split": {"data": [list(r.values()) for r in ROWS]}})
    assert err.status == 400 and err.error_code == "INVALID_PARAMETER_VALUE"
    assert "missing inputs" in err.message and "'columns'" in err.message


@pytest.mark.parametrize("index", [[1], [1, 2, 3], 7])
def test_dataframe_split_index_must_match_the_rows(index: object) -> None:
    split = {"columns": list(ROWS[0]), "data": [list(r.values()) for r in ROWS], "index": index}
    err = refused({"dataframe_split": split})
    assert err.status == 400 and err.error_code == "BAD_REQUEST"
    assert "length of index" in err.message


def test_one_row_with_a_longer_index_is_refused_not_repeated() -> None:
    # pandas (and so MLflow) would score the one row once per index entry.
    split = {"columns": list(ROWS[0]), "data": [list(ROWS[0].values())], "index": [1, 2, 3]}
    assert refused({"dataframe_split": split}).status == 400


@pytest.mark.parametrize(
    ("params", "classifier", "method"),
    [(None, False, "predict"), ({}, True, "predict"), ({"predict_method": "predict"}, False,
     "predict"), ({"predict_method": "predict_proba"}, True, "predict_proba")],
)  # fmt: skip
def test_predict_method_is_read_from_params(
    params: dict | None, classifier: bool, method: str
) -> None:
    assert P.predict_method(params, classifier) == method


def test_unknown_predict_method_names_the_allowed_ones() -> None:
    with pytest.raises(RequestError) as info:
        P.predict_method({"predict_method": "predict_log_proba"}, True)
    err = info.value
    assert err.status == 400 and err.error_code == "INVALID_PARAMETER_VALUE"
    assert "predict, predict_proba" in err.message and "predict_log_proba" in err.message


def test_predict_proba_of_a_regressor_is_refused() -> None:
    with pytest.raises(RequestError) as info:
        P.predict_method({"predict_method": "predict_proba"}, False)
    assert info.value.status == 400 and "classifier" in info.value.message


def test_probabilities_body_is_keyed_by_class_name() -> None:
    body = P.probabilities_body(np.array([[0.25, 0.75], [1.0, 0.0]]), [0, 1])
    assert orjson.loads(body) == {"predictions": [{"0": 0.25, "1": 0.75}, {"0": 1.0, "1": 0.0}]}


def test_csv_with_empty_cells_parses_like_json() -> None:
    body = b"age,charges,usage,plan\n40,70.5,1.0,basic\n31,,2.5,\n"
    assert_rows(parse(body, "text/csv; charset=utf-8"))


def test_parquet_bodies_parse_like_json() -> None:
    import io

    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame(ROWS).to_parquet(buf)
    assert_rows(parse(buf.getvalue(), "application/vnd.apache.parquet"))


def test_extra_columns_are_ignored() -> None:
    parsed = parse({"dataframe_records": [dict(r, extra=1) for r in ROWS]})
    assert "extra" not in parsed.columns


def test_lossless_values_are_converted() -> None:
    parsed = parse({"dataframe_records": [{"age": 40.0, "charges": 3, "usage": "2.5", "plan": 5}]})
    assert parsed.columns["age"].tolist() == [40]
    assert parsed.columns["charges"].tolist() == [3.0]
    assert parsed.columns["usage"].tolist() == [2.5]
    assert parsed.columns["plan"].tolist() == ["5"]


def test_a_lossy_cast_into_a_long_column_is_refused_naming_the_column() -> None:
    err = refused({"dataframe_records": [dict(ROWS[0], age=1.5)]})
    assert err.status == 400 and err.error_code == "BAD_REQUEST"
    assert "'age'" in err.message and "lossy" in err.message


def test_integer_overflow_is_refused_naming_the_column() -> None:
    err = refused({"dataframe_records": [dict(ROWS[0], age=2**63)]})
    assert err.status == 400 and "'age'" in err.message and "overflow" in err.message
    err = refused({"dataframe_records": [dict(ROWS[0], age=10**30)]})
    assert "'age'" in err.message


def test_integers_far_below_int64_and_huge_floats_are_refused() -> None:
    body = json.dumps({"dataframe_records": [dict(ROWS[0], age=0)]}).encode()
    err = refused(body.replace(b'"age": 0', b'"age": -99999999999999999999'))
    assert "'age'" in err.message
    err = refused({"dataframe_records": [dict(ROWS[0], age=1e17)]})
    assert "'age'" in err.message and "overflow" in err.message


def test_a_utf8_body_with_a_byte_order_mark_is_scored_as_mlflow_does() -> None:
    assert_rows(parse(b"\xef\xbb\xbf" + json.dumps({"dataframe_records": ROWS}).encode()))


def test_records_missing_every_input_name_the_unknown_keys() -> None:
    err = refused({"dataframe_records": [{"nope": 1}, {"other": 2}]})
    assert err.error_code == "INVALID_PARAMETER_VALUE" and "'nope'" in err.message


def test_infinity_tokens_are_refused_everywhere() -> None:
    body = json.dumps({"dataframe_records": [dict(ROWS[0], charges=float("inf"))]}).encode()
    assert b"Infinity" in body
    err = refused(body)
    assert err.status == 400 and "'charges'" in err.message and "infinite" in err.message


def test_nan_tokens_are_refused_where_the_schema_does_not_allow_missing_values() -> None:
    body = json.dumps({"dataframe_records": [dict(ROWS[0], usage=float("nan"))]}).encode()
    assert b"NaN" in body
    err = refused(body)
    assert err.status == 400 and "'usage'" in err.message


def test_nan_tokens_are_missing_values_where_the_schema_allows_them() -> None:
    body = json.dumps({"dataframe_records": [dict(ROWS[0], charges=float("nan"))]}).encode()
    assert np.isnan(parse(body).columns["charges"][0])


def test_a_missing_value_in_an_integer_column_is_refused() -> None:
    err = refused({"dataframe_records": [dict(ROWS[0], age=None)]})
    assert err.status == 400 and "'age'" in err.message


def test_a_missing_string_where_not_allowed_is_refused() -> None:
    schema = InputSchema((Column("plan", "string"),))
    with pytest.raises(RequestError, match="'plan'"):
        P.parse_request(b'{"inputs": {"plan": [null]}}', JSON, schema)


def test_a_missing_column_is_invalid_parameter_value() -> None:
    err = refused({"dataframe_records": [{k: v for k, v in ROWS[0].items() if k != "age"}]})
    assert err.status == 400 and err.error_code == "INVALID_PARAMETER_VALUE"
    assert "age" in err.message


def test_too_many_rows_is_refused_before_conversion() -> None:
    err = refused({"dataframe_records": ROWS * 3}, max_rows=5)
    assert err.status == 413 and "6 rows" in err.message


def test_no_rows_is_invalid_parameter_value() -> None:
    assert refused({"dataframe_records": []}).error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    "doc",
    [{"rows": ROWS}, {"dataframe_records": ROWS, "instances": ROWS}, ROWS, 3, b'{"x": [',
     {"dataframe_split": ROWS}, {"dataframe_records": {"a": 1}}, {"dataframe_split": {"rows": []}},
     {"dataframe_records": [1, 2]}],
    ids=["unknown", "two_formats", "list", "scalar", "malformed", "split_list", "records_dict",
         "split_keys", "records_scalars"],
)  # fmt: skip
def test_malformed_requests_are_bad_request(doc: object) -> None:
    err = refused(doc)
    assert err.status == 400 and err.error_code == "BAD_REQUEST"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/json; charset=latin-1", "application/json; foo=bar", None],
)
def test_unsupported_content_types_are_415_plain_text(content_type: str | None) -> None:
    err = refused({"dataframe_records": ROWS}, content_type)  # type: ignore[arg-type]
    _body, status, mime = P.error_response(err)
    assert status == 415 and mime == "text/plain"


def test_error_bodies_never_echo_more_than_a_short_prefix_of_the_input() -> None:
    secret = "x" * 10_000
    for doc in (
        {"dataframe_records": [dict(ROWS[0], usage=secret)]},
        {"dataframe_records": [dict(ROWS[0], age=secret)]},
        {secret: 1},
        secret.encode(),
        {"dataframe_records": [dict(ROWS[0], plan={"k": secret})]},
    ):
        body, status, _ = P.error_response(refused(doc))
        assert status == 400
        assert len(body) < 400, body[:200]
        assert "x" * (P.ECHO_CHARS + 1) not in body.decode()


def test_responses_keep_ints_ints_and_floats_floats() -> None:
    assert orjson.loads(P.predictions_body(np.array([0, 1], dtype=np.int64))) == {
        "predictions": [0, 1]
    }
    doc = orjson.loads(P.predictions_body(np.array([0.25, 2.0])))
    assert doc == {"predictions": [0.25, 2.0]} and isinstance(doc["predictions"][1], float)
    assert orjson.loads(P.predictions_body(np.array(["a", "b"], dtype=object))) == {
        "predictions": ["a", "b"]
    }


def test_invocations_returns_body_status_and_mimetype() -> None:
    body = json.dumps({"dataframe_records": ROWS}).encode()
    out = P.invocations(body, JSON, SCHEMA, lambda cols: cols["age"] * 2)
    assert out == (b'{"predictions":[80,62]}', 200, JSON)
    body, status, mime = P.invocations(b"[]", JSON, SCHEMA, lambda cols: cols["age"])
    assert status == 400 and orjson.loads(body)["error_code"] == "BAD_REQUEST" and mime == JSON
