"""Canary decision: a declared policy judges the arms' evidence on one window.

API: :class:`CanaryPolicy`, :func:`decide` → :class:`CanaryDecision` (``promote``,
``rollback`` or ``continue``, optionally with the next traffic share), :func:`next_step`,
:func:`policy_from_settings`.

The policy reads the interval of each difference: "at least as good" means the interval's
lower bound is above ``-tolerance`` and "significantly worse" means its upper bound is below
zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from mlcycle.errors import ConfigError
from mlcycle.monitoring.canary_compare import METRICS, ArmComparison

if TYPE_CHECKING:
    from mlcycle.config import Settings

Action = Literal["promote", "rollback", "continue"]


@dataclass(frozen=True)
class CanaryPolicy:
    """When a canary is promoted, rolled back, or kept running: values, not code paths.

    Attributes:
        metric: the quality measure judged (:data:`METRICS`).
        min_labelled: labelled records each arm needs before quality can promote or roll
            back.
        tolerance: how much worse the challenger may be and still count as "at least as
            good" (non-inferiority margin, in the metric's units).
        max_error_rate: the challenger's failed-request share above which it is rolled back.
        min_requests: challenger requests needed before its error rate is judged.
        max_p99_ms: the challenger's p99 latency (ms) above which it is rolled back.
        steps: traffic shares the canary goes through; evidence good at a share below the
            last step raises the share to the next one, evidence good at the share just
            before ``1.0`` (or at the last step) promotes.
        confidence: confidence level of the intervals.

    Raises:
        ConfigError: a value out of range.
    """

    metric: str = "accuracy"
    min_labelled: int = 200
    tolerance: float = 0.0
    max_error_rate: float = 0.01
    min_requests: int = 100
    max_p99_ms: float | None = None
    steps: tuple[float, ...] = (0.1, 0.5, 1.0)
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(
                f"canary metric must be one of {', '.join(METRICS)}, not '{self.metric}'"
            )
        if self.min_labelled < 1:
            raise ConfigError("canary min_labelled must be at least 1")
        if self.tolerance < 0:
            raise ConfigError("canary tolerance must not be negative")
        if not 0 <= self.max_error_rate <= 1:
            raise ConfigError("canary max_error_rate must be in [0, 1]")
        if self.max_p99_ms is not None and self.max_p99_ms <= 0:
            raise ConfigError("canary max_p99_ms must be positive")
        if not 0 < self.confidence < 1:
            raise ConfigError("canary confidence must be in (0, 1)")
        steps = tuple(self.steps)
        if any(not 0 < s <= 1 for s in steps) or list(steps) != sorted(set(steps)):
            raise ConfigError("canary steps must be increasing shares in (0, 1], e.g. 0.1,0.5,1")


@dataclass(frozen=True)
class CanaryDecision:
    """The policy's answer for one window, and why."""

    action: Action
    reasons: tuple[str, ...]
    share: float | None = None
    next_share: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def next_step(steps: Sequence[float], share: float | None) -> float | None:
    """The step after ``share``, or ``None`` when the next move is promotion (100 %)."""
    later = [s for s in steps if s < 1.0 and (share is None or s > share + 1e-9)]
    return later[0] if later else None


def decide(
    comparison: ArmComparison, policy: CanaryPolicy, share: float | None = None
) -> CanaryDecision:
    """Promote, roll back or continue the canary, from the window's evidence.

    Rollback comes first: an error rate or p99 latency over its limit, or quality
    significantly worse (the interval of the gain lies below zero) once both arms have
    ``min_labelled`` labels. Promotion needs those labels and the interval's lower bound at
    or above ``-tolerance``; below the last step it raises the share instead.

    Args:
        comparison: the arms on one window.
        policy: the declared thresholds.
        share: the challenger's current traffic share, when known.
    """
    chal, champ = comparison.challenger, comparison.champion
    if share is None and policy.steps:
        share = policy.steps[0]
    rate = chal.error_rate
    if rate is not None and chal.requests >= policy.min_requests and rate > policy.max_error_rate:
        return CanaryDecision(
            "rollback",
            (
                f"challenger v{chal.version} failed {chal.errors} of {chal.requests} requests "
                f"({rate:.2%} > limit {policy.max_error_rate:.2%})",
            ),
            share,
        )
    if (
        policy.max_p99_ms is not None
        and chal.p99_ms is not None
        and chal.p99_ms > policy.max_p99_ms
    ):
        return CanaryDecision(
            "rollback",
            (
                f"challenger v{chal.version} p99 latency {chal.p99_ms:.1f} ms > limit "
                f"{policy.max_p99_ms:g} ms",
            ),
            share,
        )
    short = [a for a in (champ, chal) if a.labelled < policy.min_labelled]
    if short or comparison.quality is None:
        counts = ", ".join(f"{a.role} {a.labelled}" for a in (champ, chal))
        return CanaryDecision(
            "continue",
            (f"not enough evidence: labelled records {counts}; {policy.min_labelled} per arm",),
            share,
        )
    q = comparison.quality
    pct = f"{q.confidence:.0%}"
    line = (
        f"{q.measure}: champion {q.champion:.4f} (n={q.n_champion}), challenger "
        f"{q.challenger:.4f} (n={q.n_challenger}); gain {q.gain:+.4f}, {pct} CI "
        f"[{q.ci_low:+.4f}, {q.ci_high:+.4f}], p={q.p_value:.3g}"
    )
    if q.ci_high < 0:
        return CanaryDecision("rollback", (line, "challenger is significantly worse"), share)
    floor = -policy.tolerance if policy.tolerance else 0.0  # not "-0"
    if q.ci_low >= floor:
        nxt = next_step(policy.steps, share)
        if nxt is not None:
            return CanaryDecision(
                "continue",
                (line, f"at least as good (lower bound >= {floor:g}): raise the share"),
                share,
                nxt,
            )
        return CanaryDecision(
            "promote", (line, f"at least as good (lower bound >= {floor:g})"), share
        )
    return CanaryDecision(
        "continue", (line, "inconclusive: the interval straddles the tolerance"), share
    )


def policy_from_settings(settings: Settings, **overrides: Any) -> CanaryPolicy:
    """The canary policy the ``MLCYCLE_CANARY_*`` settings declare (``None`` overrides ignored).

    Raises:
        ConfigError: a value out of range or steps that do not parse.
    """
    try:
        steps = tuple(float(s) for s in settings.canary_steps.split(",") if s.strip())
    except ValueError:
        raise ConfigError(
            f"canary steps must be comma-separated shares like 0.1,0.5,1, not "
            f"'{settings.canary_steps}'"
        ) from None
    values: dict[str, Any] = {
        "metric": settings.canary_metric,
        "min_labelled": settings.canary_min_labelled,
        "tolerance": settings.canary_tolerance,
        "max_error_rate": settings.canary_max_error_rate,
        "min_requests": settings.canary_min_requests,
        "max_p99_ms": settings.canary_max_p99_ms,
        "steps": steps,
    }
    values |= {k: v for k, v in overrides.items() if v is not None}
    return CanaryPolicy(**values)
