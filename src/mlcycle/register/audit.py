"""The audit trail: one run per gate decision, promotion and rollback.

API: :func:`who`, :func:`audit_experiment_id`, :func:`record`, :func:`begin`,
:func:`finish`, :func:`history`, :func:`evidence`.

Runs live in experiment ``mlcycle-registry-audit`` with tags ``mlcycle.audit.*`` (model,
action, from, to, forced, reason, who, outcome) and the gate's metrics as ``challenger_*`` /
``champion_*`` metrics, so the trail is browsable in the MLflow UI as well as with
``mlcycle history``. A decision taken on evidence (a canary's arm comparison) carries that
evidence whole as the run's ``evidence.json`` artifact (:func:`evidence` reads it back).

Audit first: a promotion or rollback opens its audit run (:func:`begin`) before it changes
the registry, and closes it (:func:`finish`) with the outcome. A user who may change the
model but not write the audit trail is stopped before anything changes; a change that fails
half-way is undone and recorded as ``failed``.
"""

from __future__ import annotations

import getpass
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from mlcycle.config import MLFLOW_TRACKING_USERNAME, Settings, ensure_experiment
from mlcycle.model_metrics import canonical_metric
from mlcycle.register.core import get_registered_model
from mlcycle.register.types import AUDIT_EXPERIMENT, AuditEntry
from mlcycle.tags import MLCYCLE_AUDIT_PREFIX

logger = logging.getLogger(__name__)

_T = MLCYCLE_AUDIT_PREFIX
#: Artifact of an audit run holding the evidence a decision was taken on.
EVIDENCE_FILE = "evidence.json"


def who() -> str:
    """The acting user: MLflow's tracking user when set, else the OS login."""
    user = MLFLOW_TRACKING_USERNAME.get()
    if user:
        return user
    try:
        return getpass.getuser()
    except Exception:  # pragma: no cover - no login name in some containers
        return "unknown"


def audit_experiment_id(client: Any, settings: Settings | None = None) -> str:
    """Id of the audit experiment, created on first use (artifacts under
    ``settings.artifact_root``; see :func:`mlcycle.config.ensure_experiment`)."""
    exp = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    if exp is not None and exp.lifecycle_stage == "active":
        return str(exp.experiment_id)
    return ensure_experiment(client, AUDIT_EXPERIMENT, settings)


def record(
    client: Any,
    name: str,
    action: str,
    *,
    to_version: str,
    from_version: str | None,
    forced: bool = False,
    reason: str | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    settings: Settings | None = None,
) -> str:
    """Write one finished audit run and return its id (see :func:`begin` for its arguments)."""
    run_id = begin(
        client,
        name,
        action,
        to_version=to_version,
        from_version=from_version,
        forced=forced,
        reason=reason,
        metrics=metrics,
        tags=tags,
        parent_run_id=parent_run_id,
        settings=settings,
    )
    finish(client, run_id)
    return run_id


def begin(
    client: Any,
    name: str,
    action: str,
    *,
    to_version: str,
    from_version: str | None,
    forced: bool = False,
    reason: str | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    evidence: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> str:
    """Open an audit run (outcome ``pending``) before the change it records; return its id.

    Raises:
        mlflow.exceptions.MlflowException: the user may not write the audit experiment
            (e.g. 403 from a tracking server); nothing has changed yet.

    Args:
        client: an ``MlflowClient``.
        name: registered model name.
        action: ``gate``, ``promote`` or ``rollback``.
        to_version: the version acted on.
        from_version: the champion before the action.
        forced: whether the gate was bypassed.
        reason: the user's reason, if any.
        metrics: numbers to log on the run (e.g. ``challenger_roc_auc``).
        tags: extra tags.
        parent_run_id: nest the run under this one.
        evidence: what the decision was taken on, stored whole as ``evidence.json``.
        settings: where a new audit experiment keeps artifacts (the CLI's settings).
    """
    from mlflow.entities import Metric

    user = who()
    all_tags = {
        f"{_T}model": name,
        f"{_T}action": action,
        f"{_T}to": str(to_version),
        f"{_T}from": str(from_version or ""),
        f"{_T}forced": str(forced).lower(),
        f"{_T}reason": reason or "",
        f"{_T}who": user,
        f"{_T}at_ns": str(time.time_ns()),
        f"{_T}outcome": "pending",
        "mlflow.user": user,
        **(tags or {}),
    }
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(
        audit_experiment_id(client, settings),
        tags=all_tags,
        run_name=f"{action} {name} v{to_version}",
    )
    if metrics:
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()]
        )
    if evidence is not None:
        try:
            client.log_text(
                run.info.run_id, json.dumps(evidence, indent=2, default=str), EVIDENCE_FILE
            )
        except Exception:
            # Nothing changed yet: close the run as failed so the trail shows the attempt.
            finish(client, run.info.run_id, error="could not store the evidence")
            raise
    logger.info("audit: %s %s v%s (from %s) by %s", action, name, to_version, from_version, user)
    return str(run.info.run_id)


