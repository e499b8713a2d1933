"""The report's first section: what mlcycle decided, over the whole window.

API: :func:`decision`, :func:`widgets`.

Evidently's sections run on bounded samples (5,000 rows of the window, 5,000 training rows
scored when the model was trained), so its dataset summary says 5,000 rows and its model
quality compares the sample's labels with the training rows' in-sample predictions. The
retrain policy reads other numbers: every row of the window, and the quality of the training
run's held-out test split. This section states those numbers at the top of ``report.html``
and under ``mlcycle`` in ``report.json``, and says which sections below are on samples.
"""

from __future__ import annotations

from typing import Any

from mlcycle.monitoring.results import DriftConfig, DriftResult


def decision(
    result: DriftResult,
    config: DriftConfig,
    sample_rows: int,
    reference_sample_rows: int,
    labelled_rows: int,
) -> dict[str, Any]:
    """The numbers the CLI printed and the policy reads, JSON-ready."""
    return {
        "status": result.status,
        "window_rows": result.rows,
        "reference_rows": result.reference_rows,
        "features_analysed": len(result.columns),
        "features_drifted": len(result.drifted),
        "drift_share": result.drift_share,
        "drift_share_threshold": config.drift_share,
        "quality": dict(result.quality),
        "reference_quality": dict(result.reference_quality),
        "quality_drop": result.quality_drop,
        "labelled_rows": labelled_rows if result.quality else 0,
        "report_sample_rows": {"current": sample_rows, "reference": reference_sample_rows},
    }


def _n(value: int) -> str:
    return f"{value:,}"


def widgets(doc: dict[str, Any]) -> list[Any]:
    """Evidently widgets showing :func:`decision`'s numbers (numbers only: no text from
    traffic, such as column names, reaches the page through them)."""
    from evidently.legacy.renderers.html_widgets import CounterData, counter, text_widget

    verdict = "drift" if doc["status"] == "drift" else doc["status"].replace("_", " ")
    out = [
        counter(
            title="mlcycle's decision, over every row of the window",
            counters=[
                CounterData("rows in the window", _n(doc["window_rows"])),
                CounterData("reference rows (training split)", _n(doc["reference_rows"])),
                CounterData(
                    f"drifted features (drift at a share ≥ {doc['drift_share_threshold']:.2f})",
                    f"{doc['features_drifted']} of {doc['features_analysed']} "
                    f"({doc['drift_share']:.3f})",
                ),
                CounterData("status", verdict),
            ],
        )
    ]
    quality, reference = doc["quality"], doc["reference_quality"]
    if quality:
        counters = [
            CounterData(
                name,
                f"{reference[name]:.3f} → {value:.3f}" if name in reference else f"{value:.3f}",
            )
            for name, value in quality.items()
        ]
        if doc["quality_drop"] is not None:
            counters.append(CounterData("quality drop", f"{doc['quality_drop']:.3f}"))
        out.append(
            counter(
                title=(
                    "Model quality the retrain policy reads: the training run's test split → "
                    f"the window's {_n(doc['labelled_rows'])} labelled rows"
                ),
                counters=counters,
            )
        )
    samples = doc["report_sample_rows"]
    out.append(
        text_widget(
            title="",
            text=(
                "The sections below are Evidently's report on uniform samples: "
                f"{_n(samples['current'])} of the window's {_n(doc['window_rows'])} rows and "
                f"{_n(samples['reference'])} training rows with the predictions the model "
                "made on them when it was trained. The drift table's scores and verdicts are "
                "mlcycle's, over the whole window. The dataset summary, the per-column "
                "statistics and the model quality sections are computed on the samples, so "
                "their row counts and metrics differ from the numbers above."
            ),
        )
    )
    return out
