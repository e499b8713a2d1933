"""Decide: a declared retrain policy turns window outcomes into a decision with reasons.

API: :class:`RetrainPolicy`, :class:`WindowOutcome`, :class:`Decision`, :func:`is_bad`,
:func:`decide`.

A window is *bad* when detection found drift (its status is ``drift``: the share of drifted
features reached :attr:`mlcycle.monitoring.DriftConfig.drift_share`, the one threshold, whose
only owner is detection) or its quality drop reaches ``quality_drop``; the policy retrains
when at least ``bad_windows`` of the last ``of_last`` windows with data are bad and (by
default) the latest one is. Windows with insufficient data neither count as bad nor as good,
and never trigger a retrain themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlcycle.errors import ConfigError


@dataclass(frozen=True)
class RetrainPolicy:
    """When to retrain: values, not code paths.

    A window whose status is ``drift`` is bad: what counts as drift (the share of drifted
    features) is detection's to say, :class:`~mlcycle.monitoring.DriftConfig`'s
    ``drift_share``, so the status, the report and the policy cannot disagree.

    Attributes:
        quality_drop: a window whose quality dropped at least this much is bad
            (accuracy points for classifiers, relative RMSE rise for regressors).
        bad_windows: N — bad windows needed among the last ``of_last``.
        of_last: M — how many recent windows (with data) are considered.
        latest_must_be_bad: only retrain when the newest window is bad.
    """

    quality_drop: float = 0.05
    bad_windows: int = 2
    of_last: int = 3
    latest_must_be_bad: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.bad_windows <= self.of_last:
            raise ConfigError("retrain policy needs 1 <= bad_windows <= of_last")


@dataclass(frozen=True)
class WindowOutcome:
    """What the policy needs to know about one window.

    Attributes:
        key: the window's key (or its run id).
        status: detection's verdict (``ok``, ``drift``, ``insufficient_data``).
        drift_share: the share of features that drifted (for the reasons).
        quality_drop: how much quality dropped, when labels were joined.
        drifted: the drifted features.
        drift_threshold: the share detection judged against (for the reasons), when known.
    """

    key: str
    status: str
    drift_share: float
    quality_drop: float | None = None
    drifted: tuple[str, ...] = ()
    drift_threshold: float | None = None


@dataclass(frozen=True)
class Decision:
    """The policy's answer: retrain or not, and why."""

    retrain: bool
    reasons: tuple[str, ...]
    bad: int = 0
    considered: int = 0


def is_bad(outcome: WindowOutcome, policy: RetrainPolicy) -> tuple[bool, list[str]]:
    """Whether one window is bad under ``policy``, with the reasons."""
    if outcome.status == "insufficient_data":
        return False, []
    reasons = []
    if outcome.status == "drift":
        cols = ", ".join(outcome.drifted) or "features"
        limit = "" if outcome.drift_threshold is None else f" >= {outcome.drift_threshold:.2f}"
        reasons.append(f"drift share {outcome.drift_share:.2f}{limit} ({cols})")
    if outcome.quality_drop is not None and outcome.quality_drop >= policy.quality_drop:
        reasons.append(f"quality drop {outcome.quality_drop:.3f} >= {policy.quality_drop:.3f}")
    return bool(reasons), reasons


def decide(history: Sequence[WindowOutcome], policy: RetrainPolicy) -> Decision:
    """Decide on the newest window given the windows before it (oldest first).

    Args:
        history: outcomes in time order; the last one is the window just analysed.
        policy: the declared policy.
    """
    if not history:
        return Decision(False, ("no window analysed yet",))
    latest = history[-1]
    if latest.status == "insufficient_data":
        return Decision(False, (f"window {latest.key}: insufficient data, no decision",))
    with_data = [h for h in history if h.status != "insufficient_data"][-policy.of_last :]
    verdicts = [is_bad(h, policy) for h in with_data]
    n_bad = sum(bad for bad, _ in verdicts)
    latest_bad, latest_reasons = verdicts[-1]
    summary = (
        f"{n_bad} of the last {len(with_data)} window(s) bad "
        f"(policy: {policy.bad_windows} of {policy.of_last})"
    )
    if policy.latest_must_be_bad and not latest_bad:
        return Decision(False, ("latest window is fine", summary), n_bad, len(with_data))
    if n_bad >= policy.bad_windows:
        return Decision(True, (*latest_reasons, summary), n_bad, len(with_data))
    return Decision(False, (*latest_reasons, summary), n_bad, len(with_data))
