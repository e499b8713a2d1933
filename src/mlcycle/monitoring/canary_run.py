"""Run a canary check: read the window, compare the arms, record, and act when asked.

API: :class:`CanaryOutcome`, :func:`check`, :func:`evaluate`, :data:`KIND`.

Detect → decide → act, as the retrain loop does: :func:`mlcycle.monitoring.canary.compare_arms`
reads the window's inference-log rows (labels joined), :func:`~mlcycle.monitoring.canary.decide`
applies the declared :class:`~mlcycle.monitoring.canary.CanaryPolicy`, and with ``act=True``
the decision goes through the registry's lock and audit trail with the comparison attached as
evidence: ``promote`` makes the challenger the champion, ``rollback`` archives it and removes
``@challenger`` (:func:`mlcycle.register.canary.end_canary`), ``continue`` with a next share
records it on the challenger (:func:`mlcycle.register.canary.set_canary_share`). Every check
is one MLflow run (``mlcycle.kind=canary``) in experiment ``mlcycle-monitoring``, except one
a concurrent check beat to the same decision: it changes nothing and its run is deleted.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import pandas as pd

from mlcycle.config import Settings, ensure_experiment
from mlcycle.errors import DataError, RegistryConflict
from mlcycle.monitoring.canary import (
    ArmComparison,
    CanaryDecision,
    CanaryPolicy,
    compare_arms,
    decide,
)
from mlcycle.monitoring.canary_policy import policy_from_settings
from mlcycle.monitoring.canary_traffic import scrape
from mlcycle.monitoring.drift import DriftConfig
from mlcycle.monitoring.inputs import (
    ReferenceData,
    Window,
    join_labels,
    load_reference,
    read_inference_log,
)
from mlcycle.monitoring.record import EXPERIMENT
from mlcycle.register.core import alias_version, champion_version, get_registered_model
from mlcycle.register.types import CANARY_SHARE_TAG, CHALLENGER, GatePolicy, PromotionResult
from mlcycle.tags import (
    MLCYCLE_CANARY_CHALLENGER,
    MLCYCLE_CANARY_CHAMPION,
    MLCYCLE_CANARY_DECISION,
    MLCYCLE_CANARY_METRIC,
    MLCYCLE_CANARY_REASONS,
    MLCYCLE_CANARY_RUN_ID,
    MLCYCLE_CANARY_SUPERSEDED,
    MLCYCLE_KIND,
    MLCYCLE_MODEL,
    MLCYCLE_WINDOW,
)

logger = logging.getLogger(__name__)

KIND = "canary"


@dataclass(frozen=True)
class CanaryOutcome:
    """What one canary check found, decided and did."""

    name: str
    window: str | None
    comparison: ArmComparison | None
    decision: CanaryDecision | None
    run_id: str | None = None
    acted: PromotionResult | None = None
    skipped: str | None = None
    problems: tuple[str, ...] = ()
    #: Why nothing was done or recorded: a concurrent check made the same decision first.
    superseded: str | None = None

    def evidence(self, policy: CanaryPolicy) -> dict[str, Any]:
        """The comparison, the decision and the policy: what an audit record carries."""
        return {
            "comparison": self.comparison.as_dict() if self.comparison else None,
            "decision": self.decision.as_dict() if self.decision else None,
            "policy": asdict(policy),
            "monitoring_run_id": self.run_id,
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the CLI's ``--json``)."""
        acted = self.acted.as_dict() if self.acted is not None else None
        return {
            "name": self.name,
            "window": self.window,
            "run_id": self.run_id,
            "skipped": self.skipped,
            "superseded": self.superseded,
            "comparison": self.comparison.as_dict() if self.comparison else None,
            "decision": self.decision.as_dict() if self.decision else None,
            "acted": acted,
            "problems": list(self.problems),
        }


def _share(client: Any, name: str, version: str) -> float | None:
    tags = dict(client.get_model_version(name, version).tags or {})
    try:
        return float(tags[CANARY_SHARE_TAG]) if CANARY_SHARE_TAG in tags else None
    except ValueError:
        return None


