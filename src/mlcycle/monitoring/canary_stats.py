"""Canary statistics: differences between the two arms with honest uncertainty.

API: :class:`Difference`, :func:`wilson_interval`, :func:`two_proportions` (difference of
proportions with a Newcombe hybrid-score interval and a pooled two-proportion z-test),
:func:`two_means` (difference of means with a Welch interval and test).

Every difference is *challenger minus champion, oriented so that positive is better* (for a
loss such as MAE it is ``champion - challenger``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlcycle.errors import DataError


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (``(0, 1)`` when ``n`` is 0)."""
    if n <= 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Difference:
    """Challenger vs champion on one measure, oriented so that a positive ``gain`` is better.

    Attributes:
        measure: what was compared (``accuracy``, ``mae``, ``error_rate`` …).
        champion / challenger: the measure on each arm.
        gain: ``challenger - champion`` when higher is better, else ``champion - challenger``.
        ci_low / ci_high: the confidence interval of ``gain``.
        p_value: two-sided p-value of "no difference".
        method: how the interval and test were computed.
        n_champion / n_challenger: observations behind each arm's value.
    """

    measure: str
    champion: float
    challenger: float
    gain: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str
    n_champion: int
    n_challenger: int
    confidence: float = 0.95


def two_proportions(
    measure: str,
    x_champion: int,
    n_champion: int,
    x_challenger: int,
    n_challenger: int,
    *,
    higher_is_better: bool = True,
    confidence: float = 0.95,
) -> Difference:
    """Difference of two proportions: Newcombe's hybrid score interval and a z-test.

    The interval (Newcombe 1998, method 10) combines the Wilson intervals of each arm and
    keeps its coverage for small counts and proportions near 0 or 1, where the normal
    (Wald) interval does not; the p-value is the pooled two-proportion z-test.

    Raises:
        DataError: an arm has no observations, or a count exceeds its total.
    """
    if n_champion <= 0 or n_challenger <= 0:
        raise DataError(f"{measure}: both arms need observations to be compared")
    if not (0 <= x_champion <= n_champion and 0 <= x_challenger <= n_challenger):
        raise DataError(f"{measure}: a count is negative or larger than its total")
    from scipy.stats import norm

    p0, p1 = x_champion / n_champion, x_challenger / n_challenger
    l0, u0 = wilson_interval(x_champion, n_champion, confidence)
    l1, u1 = wilson_interval(x_challenger, n_challenger, confidence)
    d = p1 - p0
    low = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    pooled = (x_champion + x_challenger) / (n_champion + n_challenger)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_champion + 1 / n_challenger))
    p_value = 1.0 if se == 0 else float(2 * norm.sf(abs(d) / se))
    if not higher_is_better:
        d, low, high = -d, -high, -low
    return Difference(
        measure, p0, p1, d, low, high, p_value, "newcombe-wilson + pooled z-test",
        n_champion, n_challenger, confidence,
    )  # fmt: skip


def two_means(
    measure: str,
    champion: Sequence[float] | np.ndarray,
    challenger: Sequence[float] | np.ndarray,
    *,
    higher_is_better: bool = False,
    confidence: float = 0.95,
) -> Difference:
    """Difference of two means (e.g. per-record absolute errors): Welch's interval and t-test.

    Raises:
        DataError: an arm has fewer than two finite values.
    """
    from scipy.stats import ttest_ind

    a = np.asarray(champion, dtype=float)
    b = np.asarray(challenger, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        raise DataError(f"{measure}: each arm needs at least two values to be compared")
    m0, m1 = float(a.mean()), float(b.mean())
    if a.var() == 0 and b.var() == 0:
        d = m1 - m0
        low = high = d
        p_value = 1.0 if d == 0 else 0.0
    else:
        res = ttest_ind(b, a, equal_var=False)
        ci = res.confidence_interval(confidence)
        d, low, high, p_value = m1 - m0, float(ci.low), float(ci.high), float(res.pvalue)
    if not higher_is_better:
        d, low, high = -d, -high, -low
    return Difference(measure, m0, m1, d, low, high, p_value, "welch t", len(a), len(b), confidence)
