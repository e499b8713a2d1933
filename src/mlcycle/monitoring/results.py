"""Detection's values: what counts as drift, and what was found.

API: :class:`DriftConfig`, :class:`ColumnDrift`, :class:`Finding`, :class:`DriftResult`,
:data:`Status`, :data:`PROFILE_METHODS`, :data:`DEFAULT_THRESHOLDS`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "drift", "insufficient_data"]

#: Methods computed from the reference profile over the full window.
PROFILE_METHODS = ("wasserstein", "jensenshannon", "psi")
#: Default thresholds (Evidently's defaults for the same methods).
DEFAULT_THRESHOLDS = {"wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.1}


@dataclass(frozen=True)
class DriftConfig:
    """What counts as drift and as enough data; every value declared, none hidden in code.

    Attributes:
        min_rows: windows with fewer rows are ``insufficient_data`` (no verdict, no retrain).
        min_labels: labelled rows needed before quality metrics are computed.
        drift_share: share of drifted features at or above which the window's status is
            ``drift`` — the one threshold: the report's headline, the run's tags and the
            retrain policy's "bad window" all read this verdict.
        num_method / cat_method: ``auto`` follows Evidently's choice for large data; or any
            Evidently stat-test name.
        per_column_method / per_column_threshold: overrides by column.
        report_rows: rows of each side sampled for the Evidently report and sample methods.
        report_summary: columns in the report's data summary (per-column statistics):
            ``flagged`` — those with data-quality findings (the default: the summary costs
            about as much as the drift section per column), ``all`` or ``none``.
        missing_tolerance: a rise of the missing share above the reference by more than this
            is a finding.
        out_of_range_tolerance: a share of values outside the reference range above this is a
            finding.
        seed: sampling seed.
    """

    min_rows: int = 200
    min_labels: int = 50
    drift_share: float = 0.3
    num_method: str = "auto"
    cat_method: str = "auto"
    per_column_method: dict[str, str] = field(default_factory=dict)
    per_column_threshold: dict[str, float] = field(default_factory=dict)
    report_rows: int = 5_000
    report_summary: Literal["flagged", "all", "none"] = "flagged"
    missing_tolerance: float = 0.1
    out_of_range_tolerance: float = 0.01
    seed: int = 0


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column."""

    column: str
    kind: Literal["numeric", "categorical"]
    method: str
    score: float
    threshold: float
    drifted: bool
    missing_share: float
    rows: int


@dataclass(frozen=True)
class Finding:
    """One data-quality observation about the current window."""

    column: str
    kind: str
    detail: str


@dataclass(frozen=True)
class DriftResult:
    """Everything detection found; a value the policy and the logger read.

    ``report_html``/``report_json`` are set once the report was written
    (:func:`mlcycle.monitoring.report.write_window_report`); detection leaves them ``None``.
    """

    status: Status
    rows: int
    reference_rows: int
    columns: tuple[ColumnDrift, ...] = ()
    prediction: ColumnDrift | None = None
    findings: tuple[Finding, ...] = ()
    quality: dict[str, float] = field(default_factory=dict)
    reference_quality: dict[str, float] = field(default_factory=dict)
    quality_drop: float | None = None
    #: Labelled rows of the window the quality metrics were computed on.
    labelled_rows: int = 0
    report_html: str | None = None
    report_json: str | None = None

    @property
    def drifted(self) -> list[str]:
        """Names of the drifted feature columns."""
        return [c.column for c in self.columns if c.drifted]

    @property
    def drift_share(self) -> float:
        """Share of analysed features that drifted (0 when none were analysed)."""
        return len(self.drifted) / len(self.columns) if self.columns else 0.0

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metrics: per-feature scores, shares, missing shares, quality."""
        out: dict[str, float] = {
            "rows": float(self.rows),
            "drift_share": self.drift_share,
            "drifted_columns": float(len(self.drifted)),
            "findings": float(len(self.findings)),
        }
        for c in self.columns:
            out[f"drift_score/{c.column}"] = c.score
            out[f"drifted/{c.column}"] = float(c.drifted)
            out[f"missing_share/{c.column}"] = c.missing_share
        if self.prediction is not None:
            out["prediction_drift_score"] = self.prediction.score
            out["prediction_drifted"] = float(self.prediction.drifted)
        out.update({f"quality/{k}": v for k, v in self.quality.items()})
        if self.quality_drop is not None:
            out["quality_drop"] = self.quality_drop
        return {k: v for k, v in out.items() if math.isfinite(v)}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the CLI's ``--json``)."""
        doc = asdict(self)
        doc["drift_share"] = self.drift_share
        doc["drifted"] = self.drifted
        return doc
