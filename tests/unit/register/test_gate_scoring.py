"""The gate scores with training's metrics (mlcycle.model_metrics): the numbers sklearn gives
on the same split, under mlcycle's names, without mlflow.models.evaluate or matplotlib."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mlcycle import contract
from mlcycle import register as reg
from mlcycle.data import SCENARIO_TARGET
from mlcycle.errors import GateRejected
from mlcycle.register import audit
from mlcycle.register.types import AUDIT_EXPERIMENT

NAME = "churn"
NUMERIC = ["age", "tenure_months", "monthly_charges", "data_usage_gb", "support_calls"]

# Any `import matplotlib` in the process raises ImportError; then the real CLI runs.
RUNNER = textwrap.dedent(
    """
    import sys

    sys.modules["matplotlib"] = None
    from mlcycle.cli import cli

    try:
        cli.main(sys.argv[1:], prog_name="mlcycle")
    except SystemExit as exc:
        loaded = sorted(m for m in sys.modules if m.startswith("matplotlib."))
        print("matplotlib modules:", loaded)
        raise
    """
)


def _split(client: Any, name: str, version: str) -> tuple[Any, pd.DataFrame, pd.Series]:
    """The raw sklearn model of a version and the held-out split it was trained beside."""
    from mlcycle import trust

    mv = client.get_model_version(name, version)
    model = trust.load_pyfunc(f"models:/{name}/{version}", f"v{version}")
    target = mv.tags[contract.TAG_TARGET]
    frame = contract.load_eval_split(client, mv.run_id, "v").dropna(subset=[target])
    inputs = model.metadata.get_input_schema().input_names()
    return model.get_raw_model(), frame[inputs], frame[target]


def _binary_scores(raw: Any, X: pd.DataFrame, y: pd.Series, pos: Any = 1) -> dict[str, float]:
    proba = raw.predict_proba(X)
    col = list(raw.classes_).index(pos)
    pred = raw.predict(X)
    return {
        "accuracy": skm.accuracy_score(y, pred),
        "f1": skm.f1_score(y, pred, pos_label=pos),
        "precision": skm.precision_score(y, pred, pos_label=pos),
        "recall": skm.recall_score(y, pred, pos_label=pos),
        "roc_auc": skm.roc_auc_score(y == pos, proba[:, col]),
        "log_loss": skm.log_loss(y, proba, labels=raw.classes_),
    }


def test_promote_without_matplotlib_scores_what_sklearn_scores_on_the_same_split(
    client: Any, train_run: Callable[..., str], tmp_path: Path
) -> None:
    reg.register(client, train_run(), NAME)
    script = tmp_path / "no_matplotlib.py"
    script.write_text(RUNNER)
    out = subprocess.run(
        [sys.executable, str(script), "promote", NAME, "--min-score", "0.5"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASS" in out.stdout and "@champion" in out.stdout
    assert "matplotlib modules: []" in out.stdout
    assert reg.champion_version(client, NAME) == "1"

    expected = _binary_scores(*_split(client, NAME, "1"))
    (gate_entry,) = [e for e in reg.history(client, NAME) if e.action == "promote"]
    for metric, value in expected.items():
        assert gate_entry.metrics[f"challenger_{metric}"] == pytest.approx(value, abs=1e-9)
    assert gate_entry.score() == ("roc_auc", pytest.approx(expected["roc_auc"], abs=1e-9))
    tag = client.get_model_version(NAME, "1").tags["mlcycle.gate.score"]
    assert tag == f"roc_auc {expected['roc_auc']:.4g}"


def test_the_nested_gate_runs_log_mlcycle_names_and_the_latency(
    client: Any, train_run: Callable[..., str]
) -> None:
    reg.register(client, train_run(), NAME)
    reg.promote(client, NAME, policy=reg.GatePolicy(mode="disabled"))
    reg.register(client, train_run(), NAME)
    decision = reg.gate(client, NAME, policy=reg.GatePolicy(min_improvement=-1.0))
    assert decision.passed, decision.reasons

    exp = client.get_experiment_by_name(AUDIT_EXPERIMENT).experiment_id
    runs = client.search_runs([exp], "tags.`mlcycle.gate.role` = 'challenger'")
    (child,) = runs
    logged = child.data.metrics
    assert set(logged) == {
        "accuracy", "f1", "precision", "recall", "roc_auc", "log_loss", "latency_ms_per_row",
    }  # fmt: skip
    assert logged["roc_auc"] == pytest.approx(decision.challenger_metrics["roc_auc"])
    assert logged["latency_ms_per_row"] > 0
    # Training logged the same number for the same split under the same name.
    run = client.get_run(client.get_model_version(NAME, "2").run_id)
    assert run.data.metrics["test_roc_auc"] == pytest.approx(logged["roc_auc"], abs=1e-9)
    assert not client.list_artifacts(child.info.run_id)  # no evaluator plots


def test_the_contracts_positive_label_is_the_class_f1_and_roc_auc_score(
    client: Any, scenario_frame: pd.DataFrame
) -> None:
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    df = scenario_frame[[*NUMERIC, SCENARIO_TARGET]].dropna()
    train, test = df.iloc[:1500], df.iloc[1500:]
    model = LogisticRegression(max_iter=500).fit(train[NUMERIC], train[SCENARIO_TARGET])
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(train[NUMERIC], model.predict(train[NUMERIC])),
            serialization_format="skops",
            pip_requirements=["scikit-learn", "skops"],
        )
    contract.log_contract(info, train, test, target=SCENARIO_TARGET, pos_label=0)
    reg.register(client, info.run_id, "own")

    decision = reg.gate(client, "own", policy=reg.GatePolicy(metric="f1_score"))
    expected = _binary_scores(model, test[NUMERIC].astype(float), test[SCENARIO_TARGET], pos=0)
    assert decision.passed, decision.reasons
    for metric in ("f1", "precision", "recall", "roc_auc"):
        assert decision.challenger_metrics[metric] == pytest.approx(expected[metric], abs=1e-9)
    # Class 0 is the majority: its F1 is not class 1's.
    assert expected["f1"] != pytest.approx(skm.f1_score(test[SCENARIO_TARGET], model.predict(
        test[NUMERIC]
    )))  # fmt: skip
    assert client.get_model_version("own", "1").tags["mlcycle.gate.score"].startswith("f1 ")


def _train(client: Any, frame: pd.DataFrame, tmp_path: Path, **kw: Any) -> str:
    from mlcycle.train import TrainConfig, train

    cfg = TrainConfig(data=str(tmp_path / "s.csv"), model="linear", onnx=False, plots=False, **kw)
    return train(cfg, client, frame=frame).run_id


def test_a_multiclass_model_gates_on_macro_scores(
    client: Any, scenario_frame: pd.DataFrame, tmp_path: Path
) -> None:
    frame = scenario_frame.drop(columns=[SCENARIO_TARGET])
    run_id = _train(client, frame, tmp_path, target="contract")
    reg.register(client, run_id, "plan")
    decision = reg.gate(client, "plan")
    assert decision.passed, decision.reasons

    raw, X, y = _split(client, "plan", "1")
    proba, pred = raw.predict_proba(X), raw.predict(X)
    got = decision.challenger_metrics
    assert got["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr", labels=raw.classes_), abs=1e-9
    )
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"), abs=1e-9)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=raw.classes_))
    assert client.get_run(run_id).data.metrics["test_roc_auc"] == pytest.approx(got["roc_auc"])


def test_a_regressor_gates_on_rmse_and_the_old_metric_name_still_works(
    client: Any, scenario_frame: pd.DataFrame, tmp_path: Path
) -> None:
    frame = scenario_frame.dropna(subset=["monthly_charges"])
    run_id = _train(client, frame, tmp_path, target="monthly_charges")
    reg.register(client, run_id, "charges")
    policy = reg.GatePolicy(metric="root_mean_squared_error", min_score=1e6)
    reg.promote(client, "charges", policy=policy)

    raw, X, y = _split(client, "charges", "1")
    pred = raw.predict(X)
    (entry,) = reg.history(client, "charges")
    expected = {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "mae": skm.mean_absolute_error(y, pred),
        "mse": skm.mean_squared_error(y, pred),
        "r2": skm.r2_score(y, pred),
    }
    for metric, value in expected.items():
        assert entry.metrics[f"challenger_{metric}"] == pytest.approx(value, rel=1e-9)
    tags = client.get_model_version("charges", "1").tags
    assert tags["mlcycle.gate.score"] == f"rmse {expected['rmse']:.4g}"
    gate_run = client.get_run(tags["mlcycle.gate.audit_run_id"])
    assert gate_run.data.tags["mlcycle.gate.metric"] == "rmse"


def _log_python_model(frame: pd.DataFrame, proba: bool) -> Any:
    import mlflow
    from mlflow.models import infer_signature

    class Threshold(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            score = np.clip(model_input["support_calls"].to_numpy() / 6.0, 0.0, 1.0)
            if (params or {}).get("predict_method") == "predict_proba":
                return pd.DataFrame({"0": 1.0 - score, "1": score})
            return pd.Series((score > 0.5).astype(int))

    params = {"predict_method": "predict"} if proba else None
    with mlflow.start_run():
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=Threshold(),
            signature=infer_signature(frame[NUMERIC], frame[SCENARIO_TARGET], params=params),
            pip_requirements=["mlflow"],
        )


@pytest.mark.parametrize("proba", [True, False], ids=["with-proba", "labels-only"])
def test_a_python_model_gates_on_its_probabilities_or_says_why_it_cannot(
    client: Any, scenario_frame: pd.DataFrame, proba: bool
) -> None:
    df = scenario_frame[[*NUMERIC, SCENARIO_TARGET]].dropna()
    train, test = df.iloc[:1500], df.iloc[1500:]
    info = _log_python_model(train, proba)
    contract.log_contract(info, train, test, target=SCENARIO_TARGET)
    reg.register(client, info.run_id, "custom")
    policy = reg.GatePolicy(allow_pickle=True)

    y = test[SCENARIO_TARGET].to_numpy()
    score = np.clip(test["support_calls"].to_numpy() / 6.0, 0.0, 1.0)
    if proba:
        decision = reg.gate(client, "custom", policy=policy)
        assert decision.passed, decision.reasons
        assert decision.challenger_metrics["roc_auc"] == pytest.approx(
            skm.roc_auc_score(y, score), abs=1e-9
        )
        return
    with pytest.raises(GateRejected) as err:
        reg.promote(client, "custom", policy=policy)
    assert "challenger has no roc_auc: it needs class probabilities and the model returns " in (
        str(err.value)
    )
    assert "gate on accuracy, f1, precision or recall" in str(err.value)
    # Label metrics need no probabilities: the old name of accuracy gates it.
    decision = reg.gate(
        client, "custom", policy=reg.GatePolicy(metric="accuracy_score", allow_pickle=True)
    )
    assert decision.passed, decision.reasons
    assert "roc_auc" not in decision.challenger_metrics
    assert decision.challenger_metrics["accuracy"] == pytest.approx(
        skm.accuracy_score(y, (score > 0.5).astype(int)), abs=1e-9
    )


def test_history_reads_metrics_of_gates_that_used_mlflow_evaluate_under_mlcycle_names(
    client: Any, train_run: Callable[..., str]
) -> None:
    reg.register(client, train_run(), NAME)
    audit.record(
        client,
        NAME,
        "promote",
        to_version="1",
        from_version=None,
        metrics={"challenger_root_mean_squared_error": 2.5, "champion_r2_score": 0.25},
    )
    (entry,) = reg.history(client, NAME)
    assert entry.metrics == {"challenger_rmse": 2.5, "champion_r2": 0.25}
    assert entry.score() == ("rmse", 2.5)


@pytest.mark.parametrize("command", [["gate", NAME], ["promote", NAME], ["loop", "--model", NAME]])
def test_an_unknown_gate_metric_is_a_usage_error_naming_the_metrics(command: list[str]) -> None:
    from click.testing import CliRunner

    from mlcycle.cli import cli

    flag = "--gate-metric" if command[0] == "loop" else "--metric"
    res = CliRunner().invoke(cli, [*command, flag, "auc"])
    assert res.exit_code == 2
    assert "'auc' is not a metric the gate computes; one of accuracy, f1, precision" in (res.output)
