"""Canary evidence: both arms of a traffic split on the same window, side by side.

API: :func:`compare_arms` → :class:`ArmComparison`: per arm (:class:`ArmEvidence`)
request/error counts and latency, drift against the reference, the prediction distribution,
quality once labels joined; between the arms :func:`prediction_shift` and
:func:`quality_difference` with its interval and p-value. :data:`METRICS` lists the quality
measures a canary can be judged on.

Pure: the rows come from :func:`mlcycle.monitoring.inputs.read_inference_log` (and
:func:`~mlcycle.monitoring.inputs.join_labels`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.errors import ConfigError
from mlcycle.monitoring.canary_stats import Difference, two_means, two_proportions
from mlcycle.monitoring.canary_traffic import Traffic
from mlcycle.monitoring.column_stats import class_labels as _labels
from mlcycle.monitoring.drift import DriftConfig, DriftResult, analyse_window

CHAMPION = "champion"
CHALLENGER = "challenger"
#: Quality metrics a canary can be judged on, and whether higher is better.
METRICS: dict[str, bool] = {"accuracy": True, "mae": False, "mse": False}


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
