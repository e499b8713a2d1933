"""The retrain table keeps a classifier's labels as classes, not floats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.data import DatasetSpec
from mlcycle.monitoring.inputs import reference_from_frame
from mlcycle.monitoring.trigger import _retrain_table


@pytest.mark.parametrize("labels", [[0.0, 1.0] * 50, [0, 1.0] * 50, [np.int64(0), 1] * 50])
def test_joined_labels_keep_the_classifiers_integer_classes(labels: list) -> None:
    # Before: 0.0/1.0 reached the project's table and log_contract inferred a regression
    # (examples/xgboost-project retrained v1 classification into v2 regression).
    base = pd.DataFrame({"x": np.arange(100.0), "y": [0, 1] * 50})
    spec = DatasetSpec(target="y", task="classification", numeric=("x",), categorical=())
    ref = reference_from_frame(base.assign(prediction=base["y"]), spec=spec)
    window = pd.DataFrame({"x": np.arange(100.0), "y": pd.Series(labels, dtype=object)})
    _, frame, fresh = _retrain_table(None, ref, window.assign(y=window["y"].astype(float)), base)
    assert frame["y"].dtype == np.int64 and len(fresh) == 100
    _, frame, _ = _retrain_table(None, ref, window, base)
    assert frame["y"].dtype == np.int64


def test_text_classes_are_left_as_they_are() -> None:
    base = pd.DataFrame({"x": np.arange(10.0), "y": ["no", "yes"] * 5})
    spec = DatasetSpec(target="y", task="classification", numeric=("x",), categorical=())
    ref = reference_from_frame(base.assign(prediction=base["y"]), spec=spec)
    _, frame, _ = _retrain_table(None, ref, base, base)
    assert list(frame["y"].unique()) == ["no", "yes"]
