"""XGBoost and LightGBM models logged by plain MLflow code, through the whole lifecycle.

Each is logged in its native format (no pickle), given its lifecycle contract (XGBoost by
``mlcycle.log_contract`` in the training code, LightGBM by ``mlcycle register --target
--reference`` afterwards), gated, promoted, served by ``mlcycle serve`` (the pyfunc path)
beside ``mlflow models serve`` on the same 200 rows, monitored and batch-scored.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner
from serving_support import Server, Store, split_payload, start_mlcycle, start_stock, wait_ready

from mlcycle.cli import cli
from mlcycle.data import SCENARIO_TARGET, make_scenario
from mlcycle.inference_log import read_inference_log

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("flavors")]

NUMERIC = ["age", "tenure_months", "monthly_charges", "data_usage_gb", "support_calls"]
ROWS = 200


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("flavors"))


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = make_scenario(1500, "reference", seed=11)[[*NUMERIC, SCENARIO_TARGET]].dropna()
    df = df.astype({c: "float64" for c in NUMERIC})
    return df.iloc[:1200].reset_index(drop=True), df.iloc[1200:].reset_index(drop=True)


def _xgboost_run(train: pd.DataFrame, test: pd.DataFrame, n_estimators: int = 30) -> str:
    """User training code: XGBoost's sklearn API, native format, then ``log_contract``."""
    import mlflow
    import xgboost as xgb
    from mlflow.models import infer_signature

    import mlcycle

    X, y = train[NUMERIC], train[SCENARIO_TARGET]
    model = xgb.XGBClassifier(n_estimators=n_estimators, max_depth=3, n_jobs=1).fit(X, y)
    with mlflow.start_run() as run:
        info = mlflow.xgboost.log_model(
            model,
            name="model",
            signature=infer_signature(X, model.predict(X)),
            model_format="json",
            pip_requirements=[f"xgboost=={xgb.__version__}"],
        )
        mlcycle.log_contract(info, train, test, target=SCENARIO_TARGET)
    return run.info.run_id


def _lightgbm_run(train: pd.DataFrame, rounds: int = 30) -> str:
    """Plain MLflow code: a native LightGBM Booster (regression on monthly charges)."""
    import lightgbm as lgb
    import mlflow
    from mlflow.models import infer_signature

    X = train[[c for c in NUMERIC if c != "monthly_charges"]]
    booster = lgb.train(
        {"objective": "regression", "verbose": -1, "num_threads": 1},
        lgb.Dataset(X, train["monthly_charges"]),
        num_boost_round=rounds,
    )
    with mlflow.start_run() as run:
        mlflow.lightgbm.log_model(
            booster,
            name="model",
            signature=infer_signature(X, booster.predict(X)),
            pip_requirements=[f"lightgbm=={lgb.__version__}"],
        )
    return run.info.run_id


def _cli(*args: str) -> Any:
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def champions(store: Store, frames: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, list[str]]:
    """Both models registered and promoted; the CLI output of each step, per flavor."""
    train, test = frames
    reg = train.drop(columns=[SCENARIO_TARGET])
    out: dict[str, list[str]] = {}
    with store.active():
        pytest.importorskip("xgboost")
        pytest.importorskip("lightgbm")
        xgb_run = _xgboost_run(train, test)
        out["xgb"] = [
            _cli("register", "--run-id", xgb_run, "--name", "xgb").output,
            _cli("promote", "xgb", "--min-score", "0.6").output,
        ]
        lgb_run = _lightgbm_run(train)
        reg.to_parquet(store.root / "lgb-ref.parquet", index=False)
        test.drop(columns=[SCENARIO_TARGET]).to_parquet(store.root / "lgb-eval.parquet")
        out["lgb"] = [
            _cli(
                "register", "--run-id", lgb_run, "--name", "lgb", "--target", "monthly_charges",
                "--reference", str(store.root / "lgb-ref.parquet"),
                "--eval-data", str(store.root / "lgb-eval.parquet"),
            ).output,
            _cli("promote", "lgb", "--metric", "rmse", "--min-score", "100").output,
        ]  # fmt: skip
    return out


@pytest.fixture(scope="module")
def servers(store: Store, champions: dict[str, list[str]]) -> Iterator[dict[str, Server]]:
    started: dict[str, Server] = {}
    try:
        for name in ("xgb", "lgb"):
            uri = f"models:/{name}@champion"
            started[f"stock-{name}"] = start_stock(store, uri, name)
            started[f"mlcycle-{name}"] = start_mlcycle(
                store, uri, name, "--inference-log", str(store.root / "log")
            )
        for server in started.values():
            wait_ready(server)
        yield started
    finally:
        for server in started.values():
            server.stop()


def test_both_flavors_register_and_pass_the_gate(champions: dict[str, list[str]]) -> None:
    for name in ("xgb", "lgb"):
        registered, promoted = champions[name]
        assert f"registered {name} version 1" in registered
        assert "PASS" in promoted and "@champion" in promoted


