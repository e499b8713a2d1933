"""The Prometheus multiprocess directory of a server with several workers leaves no trace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlcycle.serve.metrics import MULTIPROC_ENV, multiprocess_dir


def test_a_directory_it_makes_is_removed_with_its_files_even_on_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with pytest.raises(RuntimeError), multiprocess_dir() as path:
        assert os.environ[MULTIPROC_ENV] == path
        assert Path(path).parent == tmp_path and Path(path).name.startswith("mlcycle-metrics-")
        (Path(path) / "counter_123.db").write_bytes(b"x")  # what a worker writes
        raise RuntimeError("uvicorn failed")
    assert list(tmp_path.iterdir()) == []
    assert MULTIPROC_ENV not in os.environ


def test_a_directory_the_user_gave_is_used_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = tmp_path / "prom"
    given.mkdir()
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    with multiprocess_dir() as path:
        assert path == str(given)
    assert given.is_dir() and os.environ[MULTIPROC_ENV] == str(given)


@pytest.mark.parametrize("n", [1, 7, 256, 257, 5000])
@pytest.mark.parametrize("kind", ["int", "str", "float"])
def test_predicted_labels_are_counted_the_same_for_small_and_large_model_calls(
    n: int, kind: str
) -> None:
    import numpy as np
    from prometheus_client.parser import text_string_to_metric_families

    from mlcycle.serve.metrics import ServeMetrics

    raw = np.random.default_rng(n).integers(0, 3, n)
    preds = {"int": raw, "str": np.array(["no", "yes", "maybe"])[raw], "float": raw * 1.5}[kind]
    metrics = ServeMetrics(lambda: {})
    metrics.observe_predictions("champion", "1", preds, classifier=True)
    metrics.observe_predictions("champion", "1", preds[:1], classifier=True)
    counted = {
        s.labels["label"]: s.value
        for fam in text_string_to_metric_families(metrics.render().decode())
        for s in fam.samples
        if s.name == "mlcycle_predictions_total"
    }
    labels, counts = np.unique(np.concatenate([preds, preds[:1]]), return_counts=True)
    assert counted == {
        str(k): float(c) for k, c in zip(labels.tolist(), counts.tolist(), strict=True)
    }
