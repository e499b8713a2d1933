"""Canary evidence and decision: compare the two arms of a traffic split, then judge them.

API:

- statistics — :func:`wilson_interval`, :func:`two_proportions` (difference of proportions
  with a Newcombe hybrid-score interval and a pooled two-proportion z-test),
  :func:`two_means` (difference of means with a Welch interval and test) →
  :class:`Difference`.
- detect — :func:`compare_arms` → :class:`ArmComparison`: per arm (:class:`ArmEvidence`)
  request/error counts and latency, drift against the reference, the prediction
  distribution, quality once labels joined; between the arms the prediction shift and the
  quality difference with its interval and p-value. :func:`arm_traffic` reads the per-arm
  counters out of a server's Prometheus text.
- decide — :func:`decide` with :class:`CanaryPolicy` → :class:`CanaryDecision`
  (``promote``, ``rollback`` or ``continue``, optionally with the next traffic share).

Pure functions: the rows come from :func:`mlcycle.monitoring.inputs.read_inference_log` (and
:func:`~mlcycle.monitoring.inputs.join_labels`); :mod:`mlcycle.monitoring.canary_run` reads,
records and acts.

Every difference is *challenger minus champion, oriented so that positive is better* (for a
loss such as MAE it is ``champion - challenger``); its interval is the evidence the policy
reads, so "at least as good" means the interval's lower bound is above ``-tolerance`` and
"significantly worse" means its upper bound is below zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlcycle.errors import ConfigError, DataError
from mlcycle.monitoring.column_stats import class_labels as _labels
from mlcycle.monitoring.drift import DriftConfig, DriftResult, analyse_window

CHAMPION = "champion"
CHALLENGER = "challenger"
#: Quality metrics a canary can be judged on, and whether higher is better.
METRICS: dict[str, bool] = {"accuracy": True, "mae": False, "mse": False}
Action = Literal["promote", "rollback", "continue"]


# --------------------------------------------------------------------------- statistics


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


# --------------------------------------------------------------------------- traffic


@dataclass(frozen=True)
class Traffic:
    """What the server counted for one arm (from its Prometheus series)."""

    requests: int = 0
    errors: int = 0
    p99_ms: float | None = None


def _quantile_from_buckets(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            width = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / width if width else 1.0)
        prev_le, prev_count = le, count
    return prev_le


def arm_traffic(text: str, route: str = "/invocations") -> dict[tuple[str, str], Traffic]:
    """Per-arm request and error counts and p99 latency from a server's ``/metrics`` text.

    Reads the series that carry ``role`` and ``version`` labels: ``mlcycle_requests``
    (``status`` label; 5xx are errors) and ``mlcycle_request_duration_seconds`` buckets.
    Series of other routes are ignored when they carry a ``route`` label.

    Returns:
        ``{(role, version): Traffic}``; empty when the server exports no per-arm series.
    """
    from prometheus_client.parser import text_string_to_metric_families

    req: dict[tuple[str, str], list[int]] = {}
    buckets: dict[tuple[str, str], dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = s.labels
            if "role" not in labels or "version" not in labels:
                continue
            if labels.get("route", route) != route:
                continue
            key = (labels["role"], labels["version"])
            if s.name == "mlcycle_requests_total":
                counts = req.setdefault(key, [0, 0])
                counts[0] += int(s.value)
                if str(labels.get("status", "")).startswith("5"):
                    counts[1] += int(s.value)
            elif s.name == "mlcycle_request_duration_seconds_bucket":
                le = float(labels["le"])
                per = buckets.setdefault(key, {})
                per[le] = per.get(le, 0.0) + float(s.value)
    out: dict[tuple[str, str], Traffic] = {}
    for key in set(req) | set(buckets):
        q = _quantile_from_buckets(list(buckets.get(key, {}).items()), 0.99)
        n, e = req.get(key, [0, 0])
        out[key] = Traffic(n, e, None if q is None else q * 1000)
    return out


# --------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class ArmEvidence:
    """One arm of the split on the window."""

    role: str
    version: str
    records: int
    requests: int
    errors: int | None
    p99_ms: float | None
    labelled: int
    drift_status: str | None
    drift_share: float | None
    prediction_drift: float | None
    predictions: dict[str, float]
    quality: dict[str, float] = field(default_factory=dict)

    @property
    def error_rate(self) -> float | None:
        """Failed share of the arm's requests, when the server's counters were given."""
        if self.errors is None or self.requests <= 0:
            return None
        return self.errors / self.requests


@dataclass(frozen=True)
class ArmComparison:
    """The two arms on the same window, and their differences with honest uncertainty."""

    name: str
    window: str | None
    metric: str
    champion: ArmEvidence
    challenger: ArmEvidence
    quality: Difference | None
    error_rate: Difference | None
    prediction_shift: dict[str, float | str] | None

    def metrics(self) -> dict[str, float]:
        """Flat finite MLflow metrics: per arm (``champion/...``, ``challenger/...``) and diff."""
        out: dict[str, float] = {}
        for arm in (self.champion, self.challenger):
            p = arm.role
            out[f"{p}/records"] = float(arm.records)
            out[f"{p}/requests"] = float(arm.requests)
            out[f"{p}/labelled"] = float(arm.labelled)
            for k, v in (
                ("errors", arm.errors),
                ("error_rate", arm.error_rate),
                ("p99_ms", arm.p99_ms),
                ("drift_share", arm.drift_share),
                ("prediction_drift", arm.prediction_drift),
            ):
                if v is not None:
                    out[f"{p}/{k}"] = float(v)
            out |= {f"{p}/quality/{k}": v for k, v in arm.quality.items()}
            out |= {f"{p}/prediction/{k}": v for k, v in arm.predictions.items()}
        for label, diff in (("quality", self.quality), ("error_rate", self.error_rate)):
            if diff is not None:
                out[f"{label}_gain"] = diff.gain
                out[f"{label}_ci_low"] = diff.ci_low
                out[f"{label}_ci_high"] = diff.ci_high
                out[f"{label}_p_value"] = diff.p_value
        if self.prediction_shift is not None:
            out |= {
                f"prediction_shift/{k}": float(v)
                for k, v in self.prediction_shift.items()
                if isinstance(v, int | float)
            }
        return {k: v for k, v in out.items() if math.isfinite(v)}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the CLI's ``--json``, the audit record's evidence)."""
        doc = asdict(self)
        doc["champion"]["error_rate"] = self.champion.error_rate
        doc["challenger"]["error_rate"] = self.challenger.error_rate
        return _finite(doc)


