"""Registry stage: register, champion/challenger gate, promote, rollback, audit trail.

API:

- :func:`register` — a training run's model becomes a new version (Staging, ``@challenger``).
- :func:`adopt` — any run's model, after writing the lifecycle contract onto its run.
- :func:`gate` with :class:`GatePolicy` → :class:`GateDecision` — challenger vs champion on
  the same data with training's metrics (:mod:`mlcycle.model_metrics`); decision kept as
  version tags and audit run.
- :func:`promote` / :func:`rollback` → :class:`PromotionResult` — serialised by a lock that
  holds across processes (PostgreSQL advisory lock, or a file lock next to a SQLite store).
- :func:`end_canary` / :func:`set_canary_share` — a canary's challenger archived (champion
  untouched) or moved to its next traffic share, audited with the evidence.
- :func:`history` → list of :class:`AuditEntry` — who, when, from, to, metrics, reason.
- :func:`champion_version`, :func:`model_uri` (from :mod:`mlcycle.uris`).
"""

from mlcycle.register.audit import history
from mlcycle.register.canary import end_canary, set_canary_share
from mlcycle.register.core import adopt, champion_version, register
from mlcycle.register.gate import gate
from mlcycle.register.promote import promote, rollback
from mlcycle.register.types import (
    AUDIT_EXPERIMENT,
    CHALLENGER,
    CHAMPION,
    AuditEntry,
    GateDecision,
    GatePolicy,
    PromotionResult,
)
from mlcycle.uris import model_uri

__all__ = [
    "AUDIT_EXPERIMENT",
    "CHALLENGER",
    "CHAMPION",
    "AuditEntry",
    "GateDecision",
    "GatePolicy",
    "PromotionResult",
    "adopt",
    "champion_version",
    "end_canary",
    "gate",
    "history",
    "model_uri",
    "promote",
    "register",
    "rollback",
    "set_canary_share",
]