def _record(
    client: Any,
    settings: Settings,
    outcome: CanaryOutcome,
    policy: CanaryPolicy,
) -> str:
    from mlflow.entities import Metric, RunTag

    assert outcome.comparison is not None and outcome.decision is not None
    cmp, dec = outcome.comparison, outcome.decision
    experiment_id = ensure_experiment(client, EXPERIMENT, settings)
    run = client.create_run(
        experiment_id,
        run_name=f"canary-{cmp.name}-v{cmp.champion.version}-vs-v{cmp.challenger.version}",
        tags={
            MLCYCLE_KIND: KIND,
            MLCYCLE_MODEL: cmp.name,
            MLCYCLE_WINDOW: cmp.window or "",
            MLCYCLE_CANARY_CHAMPION: cmp.champion.version,
            MLCYCLE_CANARY_CHALLENGER: cmp.challenger.version,
            MLCYCLE_CANARY_METRIC: cmp.metric,
            MLCYCLE_CANARY_DECISION: dec.action,
        },
    )
    run_id = str(run.info.run_id)
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in cmp.metrics().items()]
    if dec.next_share is not None:
        metrics.append(Metric("next_share", dec.next_share, now, 0))
    tags = [RunTag(MLCYCLE_CANARY_REASONS, "; ".join(dec.reasons)[:5000])]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000], tags=tags if i == 0 else [])
    client.log_text(run_id, json.dumps(outcome.evidence(policy), indent=2), "canary.json")
    client.set_terminated(run_id)
    return run_id


def _audit_metrics(cmp: ArmComparison) -> dict[str, float]:
    keep = ("quality_", "error_rate_")
    arm = ("/labelled", "/requests", "/errors", "/error_rate", "/p99_ms")
    return {
        f"canary_{k.replace('/', '_')}": v
        for k, v in cmp.metrics().items()
        if k.startswith(keep) or k.endswith(arm) or "/quality/" in k
    }


def _act(
    client: Any, settings: Settings, outcome: CanaryOutcome, policy: CanaryPolicy
) -> PromotionResult | None:
    from mlcycle.register.canary import end_canary, set_canary_share
    from mlcycle.register.promote import promote

    assert outcome.comparison is not None and outcome.decision is not None
    cmp, dec = outcome.comparison, outcome.decision
    name, version = cmp.name, cmp.challenger.version
    reason = "canary: " + "; ".join(dec.reasons)
    evidence = outcome.evidence(policy)
    metrics = _audit_metrics(cmp)
    if dec.action == "promote":
        # The live evidence is the gate here; the schema check against the champion still runs.
        return promote(
            client,
            name,
            version,
            policy=GatePolicy(mode="disabled"),
            reason=reason,
            evidence=evidence,
            audit_metrics=metrics,
            audit_tags={MLCYCLE_CANARY_RUN_ID: outcome.run_id or ""},
            settings=settings,
        )
    if dec.action == "rollback":
        return end_canary(
            client,
            name,
            version,
            reason=reason,
            evidence=evidence,
            audit_metrics=metrics,
            settings=settings,
        )
    if dec.next_share is not None:
        return set_canary_share(
            client,
            name,
            version,
            dec.next_share,
            reason=reason,
            evidence=evidence,
            audit_metrics=metrics,
            settings=settings,
        )
    return None


def _withdraw(client: Any, run_id: str | None, why: str) -> None:
    """Delete a superseded check's run (kept, tagged why, if this user may not delete runs)."""
    try:
        if run_id is not None:
            client.set_tag(run_id, MLCYCLE_CANARY_SUPERSEDED, why[:5000])
            client.delete_run(run_id)
    except Exception as exc:
        logger.warning("could not delete the superseded canary check run %s: %s", run_id, exc)


def _check_label_classes(rows: pd.DataFrame, ref: Any) -> None:
    """Labels of a classifier must be its classes: 'yes'/'no' for a 0/1 target would score
    both arms 0 and could promote on nothing.

    Raises:
        DataError: a joined label is not one of the model's classes.
    """
    from mlcycle.monitoring.column_stats import class_labels

    given = rows[ref.target].dropna() if ref.target in rows.columns else pd.Series([])
    known = set(ref.classes) or set(class_labels(ref.sample[ref.target].dropna()))
    if ref.task != "classification" or given.empty or not known:
        return
    unknown = sorted(set(class_labels(pd.Series(list(given)))) - known)
    if unknown:
        shown = ", ".join(repr(v[:40]) for v in unknown[:5])
        raise DataError(
            f"labels: {ref.target} values {shown}{' …' if len(unknown) > 5 else ''} are not "
            f"classes of the model ({', '.join(sorted(known))}); send the label as the model "
            "predicts it"
        )


