"""Fluent MLflow runs start in one place, on the stores of the client passed in."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
from mlflow import MlflowClient

import mlcycle
from mlcycle import fluent

SRC = Path(mlcycle.__file__).parent
#: Modules another change owns for now (trigger.py ends every active run itself).
PENDING: set[str] = set()
FLUENT_STATE = re.compile(r"mlflow\.(start_run|end_run|active_run|set_experiment)\(")


def test_a_run_goes_to_the_clients_store_whatever_the_global_uri(tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    client = MlflowClient(other)
    exp = client.create_experiment("elsewhere", artifact_location=(tmp_path / "a").as_uri())
    before = mlflow.get_tracking_uri()
    assert before != other
    with fluent.start_run(client, experiment_id=exp, run_name="outer") as run:
        mlflow.log_param("p", 1)
        with fluent.start_run(client, run_name="inner", nested=True) as child:
            pass
    assert mlflow.get_tracking_uri() == before
    assert client.get_run(run.info.run_id).data.params == {"p": "1"}
    inner = client.get_run(child.info.run_id)
    assert inner.data.tags["mlflow.parentRunId"] == run.info.run_id
    assert inner.info.experiment_id == exp  # the parent's experiment, not Default


def test_no_module_but_fluent_touches_the_active_run_stack() -> None:
    offenders = [
        f"{rel}:{n}"
        for path in sorted(SRC.rglob("*.py"))
        if (rel := path.relative_to(SRC).as_posix()) not in {"fluent.py", *PENDING}
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if FLUENT_STATE.search(line)
    ]
    assert not offenders, "use mlcycle.fluent.start_run:\n" + "\n".join(offenders)


def test_tags_are_on_a_new_run_and_on_a_resumed_one(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    exp = client.create_experiment("tags", artifact_location=(tmp_path / "a").as_uri())
    with fluent.start_run(client, experiment_id=exp, tags={"k": "new"}) as run:
        assert client.get_run(run.info.run_id).data.tags["k"] == "new"
    with fluent.start_run(client, run_id=run.info.run_id, tags={"k": "resumed"}):
        pass
    assert client.get_run(run.info.run_id).data.tags["k"] == "resumed"
