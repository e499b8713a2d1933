"""The lifecycle demo on the embedded default store.

API: :func:`run_demo` — a generator of progress lines; each stage that exists adds itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlcycle.config import Settings
from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from mlcycle.train import TrainConfig, train


def run_demo(settings: Settings, client: Any, workdir: Path, rows: int = 20_000) -> Iterator[str]:
    """Train on the scenario's reference period (and each later stage); yield what happened."""
    workdir.mkdir(parents=True, exist_ok=True)
    data_path = workdir / "reference.csv"
    make_scenario(rows, period="reference", seed=settings.seed).to_csv(data_path, index=False)
    yield f"[data]     {rows} rows of the churn scenario -> {data_path}"

    result = train(
        TrainConfig(
            data=str(data_path),
            target=SCENARIO_TARGET,
            time_column=SCENARIO_TIME,
            model="hist_gradient_boosting",
            trials=4,
            seed=settings.seed,
            experiment=settings.experiment,
            run_name="demo-search",
        ),
        client,
    )
    yield (
        f"[train]    run {result.run_id}: test_roc_auc={result.metrics['test_roc_auc']:.3f} "
        f"({len(result.child_run_ids)} nested trials) model {result.model_uri}"
    )

    from mlcycle.register import promote, register

    name = settings.model_name
    version = register(client, result.run_id, name, description="demo: best of the search")
    promoted = promote(client, name, str(version.version))
    gate_line = "; ".join(promoted.decision.reasons) if promoted.decision else "gate skipped"
    yield (
        f"[register] {name} version {promoted.version} → Production (@champion) "
        f"through the gate: {gate_line}"
    )
