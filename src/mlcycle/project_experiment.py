"""``mlflow run`` of mlcycle's own project writes to the ``mlcycle`` experiment, not Default.

API: :class:`ProjectExperiment` (an MLflow ``mlflow.default_experiment_provider`` plugin).

``mlflow run . -e train`` creates its run before ``mlcycle train`` starts, in the experiment
given by ``--experiment-name``/``--experiment-id`` or ``MLFLOW_EXPERIMENT_NAME``/``_ID``,
else in MLflow's default experiment: "Default", whose artifacts go to ``./mlruns``. An
MLproject cannot name an experiment, so this provider answers MLflow's "which default
experiment?" with ``MLCYCLE_EXPERIMENT`` (``mlcycle``), the experiment ``mlcycle train``
uses, and only inside an ``mlflow run`` of a project named ``mlcycle``. Explicit choices
still win: MLflow asks providers only when none was given. The module is imported by every
MLflow process of this environment, so it stays import-light.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mlflow.tracking.default_experiment.abstract_context import DefaultExperimentProvider


def _mlcycle_project_run(argv: list[str]) -> bool:
    """True for ``mlflow run <dir>`` where ``<dir>/MLproject`` is mlcycle's project."""
    if len(argv) < 3 or Path(argv[0]).name != "mlflow" or "run" not in argv[1:2]:
        return False
    for arg in argv[2:]:
        project = Path(arg) / "MLproject"
        if arg.startswith("-") or not project.is_file():
            continue
        try:
            head = project.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        if any(line.strip() == "name: mlcycle" for line in head):
            return True
    return False


class ProjectExperiment(DefaultExperimentProvider):
    """Points ``mlflow run`` of mlcycle's MLproject at mlcycle's training experiment."""

    def in_context(self) -> bool:
        return _mlcycle_project_run(sys.argv)

    def get_experiment_id(self) -> str:
        from mlflow import MlflowClient

        from mlcycle.config import ensure_experiment, load_settings

        settings = load_settings()
        return ensure_experiment(MlflowClient(settings.tracking_uri), settings.experiment, settings)
