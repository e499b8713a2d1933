"""Protocol parity: `mlcycle serve` answers MLflow's scoring protocol as `mlflow models serve` does.

One corpus of requests — every payload format, CSV, content-type variants and bad requests,
with cases built after MLflow's own ``tests/pyfunc/test_scoring_server.py`` — goes to both
servers on the same registered model; status codes, predictions and error codes must be
identical. ``/version`` must be what MLflow's ``ScoringServerClient.get_version()`` reads. The
one deliberate difference in what a valid request returns (``predict_proba``) is pinned too.
Two models: a one-hot + logistic-regression classifier (strings, missing
values, integer labels) and a regression (float predictions).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest
from serving_support import (
    Registered,
    Server,
    Store,
    start_mlcycle,
    start_stock,
    train_and_register,
    wait_ready,
)

from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serving_parity")]

MODELS = ("parity_churn", "parity_diabetes")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("serving-parity"))


@pytest.fixture(scope="module")
def registered(store: Store) -> dict[str, Registered]:
    from sklearn.datasets import load_diabetes

    churn = make_scenario(1500, period="reference", seed=5)
    return {
        "parity_churn": train_and_register(
            store, "parity_churn", churn, SCENARIO_TARGET, "linear", time_column=SCENARIO_TIME
        ),
        "parity_diabetes": train_and_register(
            store, "parity_diabetes", load_diabetes(as_frame=True).frame, "target", "linear"
        ),
    }


@pytest.fixture(scope="module")
def pairs(
    store: Store, registered: dict[str, Registered]
) -> Iterator[dict[str, tuple[Server, Server]]]:
    started: dict[str, tuple[Server, Server]] = {}
    try:
        for name in registered:
            uri = f"models:/{name}@champion"
            started[name] = (start_stock(store, uri, name), start_mlcycle(store, uri, name))
        for stock, ours in started.values():
            wait_ready(stock, "/ping")
            wait_ready(ours, "/ready")
        yield started
    finally:
        for stock, ours in started.values():
            stock.stop()
            ours.stop()


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def corpus(features: pd.DataFrame) -> list[tuple[str, bytes, str]]:
    """(case id, body, content type) — the same requests for both servers."""
    rows = features.head(8)
    recs = _records(rows)
    split = {"columns": list(rows.columns), "data": [list(r.values()) for r in recs]}
    columnar = {c: [r[c] for r in recs] for c in rows.columns}
    one_missing = [{k: v for k, v in r.items() if k != rows.columns[0]} for r in recs]
    first = {**split, "data": split["data"][:1]}
    indexed = {**split, "index": list(range(10, 10 + len(recs)))}
    js, csv, js_utf8 = "application/json", "text/csv", "application/json; charset=utf-8"
    empty = {"data": []}
    return [
        ("dataframe_split", _json({"dataframe_split": split}), js),
        ("dataframe_split_one_row", _json({"dataframe_split": first}), js),
        ("dataframe_split_with_index", _json({"dataframe_split": indexed}), js),
        ("dataframe_records", _json({"dataframe_records": recs}), js),
        ("instances", _json({"instances": recs}), js),
        ("inputs_records", _json({"inputs": recs}), js),
        ("inputs_columnar", _json({"inputs": columnar}), js),
        ("json_with_charset", _json({"dataframe_records": recs}), js_utf8),
        ("empty_params", _json({"dataframe_split": split, "params": {}}), js),
        ("csv", rows.to_csv(index=False).encode(), csv),
        ("csv_with_charset", rows.to_csv(index=False).encode(), "text/csv; charset=utf-8"),
        ("bad_unknown_format", _json({"rows": recs}), js),
        ("bad_two_formats", _json({"dataframe_records": recs, "instances": recs}), js),
        ("bad_missing_column", _json({"dataframe_records": one_missing}), js),
        ("bad_malformed_json", b'{"dataframe_records": [', js),
        ("bad_wrong_content_type", _json({"dataframe_records": recs}), "text/plain"),
        # Cases built after MLflow's own tests/pyfunc/test_scoring_server.py:
        ("bad_not_json", b"this is,,,, not valid json", js),
        ("bad_json_number", _json(1), js),
        ("bad_json_string", _json("1"), js),
        ("bad_json_list", _json([1]), js),
        ("bad_records_and_split", _json({"dataframe_records": [], "dataframe_split": empty}), js),
        ("bad_split_given_records", _json({"dataframe_split": recs}), js),
        ("bad_records_given_split", _json({"dataframe_records": split}), js),
        ("bad_split_index_shorter", _json({"dataframe_split": {**split, "index": [1, 2]}}), js),
        ("bad_split_without_columns", _json({"dataframe_split": {"data": split["data"]}}), js),
        ("bad_empty_csv", b"", csv),
        ("bad_unsupported_content_type", _json({"dataframe_split": split}), "not_supported"),
        ("bad_content_type_param", _json({"dataframe_split": split}), js + "; something=something"),
        ("json_charset_upper", _json({"dataframe_split": split}), js + "; charset=UTF-8"),
        ("params_unknown_key", _json({"dataframe_split": split, "params": {"unknown": 1}}), js),
        ("params_list", _json({"dataframe_split": split, "params": [1, 2]}), js),
        ("params_string", _json({"dataframe_split": split, "params": "predict_proba"}), js),
        ("instances_extra_key", _json({"instances": recs, "extra": 1}), js),
        ("split_extra_key", _json({"dataframe_split": split, "extra": 1}), js),
    ]  # fmt: skip


CASES = [case for case, _, _ in corpus(pd.DataFrame({"x": [1.0]}))]


def _send(server: Server, body: bytes, content_type: str) -> httpx.Response:
    headers = {"Content-Type": content_type}
    return httpx.post(server.url + "/invocations", content=body, headers=headers, timeout=60)


def _error_code(resp: httpx.Response) -> str | None:
    try:
        doc = resp.json()
    except ValueError:
        return None
    return doc.get("error_code") if isinstance(doc, dict) else None


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("case", CASES)
def test_mlcycle_serve_answers_like_mlflow_models_serve(
    case: str,
    name: str,
    registered: dict[str, Registered],
    pairs: dict[str, tuple[Server, Server]],
) -> None:
    body, content_type = {c: (b, t) for c, b, t in corpus(registered[name].features)}[case]
    stock, ours = pairs[name]
    want, got = _send(stock, body, content_type), _send(ours, body, content_type)
    assert got.status_code == want.status_code, (want.text[:300], got.text[:300])
    if want.status_code == 200:
        assert got.json() == want.json()
    elif _error_code(want) is not None:
        assert _error_code(got) == _error_code(want), (want.text[:300], got.text[:300])
    if case.startswith("bad_"):
        assert want.status_code in (400, 415)


@pytest.mark.parametrize("name", MODELS)
def test_version_is_what_mlflows_own_client_reads(
    name: str, pairs: dict[str, tuple[Server, Server]]
) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient
    from mlflow.version import VERSION

    for server in pairs[name]:
        assert ScoringServerClient("127.0.0.1", server.port).get_version() == VERSION


def test_predict_proba_is_a_documented_difference(
    registered: dict[str, Registered], pairs: dict[str, tuple[Server, Server]]
) -> None:
    """Stock ignores ``predict_method`` for sklearn models (labels); mlcycle answers scores
    whose most likely class is stock's label (docs/serving.md, "Probabilities")."""
    features = registered["parity_churn"].features.head(8)
    body = {"dataframe_records": _records(features), "params": {"predict_method": "predict_proba"}}
    stock, ours = pairs["parity_churn"]
    labels = _send(stock, _json(body), "application/json").json()["predictions"]
    scores = _send(ours, _json(body), "application/json").json()["predictions"]
    assert all(isinstance(v, int) for v in labels)
    assert [int(max(row, key=lambda k: row[k])) for row in scores] == labels
    regressor = {**body, "dataframe_records": _records(registered["parity_diabetes"].features)}
    stock, ours = pairs["parity_diabetes"]
    assert _send(stock, _json(regressor), "application/json").status_code == 200
    refused = _send(ours, _json(regressor), "application/json")
    assert refused.status_code == 400 and _error_code(refused) == "INVALID_PARAMETER_VALUE"