def _finite(value: Any) -> Any:
    """JSON has no NaN: non-finite floats become ``None``."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _prediction_summary(pred: pd.Series, task: str) -> dict[str, float]:
    if pred.empty:
        return {}
    if task == "classification":
        shares = _labels(pred).value_counts(normalize=True)
        return {f"share_{k}": float(v) for k, v in shares.items()}
    x = pd.to_numeric(pred, errors="coerce").dropna().to_numpy(dtype=float)
    if not len(x):
        return {}
    return {
        "mean": float(x.mean()),
        "std": float(x.std()),
        "p50": float(np.quantile(x, 0.5)),
        "p90": float(np.quantile(x, 0.9)),
    }


def prediction_shift(
    champion: pd.Series, challenger: pd.Series, task: str
) -> dict[str, float | str] | None:
    """How far the arms' prediction distributions are apart, with a test of "the same".

    Classification: chi-square test of homogeneity on the class counts and the
    Jensen–Shannon distance of the shares. Regression: two-sample Kolmogorov–Smirnov.
    ``None`` when an arm has no predictions.
    """
    if champion.empty or challenger.empty:
        return None
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    if task == "classification":
        a, b = _labels(champion).value_counts(), _labels(challenger).value_counts()
        classes = sorted(set(a.index) | set(b.index))
        table = np.array([[a.get(c, 0) for c in classes], [b.get(c, 0) for c in classes]])
        js = float(jensenshannon(table[0] / table[0].sum(), table[1] / table[1].sum(), base=2))
        if len(classes) < 2:
            return {"test": "chi2", "statistic": 0.0, "p_value": 1.0, "jensenshannon": js}
        chi = stats.chi2_contingency(table)
        return {
            "test": "chi2",
            "statistic": float(chi.statistic),
            "p_value": float(chi.pvalue),
            "jensenshannon": js,
        }
    x = pd.to_numeric(champion, errors="coerce").dropna().to_numpy(dtype=float)
    y = pd.to_numeric(challenger, errors="coerce").dropna().to_numpy(dtype=float)
    if not len(x) or not len(y):
        return None
    ks = stats.ks_2samp(x, y)
    return {
        "test": "ks",
        "statistic": float(ks.statistic),
        "p_value": float(ks.pvalue),
        "mean_difference": float(y.mean() - x.mean()),
    }


def quality_difference(
    metric: str,
    champion: pd.DataFrame,
    challenger: pd.DataFrame,
    target: str,
    confidence: float = 0.95,
) -> Difference | None:
    """The declared metric on the labelled rows of each arm; ``None`` without labels on both.

    Raises:
        ConfigError: an unknown metric.
    """
    if metric not in METRICS:
        raise ConfigError(f"canary metric must be one of {', '.join(METRICS)}, not '{metric}'")

    def labelled(f: pd.DataFrame) -> pd.DataFrame:
        if target not in f.columns or f.empty:
            return f.iloc[:0]
        return f[f[target].notna()]

    a, b = labelled(champion), labelled(challenger)
    if a.empty or b.empty:
        return None
    if metric == "accuracy":
        hits_a = int((_labels(a["prediction"]) == _labels(a[target])).sum())
        hits_b = int((_labels(b["prediction"]) == _labels(b[target])).sum())
        return two_proportions("accuracy", hits_a, len(a), hits_b, len(b), confidence=confidence)
    if len(a) < 2 or len(b) < 2:
        return None

    def loss(f: pd.DataFrame) -> np.ndarray:
        err = pd.to_numeric(f["prediction"], errors="coerce").to_numpy(dtype=float) - (
            pd.to_numeric(f[target], errors="coerce").to_numpy(dtype=float)
        )
        return np.abs(err) if metric == "mae" else err**2

    return two_means(metric, loss(a), loss(b), higher_is_better=False, confidence=confidence)


def _arm_quality(metric: str, f: pd.DataFrame, target: str) -> dict[str, float]:
    if target not in f.columns:
        return {}
    lab = f[f[target].notna()]
    if lab.empty:
        return {}
    if metric == "accuracy":
        return {"accuracy": float((_labels(lab["prediction"]) == _labels(lab[target])).mean())}
    err = pd.to_numeric(lab["prediction"], errors="coerce") - pd.to_numeric(
        lab[target], errors="coerce"
    )
    return {"mae": float(err.abs().mean()), "mse": float((err**2).mean())}


def _arm_rows(rows: pd.DataFrame, role: str, version: str) -> pd.DataFrame:
    if rows.empty or "role" not in rows.columns or "model_version" not in rows.columns:
        return rows.iloc[:0]
    keep = (rows["role"].astype(str) == role) & (rows["model_version"].astype(str) == version)
    return rows[keep]


def _requests(rows: pd.DataFrame) -> int:
    if rows.empty:
        return 0
    key = "record_id" if "record_id" in rows.columns else "request_id"
    if key == "record_id" and "record_index" in rows.columns:
        # record_id is `{uid}-{index}`: one request is one uid.
        return int(rows["record_id"].astype(str).str.rsplit("-", n=1).str[0].nunique())
    return int(rows[key].nunique()) if key in rows.columns else len(rows)


def compare_arms(
    name: str,
    rows: pd.DataFrame,
    reference: Any,
    *,
    champion_version: str,
    challenger_version: str,
    metric: str = "accuracy",
    traffic: Mapping[tuple[str, str], Traffic] | None = None,
    config: DriftConfig | None = None,
    window: str | None = None,
    confidence: float = 0.95,
) -> ArmComparison:
    """Both arms of the split on the same window.

    Args:
        name: registered model name.
        rows: inference-log rows of the window (every role), labels already joined
            (:func:`~mlcycle.monitoring.inputs.join_labels`) when they arrived.
        reference: the :class:`~mlcycle.monitoring.inputs.ReferenceData` both arms drift from.
        champion_version / challenger_version: which version each arm is.
        metric: the quality measure (:data:`METRICS`).
        traffic: the server's per-arm counters (:func:`arm_traffic`) for errors and latency;
            without them the request count comes from the log and errors are unknown.
        config: drift thresholds (the report is not written).
        window: the window's key, recorded with the result.
        confidence: confidence level of the intervals.

    Raises:
        ConfigError: an unknown metric.
    """
    if metric not in METRICS:
        raise ConfigError(f"canary metric must be one of {', '.join(METRICS)}, not '{metric}'")
    config = config or DriftConfig()
    target = reference.target
    task = reference.task
    arms: dict[str, tuple[ArmEvidence, pd.DataFrame]] = {}
    for role, version in ((CHAMPION, champion_version), (CHALLENGER, challenger_version)):
        f = _arm_rows(rows, role, str(version))
        t = (traffic or {}).get((role, str(version)))
        drift: DriftResult | None = analyse_window(reference, f, config) if len(f) else None
        usable = drift is not None and drift.status != "insufficient_data"
        n_lab = int(f[target].notna().sum()) if target in f.columns else 0
        arms[role] = (
            ArmEvidence(
                role=role,
                version=str(version),
                records=len(f),
                requests=t.requests if t is not None else _requests(f),
                errors=t.errors if t is not None else None,
                p99_ms=t.p99_ms if t is not None else None,
                labelled=n_lab,
                drift_status=drift.status if drift is not None else None,
                drift_share=drift.drift_share if usable and drift is not None else None,
                prediction_drift=(
                    drift.prediction.score
                    if usable and drift is not None and drift.prediction is not None
                    else None
                ),
                predictions=_prediction_summary(
                    f["prediction"] if "prediction" in f.columns else pd.Series(dtype=float), task
                ),
                quality=_arm_quality(metric, f, target),
            ),
            f,
        )
    (champ, cf), (chal, hf) = arms[CHAMPION], arms[CHALLENGER]
    errors = None
    if (
        champ.errors is not None
        and chal.errors is not None
        and champ.requests > 0
        and chal.requests > 0
    ):
        errors = two_proportions(
            "error_rate",
            champ.errors,
            champ.requests,
            chal.errors,
            chal.requests,
            higher_is_better=False,
            confidence=confidence,
        )
    empty = pd.Series(dtype=float)
    return ArmComparison(
        name=name,
        window=window,
        metric=metric,
        champion=champ,
        challenger=chal,
        quality=quality_difference(metric, cf, hf, target, confidence),
        error_rate=errors,
        prediction_shift=prediction_shift(
            cf["prediction"] if "prediction" in cf.columns else empty,
            hf["prediction"] if "prediction" in hf.columns else empty,
            task,
        ),
    )


# --------------------------------------------------------------------------- decide


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
