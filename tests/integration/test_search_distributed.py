"""Distributed search: worker processes share one Optuna study in PostgreSQL; every trial is
one nested MLflow run under the parent, and the best is summarised there."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from mlcycle.cli import cli
from mlcycle.errors import ConfigError
from mlcycle.train import TrainConfig, pipelines, train
from mlcycle.train.search import PG_SCHEMA, _storage, distributions, masked

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _optuna_url(pg_url: str) -> str:
    """The study tables as a plain Optuna user would open them (mlcycle's schema)."""
    return f"{pg_url}?options=-csearch_path%3D{PG_SCHEMA}"


def test_three_worker_processes_run_every_trial_once_nested_under_one_parent(
    scenario_csv: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The team setup: tracking and the study in the same PostgreSQL database.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", pg_url)
    mlflow.set_tracking_uri(pg_url)
    client = MlflowClient(tracking_uri=pg_url)
    seen: list[int] = []
    result = train(
        TrainConfig(
            data=str(scenario_csv), target="churned", model="linear", time_column="event_time",
            trials=9, plots=False, onnx=False, search_engine="optuna",
            search_storage=pg_url, study_name="churn-search", search_workers=3,
        ),
        client,
        on_trial=lambda i, n, m: seen.append(i),
    )  # fmt: skip
    assert seen == list(range(1, 10))
    # MLflow: nine trial runs, each nested under the parent, numbered 1..9 once each.
    children = [client.get_run(r) for r in result.child_run_ids]
    assert len({c.info.run_id for c in children}) == 9
    assert all(c.data.tags["mlflow.parentRunId"] == result.run_id for c in children)
    assert sorted(c.info.run_name for c in children) == [f"trial-{i:03d}" for i in range(1, 10)]
    assert all(c.info.status == "FINISHED" for c in children)
    all_runs = client.search_runs([result.experiment_id])
    assert len(all_runs) == 10  # the parent and its nine trials: nothing ran twice
    # More than one process did the work (three were started; a slow starter may get none).
    workers = {c.data.tags["mlcycle.worker"] for c in children}
    assert len(workers) >= 2
    # Optuna: the study in PostgreSQL holds the same nine trials.
    study = optuna.load_study(study_name="churn-search", storage=_optuna_url(pg_url))
    done = [t for t in study.trials if t.number < 9]
    assert sorted(t.user_attrs["mlflow_run_id"] for t in done) == sorted(result.child_run_ids)
    assert not [t for t in study.trials if t.number >= 9 and not t.user_attrs.get("surplus")]
    # The parent summarises the best trial and carries its model.
    parent = client.get_run(result.run_id)
    best_auc = max(c.data.metrics["val_roc_auc"] for c in children)
    assert parent.data.metrics["best_val_roc_auc"] == pytest.approx(best_auc)
    best = client.get_run(parent.data.tags["mlcycle.best_trial_run_id"])
    assert best.data.metrics["val_roc_auc"] == pytest.approx(best_auc)
    assert parent.data.params["model__C"] == best.data.params["model__C"]
    assert parent.data.params["search_storage"] == masked(pg_url)
    assert "test_roc_auc" in result.metrics


def test_a_worker_that_joins_a_finished_study_adds_no_trial(
    scenario_csv: Path, pg_url: str
) -> None:
    runner = CliRunner()
    res = runner.invoke(
        cli,
        ["train", "--data", str(scenario_csv), "--target", "churned", "--model", "linear",
         "--trials", "3", "--search-storage", pg_url, "--study-name", "late", "--no-onnx",
         "--json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    late = runner.invoke(
        cli, ["search-worker", "--search-storage", pg_url, "--study-name", "late"],
        catch_exceptions=False,
    )  # fmt: skip
    assert late.exit_code == 0, late.output
    assert "ran 0 trial(s) of study late" in late.output
    assert len(optuna.load_study(study_name="late", storage=_optuna_url(pg_url)).trials) == 3


def test_joining_an_unknown_study_or_reusing_a_name_exits_1_with_the_reason(
    scenario_csv: Path, pg_url: str
) -> None:
    runner = CliRunner()
    res = runner.invoke(
        cli, ["search-worker", "--search-storage", pg_url, "--study-name", "nobody"]
    )
    assert res.exit_code == 1
    assert "no study 'nobody'" in res.output
    optuna.create_study(study_name="taken", storage=_storage(optuna, pg_url))
    res = runner.invoke(
        cli,
        ["train", "--data", str(scenario_csv), "--target", "churned", "--model", "linear",
         "--trials", "2", "--search-storage", pg_url, "--study-name", "taken"],
    )  # fmt: skip
    assert res.exit_code == 1
    assert "study 'taken' already exists" in res.output


def test_workers_without_a_shared_storage_are_refused(scenario_csv: Path) -> None:
    cfg = TrainConfig(
        data=str(scenario_csv), target="churned", model="linear", trials=2,
        search_engine="optuna", search_workers=2, plots=False, onnx=False,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="share the study through a storage"):
        train(cfg, MlflowClient())


def test_an_in_process_optuna_search_nests_its_trials_like_the_random_search(
    scenario_csv: Path,
) -> None:
    client = MlflowClient()
    result = train(
        TrainConfig(
            data=str(scenario_csv), target="churned", model="hgb", trials=2, plots=False,
            onnx=False, search_engine="optuna", params={"max_iter": "30"},
        ),
        client,
    )  # fmt: skip
    children = [client.get_run(r) for r in result.child_run_ids]
    assert [c.data.tags["mlflow.parentRunId"] for c in children] == [result.run_id] * 2
    # Explicit parameters override the search space, as in the random search.
    assert {c.data.params["model__max_iter"] for c in children} == {"30"}


@pytest.mark.parametrize("model", sorted(pipelines.SEARCH_SPACES))
def test_every_search_space_translates_into_optuna_distributions_over_the_same_values(
    model: str,
) -> None:
    for task, space in pipelines.SEARCH_SPACES[model].items():
        dists = distributions(model, task)
        assert set(dists) == set(space)
        rng = np.random.default_rng(0)
        for key, dist in dists.items():
            drawn = [space[key](rng) for _ in range(50)]
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                assert set(drawn) <= set(dist.choices)
            elif isinstance(dist, optuna.distributions.IntDistribution):
                # An index into the sampler's list: every value it can pick is reachable.
                assert dist.high - dist.low + 1 >= len(set(drawn))
            else:
                lo, hi = 10**dist.low, 10**dist.high  # a log-uniform draw of the exponent
                assert all(lo <= v <= hi for v in drawn)
