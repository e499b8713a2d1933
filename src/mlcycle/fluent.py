"""MLflow's fluent (process-global) run state, entered in one place.

Some MLflow APIs work only on the fluent active run: logging a model, nested runs. Training
and the gate therefore use it, but every fluent run starts here, on the stores of the
``MlflowClient`` the caller passed rather than on whatever the process's global tracking URI
happens to say; the global URI is put back when the run ends.
Everything else uses the client API.

API: :func:`start_run`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def start_run(
    client: Any,
    *,
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    nested: bool = False,
    tags: dict[str, str] | None = None,
) -> Iterator[Any]:
    """Start (or resume ``run_id``) a fluent run in ``client``'s tracking store.

    With ``nested`` the run nests under the active run, in the active run's experiment when
    none is given (MLflow would put it in ``Default``); with no active run it starts alone.

    Args:
        client: the ``MlflowClient`` whose tracking store the run is written to.
        run_id: resume this run instead of starting one.
        experiment_id: the run's experiment.
        run_name: the new run's name.
        parent_run_id: nest under this run (of any process) instead of the active one.
        nested: nest under the active run.
        tags: set on the run as it is created (or resumed), in the same store write.

    Yields:
        MLflow's ``ActiveRun``.
    """
    import mlflow

    previous = mlflow.get_tracking_uri()
    switch = previous != client.tracking_uri
    if switch:
        mlflow.set_tracking_uri(client.tracking_uri)
    try:
        active = mlflow.active_run()
        if nested and experiment_id is None and run_id is None and active is not None:
            experiment_id = active.info.experiment_id
        kwargs: dict[str, Any] = {"run_id": run_id, "experiment_id": experiment_id}
        if run_name is not None:
            kwargs["run_name"] = run_name
        if parent_run_id is not None:
            kwargs["parent_run_id"] = parent_run_id
        if tags:
            kwargs["tags"] = tags
        with mlflow.start_run(nested=nested, **kwargs) as run:
            yield run
    finally:
        if switch:
            mlflow.set_tracking_uri(previous)
