"""Values of the registry stage: gate policy, gate decision, promotion result, audit entry.

API: :class:`GatePolicy`, :class:`GateDecision`, :class:`PromotionResult`, :class:`AuditEntry`,
constants :data:`CHAMPION`, :data:`CHALLENGER`, :data:`AUDIT_EXPERIMENT`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mlcycle.errors import ConfigError, GateRejected
from mlcycle.model_metrics import canonical_metric
from mlcycle.tags import MLCYCLE_CANARY_SHARE
from mlcycle.uris import CHALLENGER, CHAMPION

__all__ = ["CHALLENGER", "CHAMPION"]  # re-exported: the aliases are defined in mlcycle.uris
AUDIT_EXPERIMENT = "mlcycle-registry-audit"
CANARY_SHARE_TAG = MLCYCLE_CANARY_SHARE

GateMode = Literal["enabled", "dry_run", "disabled"]

#: Default gate metric per task (names and directions: :mod:`mlcycle.model_metrics`).
DEFAULT_METRIC = {"classification": "roc_auc", "regression": "rmse"}


@dataclass(frozen=True)
class GatePolicy:
    """Declared thresholds of the champion/challenger gate.

    ``metric`` defaults to ``roc_auc`` for classifiers and ``rmse`` for regressors; it is any
    metric of :mod:`mlcycle.model_metrics`, whose direction is known. The names
    ``mlflow.models.evaluate`` reports (``root_mean_squared_error``) are kept as aliases and
    stored as mlcycle's (``rmse``). With no champion the absolute
    thresholds alone decide. ``allow_pickle`` lets the gate load models whose files can run
    code (:mod:`mlcycle.trust`); off, such a challenger or champion is refused.

    Raises:
        ConfigError: an unknown mode or a non-positive latency bound.
    """

    mode: GateMode = "enabled"
    metric: str | None = None
    min_score: float | None = None
    min_improvement: float = 0.0
    max_latency_ms_per_row: float | None = None
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        if self.metric is not None:
            object.__setattr__(self, "metric", canonical_metric(self.metric))
        if self.mode not in ("enabled", "dry_run", "disabled"):
            raise ConfigError(f"gate mode must be enabled, dry_run or disabled, not '{self.mode}'")
        if self.max_latency_ms_per_row is not None and self.max_latency_ms_per_row <= 0:
            raise ConfigError("max_latency_ms_per_row must be positive")


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided for one challenger, and why."""

    passed: bool
    mode: str
    reasons: list[str]
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float]
    challenger_version: str
    champion_version: str | None

    def enforce(self, name: str) -> None:
        """Refuse the version of ``name`` when an enabled gate failed it.

        ``dry_run`` and ``disabled`` decisions are recorded, never enforced.

        Raises:
            GateRejected: the mode is ``enabled`` and the challenger did not pass.
        """
        if self.mode == "enabled" and not self.passed:
            raise GateRejected(f"{name} version {self.challenger_version} did not pass the gate")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return {
            "passed": self.passed,
            "mode": self.mode,
            "reasons": list(self.reasons),
            "challenger_version": self.challenger_version,
            "champion_version": self.champion_version,
            "challenger_metrics": dict(self.challenger_metrics),
            "champion_metrics": dict(self.champion_metrics),
        }


@dataclass(frozen=True)
class PromotionResult:
    """A promotion or rollback that happened (or, in dry-run, would have)."""

    name: str
    action: Literal["promote", "rollback", "canary_rollback", "canary_step"]
    version: str
    previous_version: str | None
    forced: bool
    reason: str | None
    decision: GateDecision | None
    audit_run_id: str | None
    #: True when the change had already been made (the version already was the champion; a
    #: concurrent decision already ended the canary or took the same step): nothing was
    #: gated, changed or audited.
    unchanged: bool = False

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return {
            "name": self.name,
            "action": self.action,
            "version": self.version,
            "previous_version": self.previous_version,
            "forced": self.forced,
            "reason": self.reason,
            "decision": self.decision.as_dict() if self.decision is not None else None,
            "audit_run_id": self.audit_run_id,
            "unchanged": self.unchanged,
        }


@dataclass(frozen=True)
class AuditEntry:
    """One promotion or rollback read back from the audit experiment."""

    name: str
    action: str
    who: str
    when: str
    from_version: str | None
    to_version: str
    forced: bool
    reason: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str = ""
    #: ``done``; ``failed`` when the registry change failed and was undone (see ``error``);
    #: ``pending`` while it runs, or when the process died before finishing it.
    outcome: str = "done"
    error: str | None = None

    def score(self) -> tuple[str, float] | None:
        """The challenger's headline gate metric in mlcycle's name (``roc_auc``, ``rmse``)."""
        for task in ("classification", "regression"):
            metric = DEFAULT_METRIC[task]
            value = self.metrics.get(f"challenger_{metric}")
            if value is not None:
                return metric, value
        return None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return {
            "name": self.name,
            "action": self.action,
            "who": self.who,
            "when": self.when,
            "from": self.from_version,
            "to": self.to_version,
            "forced": self.forced,
            "reason": self.reason,
            "metrics": self.metrics,
            "run_id": self.run_id,
            "outcome": self.outcome,
            "error": self.error,
        }