@pytest.mark.parametrize("name", ["xgb", "lgb"])
def test_mlcycle_serve_predicts_what_mlflow_models_serve_predicts(
    name: str, servers: dict[str, Server], frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, test = frames
    rows = pd.concat([train, test]).head(ROWS)
    features = (
        rows[NUMERIC] if name == "xgb" else rows.drop(columns=[SCENARIO_TARGET, "monthly_charges"])
    )
    body = split_payload(features.reset_index(drop=True))
    got = httpx.post(servers[f"mlcycle-{name}"].url + "/invocations", json=body, timeout=60)
    want = httpx.post(servers[f"stock-{name}"].url + "/invocations", json=body, timeout=60)
    assert got.status_code == want.status_code == 200, got.text[:300]
    assert got.json()["predictions"] == want.json()["predictions"]
    assert len(got.json()["predictions"]) == ROWS
    # Same protocol validation: a missing column is a 400 on both.
    bad = split_payload(features.iloc[:2, 1:].reset_index(drop=True))
    assert httpx.post(servers[f"mlcycle-{name}"].url + "/invocations", json=bad).status_code == 400
    metrics = httpx.get(servers[f"mlcycle-{name}"].url + "/metrics", timeout=10)
    assert metrics.status_code == 200


@pytest.mark.parametrize("name", ["xgb", "lgb"])
def test_monitor_and_batch_predict_take_the_native_flavor(
    name: str, store: Store, champions: dict[str, list[str]], frames: Any, tmp_path: Path
) -> None:
    _, test = frames
    features = (
        test[NUMERIC] if name == "xgb" else test.drop(columns=[SCENARIO_TARGET, "monthly_charges"])
    )
    current = tmp_path / "current.parquet"
    features.to_parquet(current, index=False)
    with store.active():
        res = _cli(
            "monitor", "--model", name, "--current", str(current), "--output", str(tmp_path / "r")
        )
        assert "status=" in res.output
        out = tmp_path / "scored.parquet"
        _cli(
            "predict",
            "--model",
            f"models:/{name}@champion",
            "--input",
            str(current),
            "--output",
            str(out),
        )
    scored = pd.read_parquet(out)
    assert len(scored) == len(features) and "prediction" in scored.columns


def _features(name: str, rows: pd.DataFrame) -> pd.DataFrame:
    cols = NUMERIC if name.startswith("xgb") else [c for c in NUMERIC if c != "monthly_charges"]
    return rows[cols].reset_index(drop=True)


@pytest.fixture(scope="module")
def swaps(store: Store, frames: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, list[Any]]:
    """Per flavor, a model of its own: version 1 @champion, a different version 2 @challenger.

    Returns each name's predictions of both versions on the first rows (pyfunc, in process).
    """
    import mlflow

    train, test = frames
    ref = store.root / "swap-ref.parquet"
    train.drop(columns=[SCENARIO_TARGET]).to_parquet(ref, index=False)
    adopt = ["--target", "monthly_charges", "--reference", str(ref)]
    flipped = train.assign(**{SCENARIO_TARGET: 1 - train[SCENARIO_TARGET]})
    out: dict[str, list[Any]] = {}
    with store.active():
        pytest.importorskip("xgboost")
        pytest.importorskip("lightgbm")
        runs = {
            # Version 2 learns the opposite labels: its predictions differ on every row.
            "xgb_swap": (_xgboost_run(train, test), _xgboost_run(flipped, test), []),
            "lgb_swap": (_lightgbm_run(train, 30), _lightgbm_run(train, 3), adopt),
        }
        rows = _features("xgb", test.head(ROWS))
        for name, (first, second, extra) in runs.items():
            _cli("register", "--run-id", first, "--name", name, *extra)
            _cli("promote", name, "--force", "--reason", "first champion")
            _cli("register", "--run-id", second, "--name", name, *extra)
            features = _features(name, rows)
            out[name] = [
                list(mlflow.pyfunc.load_model(f"models:/{name}/{v}").predict(features))
                for v in (1, 2)
            ]
            assert out[name][0] != out[name][1], "the two versions must predict differently"
    return out


def _post(server: Server, features: pd.DataFrame) -> httpx.Response:
    r = httpx.post(server.url + "/invocations", json=split_payload(features), timeout=60)
    assert r.status_code == 200, r.text[:300]
    return r


def _close(a: list[Any], b: list[Any]) -> bool:
    if len(a) != len(b):
        return False
    return all(abs(float(x) - float(y)) < 1e-6 for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name", ["xgb_swap", "lgb_swap"])
def test_a_boosted_champion_shadows_its_challenger_and_hot_reloads_on_promotion(
    name: str, store: Store, swaps: dict[str, list[Any]], frames: Any, tmp_path: Path
) -> None:
    _, test = frames
    features = _features(name, test.head(ROWS))
    v1, v2 = swaps[name]
    log_root = tmp_path / "ilog"
    server = start_mlcycle(
        store, f"models:/{name}@champion", name, "--shadow", "--reload-interval", "0.3",
        "--inference-log", str(log_root),
    )  # fmt: skip
    try:
        wait_ready(server, "/ready")
        before = _post(server, features)
        assert before.headers["x-model-version"] == "1"
        assert _close(before.json()["predictions"], v1)
        with store.active():
            _cli("promote", name, "--force", "--reason", "hot reload test")
        deadline = time.monotonic() + 90
        after = _post(server, features)
        while after.headers["x-model-version"] != "2" and time.monotonic() < deadline:
            time.sleep(0.3)
            after = _post(server, features)
        assert after.headers["x-model-version"] == "2", server.log.read_text()[-2000:]
        assert _close(after.json()["predictions"], v2)
    finally:
        server.stop()
    # SIGTERM drains the log: the challenger was scored in shadow on the first request.
    df = read_inference_log(str(log_root), name, role=None)
    shadow = df[df["role"] == "shadow"]
    assert len(shadow) >= ROWS, df["role"].value_counts().to_dict()
    assert set(shadow["model_version"].astype(str)) >= {"2"}
    champion = df[df["role"] == "champion"]
    assert {"1", "2"} <= set(champion["model_version"].astype(str))
