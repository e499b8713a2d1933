"""Logging a fitted scikit-learn pipeline as an MLflow 3 model, with one verification load.

API: :class:`LoggedSklearnModel`, :func:`log_sklearn_model`.

``mlflow.sklearn.log_model`` serialises the model with skops, loads it back to check the
types (in ``save_model``), then loads it a second time through ``mlflow.pyfunc`` to check
the input example serves, and finally copies the directory into the artifact store. For a
forest grown on 200k rows that is a 0.5 GB file written, read twice and copied: seconds
that a tracked run pays on top of the fit. :func:`log_sklearn_model` keeps every guarantee
of that call and does each step once:

- the same ``mlflow.sklearn.save_model`` writes the directory (MLmodel with signature and
  input example, skops data, explicit pip requirements, the extra files), including its
  load of the skops file with the trusted types. For an ensemble (a forest, boosted trees)
  it saves and loads a copy with one member (:func:`~mlcycle.train.persist.type_proxy`):
  every member has the same types, so that load proves the whole model's types load,
  without reading a 0.5 GB forest back; the full pipeline is then dumped over that file;
- the serving input MLflow derives from the input example is parsed by MLflow's scoring
  server parser and predicted through a ``PyFuncModel`` (schema enforcement included) on
  the pipeline already in memory, instead of loading the file a second time;
- on a local artifact store the directory is saved where the logged model's artifacts
  live, so nothing is copied; otherwise it is saved in a temporary directory and uploaded;
- the logged model is a regular MLflow 3 ``LoggedModel`` (``models:/<model_id>``), linked
  to the run as its output named ``model``, so ``runs:/<run_id>/model`` resolves to it as
  it does for ``log_model``, and it ends ``READY`` (``FAILED`` if anything raised).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
from sklearn.pipeline import Pipeline

from mlcycle.errors import TrainingError
from mlcycle.mlflow_compat import parse_serving_input, sklearn_pyfunc
from mlcycle.train.persist import SKOPS, dump_skops, type_proxy
from mlcycle.uris import logged_model_uri

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoggedSklearnModel:
    """What :func:`log_sklearn_model` logged."""

    model_id: str
    model_uri: str
    artifact_location: str


def _local_dir(artifact_location: str) -> Path | None:
    """The directory of a ``file:`` (or plain path) artifact location; ``None`` if remote."""
    parsed = urlparse(artifact_location)
    if parsed.scheme == "file":
        from mlflow.utils.file_utils import local_file_uri_to_path

        return Path(local_file_uri_to_path(artifact_location))
    if parsed.scheme == "":
        return Path(artifact_location)
    return None


def _check_serving_input(path: Path, mlflow_model: Any, pipe: Pipeline) -> None:
    """Predict MLflow's serving example the way the scoring server would, on ``pipe``.

    Same steps as MLflow's own check after ``log_model`` (parse the ``serving_input_example``
    with the scoring server's parser against the model's input schema, then predict through
    a ``PyFuncModel``, which enforces the schema), minus loading the file again: the load
    is already proven by ``save_model``.

    Raises:
        TrainingError: the input example does not serve.
    """
    serving_input = mlflow_model.get_serving_input(str(path))
    if serving_input is None:
        return
    try:
        parsed = parse_serving_input(serving_input, mlflow_model)
        sklearn_pyfunc(mlflow_model, pipe).predict(parsed.data, params=parsed.params)
    except Exception as exc:
        raise TrainingError(f"the model's input example does not serve: {exc}") from exc


def _dump_over_proxy(pipe: Pipeline, path: Path, mlflow_model: Any) -> None:
    """Replace the proxy's skops file under ``path`` with ``pipe``'s; fix the MLmodel's size.

    ``model_size_bytes`` keeps MLflow's meaning (the files before the environment files were
    written): the proxy's data file is swapped for the full one in the sum.
    """
    data = path / mlflow_model.flavors["sklearn"]["pickled_model"]
    proxy_bytes = data.stat().st_size
    dump_skops(pipe, data)
    if mlflow_model.model_size_bytes is not None:
        mlflow_model.model_size_bytes += data.stat().st_size - proxy_bytes
    mlflow_model.save(str(path / "MLmodel"))


def log_sklearn_model(
    client: Any,
    run_id: str,
    pipe: Pipeline,
    *,
    name: str,
    signature: Any,
    input_example: Any,
    pip_requirements: list[str],
    trusted_types: list[str],
    metadata: dict[str, Any],
    serialization_format: str = SKOPS,
    extra_files: list[str] | None,
    workdir: Path,
) -> LoggedSklearnModel:
    """Log ``pipe`` (skops) as the run's model ``name``; the faster ``mlflow.sklearn.log_model``.

    Args:
        client: an ``MlflowClient`` for the configured stores.
        run_id: the run the model is an output of.
        pipe: the fitted pipeline.
        name: the model's name (``runs:/<run_id>/<name>`` resolves to it).
        signature: the model signature.
        input_example: a few rows saved with the model and checked to serve.
        pip_requirements: explicit requirements (nothing is inferred).
        trusted_types: the reviewed skops types the model needs.
        serialization_format: ``skops``, or ``cloudpickle`` when the user opted in
            (:func:`mlcycle.train.pipelines.model_format`).
        metadata: stored in the MLmodel file.
        extra_files: files stored beside the model (listed in the flavor).
        workdir: a private temporary directory (used when the artifact store is remote).

    Raises:
        TrainingError: the model could not be saved, verified or logged.
    """
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    # As log_model does: the logged model carries the run's parameters.
    run = client.get_run(run_id)
    logged = mlflow.initialize_logged_model(
        name=name,
        source_run_id=run_id,
        params={k: str(v) for k, v in run.data.params.items()},
        experiment_id=run.info.experiment_id,
    )
    try:
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        mlflow_model = Model(
            artifact_path=logged.artifact_location,
            model_uuid=logged.model_id,
            run_id=run_id,
            model_id=logged.model_id,
        )
        local = _local_dir(logged.artifact_location)
        target = local if local is not None else workdir / "model-upload"
        # skops: MLflow loads what it saved; a one-member proxy proves the same types load.
        saved = type_proxy(pipe) if serialization_format == SKOPS else pipe
        mlflow.sklearn.save_model(
            saved,
            str(target),
            mlflow_model=mlflow_model,
            signature=signature,
            input_example=input_example,
            pip_requirements=pip_requirements,
            serialization_format=serialization_format,
            skops_trusted_types=trusted_types if serialization_format == "skops" else None,
            metadata=metadata,
            extra_files=extra_files,
        )
        if saved is not pipe:
            _dump_over_proxy(pipe, target, mlflow_model)
        _check_serving_input(target, mlflow_model, pipe)
        if local is None:
            client.log_model_artifacts(logged.model_id, str(target))
    except Exception as exc:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        if isinstance(exc, TrainingError):
            raise
        raise TrainingError(f"logging the model failed: {exc}") from exc
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    logger.info("logged model %s of run %s", logged.model_id, run_id)
    return LoggedSklearnModel(
        logged.model_id, logged_model_uri(logged.model_id), logged.artifact_location
    )
