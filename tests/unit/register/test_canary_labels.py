"""Labels a canary check cannot use are refused or reported, never scored as evidence."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcycle import register as reg
from mlcycle.config import load_settings
from mlcycle.data import DatasetSpec
from mlcycle.errors import DataError
from mlcycle.inference_log import Window, partition_path
from mlcycle.monitoring.canary import CanaryPolicy
from mlcycle.monitoring.canary_run import evaluate
from mlcycle.monitoring.inputs import reference_from_frame

NAME = "canary-labels"
NOW = pd.Timestamp.now(tz="UTC").floor("s")


def _arm(root: Path, role: str, version: str, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(len(role))
    y = rng.integers(0, 2, n).astype(str)
    rows = pd.DataFrame(
        {
            "record_id": [f"{role}{i}-0" for i in range(n)],
            "request_id": [f"{role}{i}" for i in range(n)],
            "record_index": 0,
            "timestamp": NOW,
            "model_name": NAME,
            "model_version": version,
            "role": role,
            "x": rng.normal(0, 1, n),
            "prediction": y,
        }
    )
    part = Path(partition_path(str(root), NAME, version, NOW.strftime("%Y-%m-%dT%H")))
    part.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(part / f"part-{role}.parquet")
    return rows.assign(y=y)


@pytest.fixture
def canary(client: Any, train_run: Callable[..., str], tmp_path: Path) -> Any:
    v1 = str(reg.register(client, train_run(), NAME).version)
    reg.promote(client, NAME, v1, policy=reg.GatePolicy(mode="disabled"))
    v2 = str(reg.register(client, train_run(), NAME).version)
    rows = pd.concat([_arm(tmp_path, "champion", v1, 400), _arm(tmp_path, "challenger", v2, 400)])
    frame = pd.DataFrame({"x": np.zeros(100), "y": ["0", "1"] * 50, "prediction": ["0"] * 100})
    spec = DatasetSpec(target="y", task="classification", numeric=("x",), categorical=())
    ref = reference_from_frame(frame, spec=spec)

    def check(labels: pd.DataFrame) -> Any:
        return evaluate(
            client, load_settings(inference_log=str(tmp_path)), NAME, reference=ref,
            window=Window.of(NOW - pd.Timedelta("1h"), NOW + pd.Timedelta("1h")),
            labels=labels, policy=CanaryPolicy(min_labelled=100, tolerance=0.01, steps=(1.0,)),
        )  # fmt: skip

    return rows, check


def test_labels_that_are_not_the_models_classes_are_refused(canary: Any) -> None:
    rows, check = canary
    # 'yes'/'no' for a 0/1 target scored both arms 0 and, with a tolerance, promoted.
    labels = rows[["record_id"]].assign(y=np.where(rows["y"] == "1", "yes", "no"))
    with pytest.raises(DataError, match="'no', 'yes' are not classes of the model"):
        check(labels)
    assert check(rows[["record_id", "y"]]).comparison.challenger.labelled == 400


def test_labels_that_match_no_record_are_reported(canary: Any) -> None:
    rows, check = canary
    out = check(rows[["record_id", "y"]].assign(record_id=rows["record_id"] + "x"))
    assert out.decision.action == "continue"
    assert any("none of the 800 labels matched" in p for p in out.problems)
