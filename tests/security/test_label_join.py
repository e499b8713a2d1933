"""Issue 10 item 7: a label is never fanned out to several scored records.

The attack: two scoring requests sent with the same ``X-Request-Id``; a label for that id was
joined to both records, and retraining used both rows. Here the requests go through the real
ASGI app and inference-log writer; the labels then go through the monitoring join and the
retrain's row selection.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from starlette.testclient import TestClient

from mlcycle.inference_log import InferenceLog
from mlcycle.monitoring import join_labels, read_inference_log
from mlcycle.monitoring.inputs import ReferenceData, production_training_rows
from mlcycle.serve.app import ModelSource, ServeOptions, create_app
from mlcycle.serve.model import ModelRef
from mlcycle.serve.protocol import Column, InputSchema


class Classifier:
    """Labels ``n`` odd/even: a stand-in model; what matters here is the log and the join."""

    backend = "fake"
    name = "fake"
    version = "1"
    is_classifier = True
    schema = InputSchema((Column("x", "double", allow_missing=True), Column("n", "long")))
    ref = ModelRef("models:/fake@champion", "fake", "1", "", "champion", "alias")

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        return columns["n"] % 2


def _serve_and_log(tmp_path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Two requests reuse X-Request-Id 'dup'; a third is honest. Returns the log, prefixes."""
    log = InferenceLog(str(tmp_path), flush_seconds=0.05)
    app = create_app(ModelSource.fixed(Classifier()), ServeOptions(), log)
    prefixes = []
    with TestClient(app) as client:
        deadline = time.monotonic() + 10
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for rid, n in (("dup", 1), ("dup", 2), ("honest", 3)):
            r = client.post(
                "/invocations",
                json={"dataframe_records": [{"x": 1.0, "n": n}]},
                headers={"X-Request-Id": rid},
            )
            assert r.status_code == 200 and r.headers["x-request-id"] == rid
            prefixes.append(r.headers["x-record-id-prefix"])
    return read_inference_log(str(tmp_path), "fake"), prefixes


REFERENCE = ReferenceData(
    profile={}, sample=pd.DataFrame(), task="classification", target="y", numeric=("x", "n"),
    categorical=(),
)  # fmt: skip


def test_each_scored_record_has_a_server_assigned_unique_record_id(tmp_path: Path):
    logged, prefixes = _serve_and_log(tmp_path)
    assert len(logged) == 3
    assert logged["record_id"].is_unique
    assert sorted(logged["record_id"]) == sorted(f"{p}-0" for p in prefixes)
    # The client's id is kept, for correlation only.
    assert sorted(logged["request_id"]) == ["dup", "dup", "honest"]


def test_a_label_for_a_repeated_request_id_is_refused_not_fanned_out(tmp_path: Path):
    logged, _ = _serve_and_log(tmp_path)
    labels = pd.DataFrame({"request_id": ["dup", "honest"], "y": [1, 0]})
    problems: list[str] = []
    joined = join_labels(logged, labels, "y", problems=problems)
    assert len(joined) == 3  # rows are never duplicated by the join
    by_rid = joined.groupby("request_id")["y"].apply(lambda s: int(s.notna().sum()))
    assert by_rid["dup"] == 0 and by_rid["honest"] == 1
    assert problems and "dup" in problems[0]
    # Retraining takes the labelled rows: the ambiguous label adds none.
    assert len(production_training_rows(joined, REFERENCE, None)) == 1


def test_labels_by_record_id_join_exactly_their_record_and_retrain_uses_each_once(
    tmp_path: Path,
):
    logged, prefixes = _serve_and_log(tmp_path)
    first_dup = f"{prefixes[0]}-0"
    labels = pd.DataFrame(
        {
            "record_id": [first_dup, first_dup, f"{prefixes[2]}-0"],  # a resent label too
            "request_id": ["dup", "dup", "honest"],
            "y": [1, 1, 0],
        }
    )
    joined = join_labels(logged, labels, "y")
    assert len(joined) == 3
    assert joined.loc[joined["record_id"] == first_dup, "y"].tolist() == [1]
    assert joined.loc[joined["record_id"] == f"{prefixes[1]}-0", "y"].isna().all()
    rows = production_training_rows(joined, REFERENCE, None)
    assert len(rows) == 2  # each labelled record once
    assert sorted(rows["n"].tolist()) == [1, 3]