def evaluate(
    client: Any,
    settings: Settings,
    name: str,
    *,
    policy: CanaryPolicy | None = None,
    window: Window | None = None,
    labels: pd.DataFrame | None = None,
    metrics_text: str | None = None,
    reference: ReferenceData | None = None,
    config: DriftConfig | None = None,
    share: float | None = None,
    act: bool = False,
    record: bool = True,
) -> CanaryOutcome:
    """Compare ``@champion`` and ``@challenger`` on a window, decide, record, act if asked.

    Args:
        client: an ``MlflowClient``.
        settings: resolved settings (inference log root, tracking).
        name: registered model name.
        policy: the declared canary policy.
        window: the time range; by default from the challenger's registration until now.
        labels: late labels (``record_id`` or ``request_id`` [+ ``record_index``], target).
        metrics_text: the server's ``/metrics`` text, for per-arm errors and latency.
        reference: what both arms drift from; the champion's training reference by default.
        config: drift thresholds.
        share: the challenger's traffic share; by default its ``mlcycle.canary.share`` tag,
            else the policy's first step.
        act: carry the decision out in the registry (locked, audited, evidence attached).
        record: log the check as an MLflow run.

    Raises:
        ModelNotFound: no such model or champion.
        DataError: the inference log or labels cannot be read, or the metrics do not parse.
        RegistryConflict: ``@challenger`` names the champion.
    """
    from mlcycle.monitoring.canary import arm_traffic

    policy = policy or CanaryPolicy()
    get_registered_model(client, name)  # an unknown model is an error, not "no canary"
    champ = champion_version(client, name)
    chal = alias_version(client, name, CHALLENGER)
    if champ is None or chal is None:
        missing = "@champion" if champ is None else "@challenger"
        return CanaryOutcome(name, None, None, None, skipped=f"no canary: {name} has no {missing}")
    if champ == chal:
        raise RegistryConflict(f"@challenger and @champion of {name} are both version {chal}")
    if window is None:
        created = client.get_model_version(name, chal).creation_timestamp
        start = pd.Timestamp(created, unit="ms", tz="UTC").floor("s")
        window = Window.of(start, pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=1))
    ref = reference or load_reference(client, name, champ)
    problems: list[str] = []
    rows = read_inference_log(settings.inference_log, name, window, role=None, problems=problems)
    if labels is not None and not rows.empty:
        rows = join_labels(rows, labels, ref.target, problems)
        _check_label_classes(rows, ref)
        if ref.target not in rows.columns or rows[ref.target].notna().sum() == 0:
            problems.append(
                f"none of the {len(labels)} labels matched a record of the window (record_id "
                "is <X-Record-Id-Prefix>-<i>)"
            )
    try:
        traffic = arm_traffic(metrics_text) if metrics_text else None
    except ValueError as exc:
        raise DataError(f"the server's metrics do not parse: {exc}") from exc
    cmp = compare_arms(
        name,
        rows,
        ref,
        champion_version=champ,
        challenger_version=chal,
        metric=policy.metric,
        traffic=traffic,
        config=config,
        window=window.key,
        confidence=policy.confidence,
    )
    if share is None:
        share = _share(client, name, chal)
    decision = decide(cmp, policy, share)
    logger.info(
        "canary %s v%s vs v%s: %s (%s)",
        name,
        chal,
        champ,
        decision.action,
        "; ".join(decision.reasons),
    )
    out = CanaryOutcome(name, window.key, cmp, decision, problems=tuple(problems))
    if record:
        out = replace(out, run_id=_record(client, settings, out, policy))
    if act:
        try:
            acted = _act(client, settings, out, policy)
        except RegistryConflict as exc:  # another check decided otherwise first
            _withdraw(client, out.run_id, str(exc))
            raise RegistryConflict(f"{exc}; this check was not recorded") from exc
        if acted is not None and acted.unchanged:
            why = (
                f"a concurrent check already made the same decision ({acted.action} "
                f"v{acted.version}); nothing done or recorded by this one"
            )
            _withdraw(client, out.run_id, why)
            return replace(out, run_id=None, acted=acted, superseded=why)
        out = replace(out, acted=acted)
    return out


def check(
    client: Any, settings: Settings, name: str, window: Window | None = None
) -> CanaryOutcome:
    """One :func:`evaluate` as the settings declare it (the CLI's options already folded in).

    The policy from ``MLCYCLE_CANARY_*``, the labels table (``canary_labels``, re-read at
    every check) and the server's ``/metrics`` (``canary_metrics_url``), acting when
    ``canary_act`` says so.

    Raises:
        ConfigError: the policy's settings do not parse.
        DataError: the labels cannot be read or the metrics cannot be scraped.
    """
    from mlcycle.data import load_table

    labels = load_table(settings.canary_labels) if settings.canary_labels else None
    text = scrape(settings.canary_metrics_url) if settings.canary_metrics_url else None
    return evaluate(
        client,
        settings,
        name,
        policy=policy_from_settings(settings),
        window=window,
        labels=labels,
        metrics_text=text,
        act=settings.canary_act,
    )
