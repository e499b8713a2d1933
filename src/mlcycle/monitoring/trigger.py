"""Act: retrain on the reference data plus newly labelled production data, then gate.

API: :class:`RetrainOutcome`, :func:`retrain`, :func:`training_base`.

The retrain action is declared data: mlcycle's own trainer, or the user's MLflow project
(:class:`mlcycle.monitoring.project.ProjectRetrain`) run on the same table.

The new run is registered as ``@challenger`` and promoted only when the gate passes
(:func:`mlcycle.register.promote`); a serving process that follows ``@champion`` picks the
new version up by itself. Every link is recorded as tags: the monitoring run names the
training run and the version, the training run and the version name the monitoring run.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.api.types import is_float_dtype, is_object_dtype

from mlcycle import contract
from mlcycle.config import Settings, ensure_experiment
from mlcycle.data import load_table
from mlcycle.errors import DataError, GateRejected, MonitoringError
from mlcycle.monitoring.inputs import ReferenceData, production_training_rows
from mlcycle.monitoring.project import ProjectRetrain, run_project
from mlcycle.parquet import MAX_DECLARED_BYTES, read_parquet, write_parquet
from mlcycle.tags import (
    MLCYCLE_MONITORING_RUN_ID,
    MLCYCLE_PROJECT_RUN_ID,
    MLCYCLE_RETRAIN_OF_VERSION,
    MLCYCLE_RETRAIN_PROJECT,
    MLCYCLE_RETRAIN_ROWS_PRODUCTION,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainOutcome:
    """What a retrain did."""

    run_id: str
    version: str
    promoted: bool
    reasons: tuple[str, ...] = ()
    rows: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def _dataset_source(client: Any, run_id: str) -> str | None:
    run = client.get_run(run_id)
    for inp in getattr(run.inputs, "dataset_inputs", None) or []:
        try:
            source = json.loads(inp.dataset.source)
        except (TypeError, ValueError):
            continue
        uri = source.get("uri") or source.get("url") or source.get("path")
        if uri:
            return str(uri)
    return None


def training_base(client: Any, reference: ReferenceData) -> pd.DataFrame:
    """The champion's training table when it can still be read, else its stored reference.

    The fallback joins the reference sample (at most 5,000 training rows) and the held-out
    test split that training stored under ``reference/``.

    Raises:
        MonitoringError: neither is available.
    """
    if reference.run_id:
        source = _dataset_source(client, reference.run_id)
        if source and (source.startswith("s3://") or Path(source).is_file()):
            try:
                logger.info("retrain base: the champion's training data %s", source)
                return load_table(source)
            except DataError as exc:
                logger.warning("cannot re-read %s (%s); using the stored reference", source, exc)
        with tempfile.TemporaryDirectory() as tmp:
            try:
                stored = client.download_artifacts(reference.run_id, contract.REFERENCE_DIR, tmp)
                local = Path(stored)
                sample = read_parquet(
                    local / contract.SAMPLE_FILE,
                    max_cells=contract.MAX_CELLS,
                    max_bytes=MAX_DECLARED_BYTES,
                )
                parts = [sample.drop(columns=["prediction"])]
                if (local / contract.EVAL_FILE).exists():
                    parts.append(
                        read_parquet(
                            local / contract.EVAL_FILE,
                            max_cells=contract.MAX_CELLS,
                            max_bytes=MAX_DECLARED_BYTES,
                        )
                    )
                logger.info("retrain base: the stored reference sample and test split")
                return pd.concat(parts, ignore_index=True)
            except Exception as exc:
                raise MonitoringError(f"no retrain base in run {reference.run_id}: {exc}") from exc
    sample = reference.sample.drop(columns=["prediction"], errors="ignore")
    if reference.target not in sample.columns:
        raise MonitoringError("the reference has no target column to retrain on")
    return sample


def retrain(
    client: Any,
    name: str,
    reference: ReferenceData,
    labelled: pd.DataFrame,
    *,
    monitoring_run_id: str | None = None,
    window: str | None = None,
    base: pd.DataFrame | None = None,
    experiment: str = "mlcycle",
    gate_policy: Any = None,
    seed: int = 42,
    data_path: str | Path = "retrain.parquet",
    action: ProjectRetrain | None = None,
    settings: Settings | None = None,
) -> RetrainOutcome:
    """Train on ``base`` + labelled window rows, register as challenger, promote via the gate.

    Args:
        client: an ``MlflowClient``.
        name: registered model name.
        reference: the champion's reference (its run gives model, time column and target).
        labelled: the monitored window with the target joined (rows without a label are
            left out).
        monitoring_run_id: recorded on the training run and the version.
        window: the monitored window's key; with ``monitoring_run_id`` it is the promotion's
            recorded reason.
        base: the data to extend; default :func:`training_base`.
        experiment: experiment of the training run.
        gate_policy: a :class:`mlcycle.register.GatePolicy`; its default when ``None``.
        seed: training seed.
        data_path: where the combined training table is written (the run's dataset source,
            and the table given to a project).
        action: the retrain action: ``None`` is mlcycle's trainer; a
            :class:`~mlcycle.monitoring.project.ProjectRetrain` runs the user's MLflow
            project on the table instead.
        settings: the caller's settings: the promotion lock of an HTTP registry and where a
            new experiment keeps artifacts.

    Raises:
        MonitoringError: nothing to train on, or the project run failed.
        ConfigError: the project is misdeclared.
        TrainingError / DataError: from training.
    """
    time_column, frame, fresh = _retrain_table(client, reference, labelled, base)
    rows = {"base": len(frame) - len(fresh), "production": len(fresh), "total": len(frame)}
    logger.info("retraining %s on %d rows (%d newly labelled)", name, len(frame), len(fresh))
    data_path = Path(data_path).resolve()
    data_path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(frame, data_path)
    links = {
        MLCYCLE_RETRAIN_OF_VERSION: reference.model_version or "",
        MLCYCLE_RETRAIN_ROWS_PRODUCTION: str(len(fresh)),
    }
    if monitoring_run_id:
        links[MLCYCLE_MONITORING_RUN_ID] = monitoring_run_id
    version_tags = dict(links)
    metrics: dict[str, float] = {}
    if action is None:
        run_id, metrics = _train_with_mlcycle(
            client, name, reference, frame, data_path, time_column, experiment, seed, settings
        )
    else:
        experiment_id = ensure_experiment(client, experiment, settings)
        run_id = run_project(client, action, data_path, experiment_id, f"retrain-{name}")
        links[MLCYCLE_RETRAIN_PROJECT] = action.describe()[:500]
        version_tags[MLCYCLE_PROJECT_RUN_ID] = run_id
    for key, value in links.items():
        client.set_tag(run_id, key, value)
    version, ok, reasons = _register_and_promote(
        client, name, run_id, reference, frame, version_tags, monitoring_run_id, window,
        gate_policy, settings,
    )  # fmt: skip
    if action is not None:
        run = client.get_run(run_id)
        metrics = {k: float(v) for k, v in run.data.metrics.items()}
    logger.info("retrained %s v%s: %s", name, version, "promoted" if ok else "kept as challenger")
    return RetrainOutcome(run_id, version, ok, reasons, rows, metrics)


def _retrain_table(
    client: Any, reference: ReferenceData, labelled: pd.DataFrame, base: pd.DataFrame | None
) -> tuple[str | None, pd.DataFrame, pd.DataFrame]:
    """``(time column or None, base + labelled window rows, the window rows)``."""
    params = reference.params
    time_column = params.get("time_column") or None
    base_df = base if base is not None else training_base(client, reference)
    fresh = production_training_rows(labelled, reference, time_column)
    if time_column and time_column not in base_df.columns:
        time_column = None
    if time_column is None and reference.params.get("time_column"):
        logger.info("time column %s unavailable; splitting at random", params["time_column"])
    keep = [*reference.features, reference.target, *([time_column] if time_column else [])]
    frame = pd.concat(
        [
            base_df[[c for c in keep if c in base_df.columns]],
            fresh[[c for c in keep if c in fresh.columns]],
        ],
        ignore_index=True,
    )
    if frame.empty:
        raise MonitoringError("nothing to retrain on")
    y = frame.get(reference.target)
    loose = y is not None and (is_float_dtype(y) or is_object_dtype(y))
    if reference.task == "classification" and loose:
        # Labels joined from the window arrive as floats or objects; 0.0/1.0 made a project's
        # log_contract infer a regression, so the retrain changed the model's task.
        num = pd.to_numeric(y, errors="coerce")
        if num.notna().all() and (num == num.round()).all():
            frame[reference.target] = num.astype("int64")
    if time_column:
        frame[time_column] = pd.to_datetime(frame[time_column])
    return time_column, frame, fresh


def _train_with_mlcycle(
    client: Any,
    name: str,
    reference: ReferenceData,
    frame: pd.DataFrame,
    data_path: Path,
    time_column: str | None,
    experiment: str,
    seed: int,
    settings: Settings | None,
) -> tuple[str, dict[str, float]]:
    from mlcycle.train import TrainConfig, train

    cfg = TrainConfig(
        data=str(data_path),
        target=reference.target,
        model=reference.params.get("model", "hist_gradient_boosting"),
        task=reference.task,  # type: ignore[arg-type]
        time_column=time_column,
        seed=seed,
        experiment=experiment,
        run_name=f"retrain-{name}",
    )
    result = train(cfg, client, frame=frame, settings=settings)
    return result.run_id, dict(result.metrics)


def _register_and_promote(
    client: Any,
    name: str,
    run_id: str,
    reference: ReferenceData,
    frame: pd.DataFrame,
    version_tags: dict[str, str],
    monitoring_run_id: str | None,
    window: str | None,
    gate_policy: Any,
    settings: Settings | None,
) -> tuple[str, bool, tuple[str, ...]]:
    """Register the run's model (adopting it when it carries no contract), tag, promote."""
    from mlcycle import register as reg

    if client.get_run(run_id).data.tags.get(contract.TAG_TARGET):
        mv = reg.register(client, run_id, name)
    else:
        # A project that did not call mlcycle.log_contract: its table is its reference.
        logger.info("run %s has no lifecycle contract; adopting it", run_id)
        mv = reg.adopt(client, run_id, name, frame, target=reference.target, task=reference.task)
    version = str(mv.version)
    for key in (MLCYCLE_MONITORING_RUN_ID, MLCYCLE_PROJECT_RUN_ID):
        if version_tags.get(key):
            client.set_model_version_tag(name, version, key, version_tags[key])
    reason = f"retrain of v{reference.model_version or '?'}"
    if monitoring_run_id:
        reason += f" started by monitoring run {monitoring_run_id}"
    if window:
        reason += f" (window {window})"
    try:
        promoted = reg.promote(
            client,
            name,
            version,
            policy=gate_policy or reg.GatePolicy(),
            reason=reason,
            settings=settings,
        )
    except GateRejected as exc:
        return version, False, (str(exc),)
    return version, True, tuple(promoted.decision.reasons) if promoted.decision else ()
