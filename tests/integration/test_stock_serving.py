"""The stock path: every kind of model mlcycle logs is served by `mlflow models serve`.

One module-wide store holds three registered models (one-hot + logistic regression, random
forest, ridge regression on sklearn's diabetes data); one stock server per model URI is
started in parallel, because each takes seconds to come up.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest
from serving_support import (
    Registered,
    Server,
    Store,
    reference_predict,
    split_payload,
    start_stock,
    train_and_register,
    wait_ready,
)

from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("stock_serving")]

MODELS = ("churn_linear", "churn_rf", "diabetes")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("stock-serving"))


@pytest.fixture(scope="module")
def registered(store: Store) -> dict[str, Registered]:
    from sklearn.datasets import load_diabetes

    churn = make_scenario(1500, period="reference", seed=3)
    diabetes = load_diabetes(as_frame=True).frame
    return {
        "churn_linear": train_and_register(
            store, "churn_linear", churn, SCENARIO_TARGET, "linear", time_column=SCENARIO_TIME
        ),
        "churn_rf": train_and_register(
            store,
            "churn_rf",
            churn,
            SCENARIO_TARGET,
            "random_forest",
            time_column=SCENARIO_TIME,
            params={"n_estimators": "20"},
        ),
        "diabetes": train_and_register(store, "diabetes", diabetes, "target", "linear"),
    }


@pytest.fixture(scope="module")
def servers(store: Store, registered: dict[str, Registered]) -> Iterator[dict[str, Server]]:
    uris = {name: f"models:/{name}@champion" for name in MODELS}
    uris["churn_linear/Production"] = "models:/churn_linear/Production"
    started: dict[str, Server] = {}
    try:
        for key, uri in uris.items():
            started[key] = start_stock(store, uri, key.replace("/", "-"))
        for server in started.values():
            wait_ready(server)
        yield started
    finally:
        for server in started.values():
            server.stop()


def _predictions(server: Server, body: dict[str, Any]) -> list[Any]:
    resp = httpx.post(server.url + "/invocations", json=body, timeout=60)
    assert resp.status_code == 200, resp.text[:500]
    assert resp.headers["content-type"].startswith("application/json")
    return resp.json()["predictions"]


@pytest.mark.parametrize("name", MODELS)
def test_stock_server_predicts_what_pyfunc_predicts_for_the_champion(
    name: str, store: Store, registered: dict[str, Registered], servers: dict[str, Server]
) -> None:
    features = registered[name].features
    expected = reference_predict(store, f"models:/{name}@champion", features)
    got = _predictions(servers[name], split_payload(features))
    assert got == expected


def test_stock_server_follows_the_production_stage_uri(
    store: Store, registered: dict[str, Registered], servers: dict[str, Server]
) -> None:
    features = registered["churn_linear"].features
    expected = reference_predict(store, "models:/churn_linear/Production", features)
    got = _predictions(servers["churn_linear/Production"], split_payload(features))
    assert got == expected


def test_stock_server_accepts_records_and_csv_for_the_onehot_pipeline(
    store: Store, registered: dict[str, Registered], servers: dict[str, Server]
) -> None:
    features = registered["churn_linear"].features
    expected = reference_predict(store, "models:/churn_linear@champion", features)
    server = servers["churn_linear"]
    records = features.astype(object).where(features.notna(), None).to_dict(orient="records")
    assert _predictions(server, {"dataframe_records": records}) == expected
    resp = httpx.post(
        server.url + "/invocations",
        content=features.to_csv(index=False),
        headers={"Content-Type": "text/csv"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text[:500]
    assert resp.json()["predictions"] == expected


def test_stock_server_reports_regression_predictions_as_floats(
    registered: dict[str, Registered], servers: dict[str, Server]
) -> None:
    got = _predictions(servers["diabetes"], split_payload(registered["diabetes"].features))
    assert all(isinstance(v, float) for v in got)
    assert pd.Series(got).between(0, 400).all()