def finish(client: Any, run_id: str, error: str | None = None) -> None:
    """Close an audit run: outcome ``done``, or ``failed`` with the error (run ``FAILED``)."""
    if error is None:
        client.set_tag(run_id, f"{_T}outcome", "done")
        client.set_terminated(run_id)
        return
    client.set_tag(run_id, f"{_T}outcome", "failed")
    client.set_tag(run_id, f"{_T}error", error[:500])
    client.set_terminated(run_id, status="FAILED")


def evidence(client: Any, run_id: str) -> dict[str, Any] | None:
    """The evidence stored with an audit run, or ``None`` when it has none."""
    import tempfile
    from pathlib import Path

    names = {f.path for f in client.list_artifacts(run_id)}
    if EVIDENCE_FILE not in names:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, EVIDENCE_FILE, tmp)
        doc = json.loads(Path(path).read_text())
    return doc if isinstance(doc, dict) else None


#: Audit actions the history lists (gate decisions are not registry changes).
ACTIONS = ("promote", "rollback", "canary_rollback", "canary_step")


def _mlcycle_names(metrics: dict[str, float]) -> dict[str, float]:
    """Gate metrics under mlcycle's names: runs of gates that scored with
    ``mlflow.models.evaluate`` logged ``challenger_root_mean_squared_error``."""
    out = {}
    for key, value in metrics.items():
        role, sep, metric = key.partition("_")
        if sep and role in ("challenger", "champion"):
            key = f"{role}_{canonical_metric(metric)}"
        out[key] = value
    return out


def history(client: Any, name: str) -> list[AuditEntry]:
    """Promotions, rollbacks and canary decisions of a model, oldest first.

    Args:
        client: an ``MlflowClient``.
        name: registered model name.

    Raises:
        ModelNotFound: no registered model of that name and no trail.
    """
    exp = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    if exp is None:
        get_registered_model(client, name)  # unknown model: say so rather than "no history"
        return []
    escaped = name.replace("'", "\\'")
    query = f"tags.`{_T}model` = '{escaped}'"
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([exp.experiment_id], query, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    entries: list[tuple[int, AuditEntry]] = []
    for run in runs:
        t = run.data.tags
        if t.get(f"{_T}action") not in ACTIONS:
            continue
        order = int(t.get(f"{_T}at_ns", "0"))
        entries.append(
            (
                order,
                AuditEntry(
                    name=name,
                    action=t[f"{_T}action"],
                    who=t.get(f"{_T}who", ""),
                    when=datetime.fromtimestamp(run.info.start_time / 1000, UTC).isoformat(
                        timespec="seconds"
                    ),
                    from_version=t.get(f"{_T}from") or None,
                    to_version=t.get(f"{_T}to", ""),
                    forced=t.get(f"{_T}forced") == "true",
                    reason=t.get(f"{_T}reason") or None,
                    metrics=_mlcycle_names(run.data.metrics),
                    run_id=run.info.run_id,
                    # Runs written before audit-first promotions carry no outcome: done.
                    outcome=t.get(f"{_T}outcome", "done"),
                    error=t.get(f"{_T}error") or None,
                ),
            )
        )
    if not entries:
        get_registered_model(client, name)
    # Nanosecond stamps written under the registry lock order the trail exactly.
    return [entry for _, entry in sorted(entries, key=lambda pair: pair[0])]
