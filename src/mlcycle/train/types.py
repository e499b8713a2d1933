"""The values of a training call: what to train, what came out, and the run's fixed names.

API: :class:`TrainConfig`, :class:`TrainResult`, :func:`pip_requirements`,
:func:`default_run_name`, :data:`MODEL_ARTIFACT`, :data:`ONNX_FILE`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version as pkg_version
from typing import Any

from mlcycle.data import Task

#: Called after each search trial: (trial index from 1, trials, the trial's val metrics).
TrialCallback = Callable[[int, int, dict[str, float]], None]

MODEL_ARTIFACT = "model"
SEARCH_ENGINES = ("random", "optuna")
ONNX_FILE = "model.onnx"


def default_run_name(cfg: TrainConfig, model_key: str) -> str:
    """``<estimator> <data file stem>`` (e.g. ``linear churn``): says what was fitted on what."""
    stem = str(cfg.data).rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".gz", ".csv", ".parquet", ".pq"):
        stem = stem.removesuffix(suffix)
    return f"{model_key} {stem or 'data'}"[:250]


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training call needs; values, not code paths."""

    data: str
    target: str
    model: str = "hist_gradient_boosting"
    params: dict[str, Any] = field(default_factory=dict)
    task: Task | None = None
    time_column: str | None = None
    drop: tuple[str, ...] = ()
    #: Feature columns kept as categories whatever their values (``--categorical``).
    categorical: tuple[str, ...] = ()
    seed: int = 42
    trials: int = 0
    experiment: str = "mlcycle"
    run_name: str | None = None
    onnx: bool = True
    plots: bool = True
    #: ``random`` (in process, seeded) or ``optuna`` (a study that processes can share);
    #: ``None`` picks ``optuna`` when the search is shared (``search_storage`` or several
    #: ``search_workers``), else ``random``.
    search_engine: str | None = None
    #: Optuna RDB storage (``postgresql+psycopg2://…``); in memory when ``None``.
    search_storage: str | None = None
    study_name: str | None = None
    #: Worker processes of an Optuna search on this machine (more can join with the CLI).
    search_workers: int = 1
    #: Save a model needing unreviewed skops types (a user's class) with cloudpickle.
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        if self.search_engine is None:
            shared = bool(self.search_storage) or self.search_workers > 1
            object.__setattr__(self, "search_engine", "optuna" if shared else "random")


@dataclass(frozen=True)
class TrainResult:
    """What a training call produced."""

    run_id: str
    experiment_id: str
    model_uri: str
    task: Task
    metrics: dict[str, float]
    params: dict[str, Any]
    onnx_exact: bool
    child_run_ids: tuple[str, ...] = ()
    #: What happened to the ONNX copy, for people: ``exact copy logged``, ``not attempted:
    #: …``, ``not kept: …`` or ``skipped``.
    onnx_note: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (what ``mlcycle train --json`` prints)."""
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "model_uri": self.model_uri,
            "task": self.task,
            "metrics": self.metrics,
            "onnx_exact": self.onnx_exact,
            "child_run_ids": list(self.child_run_ids),
        }

    @property
    def runs_uri(self) -> str:
        """``runs:/`` URI of the logged model."""
        return f"runs:/{self.run_id}/{MODEL_ARTIFACT}"


def pip_requirements() -> list[str]:
    """Pinned requirements of every model mlcycle logs (explicit: inferring costs seconds)."""
    return list(_pinned())


@functools.cache
def _pinned() -> tuple[str, ...]:
    # Installed versions do not change while the process runs; metadata lookups cost I/O.
    import mlflow

    # The core install has mlflow-skinny, which ships the `mlflow` package but not the `mlflow`
    # distribution; the model still names `mlflow`, at the version of the package that logged it.
    names = ["scikit-learn", "skops", "numpy", "pandas", "scipy"]
    return (f"mlflow=={mlflow.__version__}", *(f"{name}=={pkg_version(name)}" for name in names))
