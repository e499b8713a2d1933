"""Protocol parity: `mlcycle serve` answers MLflow's scoring protocol as `mlflow models serve` does.

One corpus of requests — every payload format, CSV, content-type variants and bad requests —
goes to both servers on the same registered model; status codes, predictions and error codes
must be identical. Two models: a one-hot + logistic-regression classifier (strings, missing
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
