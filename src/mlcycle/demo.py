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

    yield from _monitor_step(settings, client, workdir, name, rows)


def _monitor_step(
    settings: Settings, client: Any, workdir: Path, name: str, rows: int
) -> Iterator[str]:
    """Two days of drifted traffic → monitor each day → the policy retrains → the gate.

    The traffic comes from the scenario's ``both`` period (price rise and a new churn rule), so
    the monitor sees covariate drift and a quality drop, and a model retrained on the labelled
    traffic can beat the champion at the gate.
    """
    import uuid

    import mlflow
    import numpy as np
    import pandas as pd

    from mlcycle.monitoring import RetrainPolicy, Window, run_once
    from mlcycle.register import champion_version
    from mlcycle.serve.inference_log import InferenceLog, LogItem

    champion = champion_version(client, name)
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    meta = model.metadata.metadata["mlcycle"]
    numeric, categorical = list(meta["numeric"]), list(meta["categorical"])
    schema = model.metadata.get_input_schema()
    kinds = {i.name: str(getattr(i.type, "name", i.type)) for i in schema.inputs} if schema else {}
    log = InferenceLog(settings.inference_log).start()
    labels = []
    days = ["2026-02-01", "2026-02-02"]
    per_day = max(rows // 10, 500)
    for i, day in enumerate(days):
        frame = make_scenario(
            per_day, period="both", seed=settings.seed + 10 + i, start=day, days=1
        )
        X = _as_signature(model, frame[numeric + categorical])
        preds = np.asarray(model.predict(X))
        for start in range(0, len(frame), 25):  # requests of 25 records, like a batch client
            part = slice(start, start + 25)
            rid = uuid.uuid4().hex
            ts = pd.Timestamp(frame[SCENARIO_TIME].iloc[start], tz="UTC")
            log.append(
                LogItem(
                    request_id=rid,
                    timestamp_us=int(ts.value // 1000),
                    model_name=name,
                    model_version=str(champion),
                    role="champion",
                    columns={c: X[c].to_numpy()[part] for c in X.columns},
                    kinds=tuple((c, kinds.get(c, "string")) for c in X.columns),
                    predictions=preds[part],
                )
            )
            n = len(preds[part])
            labels.append(
                pd.DataFrame(
                    {
                        "request_id": rid,
                        "record_index": np.arange(n),
                        SCENARIO_TARGET: frame[SCENARIO_TARGET].to_numpy()[part],
                    }
                )
            )
    log.close()
    labels_path = workdir / "labels.csv"
    pd.concat(labels).to_csv(labels_path, index=False)
    yield (
        f"[traffic]  {per_day * len(days)} drifted requests scored by v{champion} "
        f"-> {settings.inference_log} (labels later in {labels_path})"
    )

    policy = RetrainPolicy()
    label_frame = pd.read_csv(labels_path)
    for day in days:
        window = Window.of(day, pd.Timestamp(day) + pd.Timedelta(days=1))
        out = run_once(
            client, settings, name, window=window, labels=label_frame, policy=policy,
            output_dir=workdir / "monitoring",
        )
        r = out.result
        assert r is not None and out.decision is not None
        yield (
            f"[monitor]  {day}: {r.rows} rows, status {r.status}, drifted "
            f"{', '.join(r.drifted) or 'none'}; report {r.report_html}"
        )
        verdict = "retrain" if out.decision.retrain else "wait"
        yield f"[policy]   {verdict}: {'; '.join(out.decision.reasons)}"
        if out.retrain is not None:
            state = "promoted to @champion" if out.retrain.promoted else "kept as @challenger"
            yield (
                f"[retrain]  run {out.retrain.run_id} on {out.retrain.rows.get('total', 0)} rows "
                f"-> {name} v{out.retrain.version} {state}: {'; '.join(out.retrain.reasons)[:200]}"
            )
    yield (
        f"[champion] {name} v{champion_version(client, name)} serves now; drift charts: "
        "experiment mlcycle-monitoring in the MLflow UI"
    )


def _as_signature(model: Any, X: Any) -> Any:
    """Cast columns to the model signature's types (the signature is the contract)."""
    schema = model.metadata.get_input_schema()
    if schema is None:
        return X
    out = X.copy()
    for spec in schema.inputs:
        kind = str(getattr(spec.type, "name", spec.type))
        if spec.name in out.columns and kind in ("long", "integer", "double", "float"):
            np_type = {"long": "int64", "integer": "int32", "double": "float64", "float": "float32"}
            out[spec.name] = out[spec.name].astype(np_type[kind])
    return out
