"""Fixtures of the monitoring tests: a trained champion and an inference log writer."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, infer_spec, make_scenario
from mlcycle.monitoring.inputs import ReferenceData, reference_from_frame

MODEL = "churn"


def write_log(
    root: Path | str, name: str, version: str, frame: pd.DataFrame, role: str = "champion"
) -> pd.DataFrame:
    """Write ``frame`` (features + ``prediction`` + ``event_time``) in the inference-log layout.

    One file per hour, like the serving process. Returns the logged rows (with request ids).
    """
    ts = pd.to_datetime(frame[SCENARIO_TIME]).dt.tz_localize("UTC")
    out = frame.drop(columns=[SCENARIO_TIME, SCENARIO_TARGET], errors="ignore").copy()
    out.insert(0, "request_id", [uuid.uuid4().hex for _ in range(len(out))])
    out.insert(1, "record_index", np.zeros(len(out), dtype="int32"))
    out.insert(2, "timestamp", ts.astype("datetime64[us, UTC]").to_numpy())
    out.insert(3, "model_name", name)
    out.insert(4, "model_version", str(version))
    out.insert(5, "role", role)
    for hour, part in out.groupby(ts.dt.strftime("%Y-%m-%dT%H").to_numpy()):
        d = Path(root) / f"model={name}" / f"version={version}" / f"hour={hour}"
        d.mkdir(parents=True, exist_ok=True)
        stamp = int(pd.Timestamp.now().value // 1_000_000)
        part.to_parquet(d / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet", index=False)
    return out


@pytest.fixture
def log_writer() -> Callable[..., pd.DataFrame]:
    """:func:`write_log`."""
    return write_log


@pytest.fixture
def predictor() -> Callable[..., pd.DataFrame]:
    """:func:`predict`."""
    return predict


@pytest.fixture(scope="session")
def scenario_reference() -> ReferenceData:
    """A reference built from 20k scenario rows, predictions equal to labels."""
    ref = make_scenario(20_000, "reference", seed=1)
    spec = infer_spec(ref, SCENARIO_TARGET, time_column=SCENARIO_TIME)
    ref["prediction"] = ref[SCENARIO_TARGET]
    return reference_from_frame(ref, spec=spec)


@pytest.fixture(scope="session")
def covariate_window() -> pd.DataFrame:
    cur = make_scenario(20_000, "covariate", seed=2)
    cur["prediction"] = cur[SCENARIO_TARGET]
    return cur


@pytest.fixture(scope="session")
def reference_window() -> pd.DataFrame:
    cur = make_scenario(20_000, "reference", seed=3)
    cur["prediction"] = cur[SCENARIO_TARGET]
    return cur


@dataclass
class Champion:
    client: Any
    settings: Any
    name: str
    version: str
    run_id: str
    log_root: Path


@pytest.fixture
def champion(tmp_path: Path, own_mlflow: str) -> Champion:
    """A small model trained on the scenario's reference period, registered and promoted."""
    from mlflow import MlflowClient

    from mlcycle import register as reg
    from mlcycle.config import load_settings
    from mlcycle.train import TrainConfig, train

    data = tmp_path / "reference.csv"
    make_scenario(3000, "reference", seed=1).to_csv(data, index=False)
    settings = load_settings(inference_log=str(tmp_path / "inference-log"))
    client = MlflowClient(**settings.client_kwargs())
    result = train(
        TrainConfig(
            data=str(data),
            target=SCENARIO_TARGET,
            time_column=SCENARIO_TIME,
            model="linear",
            onnx=False,
            plots=False,
        ),
        client,
    )
    mv = reg.register(client, result.run_id, MODEL)
    reg.promote(client, MODEL, str(mv.version), policy=reg.GatePolicy(mode="disabled"))
    return Champion(
        client, settings, MODEL, str(mv.version), result.run_id, tmp_path / "inference-log"
    )


def _as_signature(model: Any, X: pd.DataFrame) -> pd.DataFrame:
    """Cast columns to the model signature's types (the signature is the contract)."""
    schema = model.metadata.get_input_schema()
    if schema is None:
        return X
    out = X.copy()
    for spec in schema.inputs:
        kind = str(getattr(spec.type, "name", spec.type))
        if spec.name in out.columns and kind in ("long", "integer", "double", "float"):
            np_type = {"long": "int64", "integer": "int32", "double": "float64", "float": "float32"}
            out[spec.name] = out[spec.name].astype(np_type[kind])
    return out


def predict(champion: Champion, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the champion's predictions (what serving would have logged)."""
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{champion.name}@champion")
    out = frame.copy()
    features = [c for c in frame.columns if c not in (SCENARIO_TARGET, SCENARIO_TIME)]
    X = _as_signature(model, frame[features])
    out["prediction"] = np.asarray(model.predict(X))
    return out
