"""The lifecycle demo's stores and loop.

API: :func:`fresh_store` — empty the demo's directory and put its stores in it;
:func:`run_demo` — a generator of progress lines; each stage adds itself.

Each demo runs in a store of its own (``<workdir>/mlflow.db``, ``mlartifacts/``,
``inference-log/``), emptied at the start of the run: a second run would otherwise meet the
first run's retrained champion at the gate and be refused.

The loop is the real one: the champion is served by a ``mlcycle serve`` process (its own
process group, following ``@champion``), drifted traffic goes to it over HTTP, monitoring
reads what that server logged, a retrain promoted through the gate is picked up by the
running server, and the server is stopped with SIGTERM so it flushes its inference log.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from mlcycle.config import Settings
from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from mlcycle.demo import server as serving
from mlcycle.errors import ConfigError
from mlcycle.train import TrainConfig, train

logger = logging.getLogger(__name__)

#: Written into every directory the demo makes: only such a directory is emptied by a new run.
MARKER = ".mlcycle-demo"


def fresh_store(workdir: Path) -> dict[str, str]:
    """Empty ``workdir`` and return the settings that put every store inside it.

    The tracking and registry store become ``<workdir>/mlflow.db``, artifacts
    ``<workdir>/mlartifacts`` and the inference log ``<workdir>/inference-log``, so each demo
    starts from nothing whatever ran before, and never touches the user's own stores.

    Args:
        workdir: the demo's directory; deleted first when an earlier demo made it.

    Returns:
        Overrides for :func:`mlcycle.config.load_settings`.

    Raises:
        ConfigError: ``workdir`` holds files the demo did not make (it is left alone).
    """
    if workdir.exists():
        if not workdir.is_dir():
            raise ConfigError(f"demo workdir {workdir} is a file; choose another --workdir")
        if any(workdir.iterdir()) and not (workdir / MARKER).exists():
            raise ConfigError(
                f"demo workdir {workdir} is not empty and was not made by mlcycle demo; "
                "choose another --workdir or empty it"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / MARKER).write_text("made by mlcycle demo: emptied by the next run\n")
    root = workdir.resolve()
    store = f"sqlite:///{root / 'mlflow.db'}"
    return {
        "tracking_uri": store,
        "registry_uri": store,
        "artifact_root": str(root / "mlartifacts"),
        "inference_log": str(root / "inference-log"),
    }


def run_demo(settings: Settings, client: Any, workdir: Path, rows: int = 20_000) -> Iterator[str]:
    """Run the lifecycle once and yield a line per step.

    Train a small search on the scenario's reference period, register and promote the best
    through the gate, serve ``@champion`` with ``mlcycle serve``, send two windows of drifted
    traffic (``rows`` records each), monitor them with late labels, let the policy retrain,
    and watch the running server swap to the new champion.

    Args:
        settings: resolved settings (stores, model name, inference log, seed).
        client: an ``MlflowClient`` on the same stores.
        workdir: where data, labels, reports and the server's log go.
        rows: rows of the training table, and records of traffic per monitored window.

    Raises:
        ServingError: the model server did not start, failed requests, or did not pick up
            the promoted version in time.
        MlcycleError: from any stage.
    """
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
        settings=settings,
    )
    yield (
        f"[train]    run {result.run_id}: test_roc_auc={result.metrics['test_roc_auc']:.3f} "
        f"({len(result.child_run_ids)} nested trials) model {result.model_uri}"
    )

    from mlcycle.register import promote, register

    name = settings.model_name
    version = register(client, result.run_id, name, description="demo: best of the search")
    promoted = promote(client, name, str(version.version), settings=settings)
    gate_line = "; ".join(promoted.decision.reasons) if promoted.decision else "gate skipped"
    yield (
        f"[register] {name} version {promoted.version} → Production (@champion) "
        f"through the gate: {gate_line}"
    )

    yield from _serve_and_monitor(settings, client, workdir, name, rows)


def _serve_and_monitor(
    settings: Settings, client: Any, workdir: Path, name: str, per_window: int
) -> Iterator[str]:
    """Serve @champion, send two windows of drifted traffic, monitor, retrain, swap.

    The traffic comes from the scenario's ``both`` period (price rise and a new churn rule),
    so the monitor sees covariate drift and a quality drop. Each window holds as many records
    as the training table: the retrain's time split tests on the newest rows, so the window
    must be large enough for part of it to reach the training split too — otherwise the
    challenger would learn nothing of the new rule and the gate would rightly refuse it.
    """
    from mlcycle.monitoring import RetrainPolicy, Window, read_inference_log, run_once
    from mlcycle.register import champion_version, model_uri

    champion = str(champion_version(client, name))
    log_path = workdir / "serve.log"
    server = serving.start_server(settings, model_uri(name, alias="champion"), log_path)
    url = f"http://127.0.0.1:{server.port}"
    try:
        serving.wait_ready(server, log_path)
        yield (
            f"[serve]    mlcycle serve on {url} follows {model_uri(name)} "
            f"(pid {server.proc.pid}, log {log_path})"
        )
        sent: list[serving.Sent] = []
        for i in range(2):
            frame = make_scenario(per_window, period="both", seed=settings.seed + 10 + i, days=1)
            if sent:  # windows are whole seconds: start the next one after the last ends
                time.sleep(
                    max(0.0, (serving.window_end(sent[-1].end) - serving.now()).total_seconds())
                )
            sent.append(serving.send(server.port, frame))
        labels_path = workdir / "labels.csv"
        pd.concat([s.labels for s in sent]).to_csv(labels_path, index=False)
        windows = [Window.of(s.start.floor("s"), serving.window_end(s.end)) for s in sent]
        served_by = sorted(set().union(*(s.versions for s in sent)))
        yield (
            f"[traffic]  {per_window} drifted records x {len(sent)} windows in requests of "
            f"{serving.REQUEST_RECORDS} to {url}/invocations, answered by v{', v'.join(served_by)} "
            f"(labels later in {labels_path})"
        )

        serving.wait_for_log(
            settings.inference_log, name, champion, windows, per_window * len(sent)
        )
        policy = RetrainPolicy()
        label_frame = pd.read_csv(labels_path, dtype={"request_id": str})
        new_champion: str | None = None
        for window in windows:
            out = run_once(
                client,
                settings,
                name,
                window=window,
                labels=label_frame,
                policy=policy,
                output_dir=workdir / "monitoring",
            )
            r, decision = out.result, out.decision
            if r is None or decision is None:  # a pass of this window already exists
                yield f"[monitor]  {window.key}: {out.skipped}"
                continue
            yield (
                f"[monitor]  {window.key}: {r.rows} rows, status {r.status}, drifted "
                f"{', '.join(r.drifted) or 'none'}; report {r.report_html}"
            )
            verdict = "retrain" if decision.retrain else "wait"
            yield f"[policy]   {verdict}: {'; '.join(decision.reasons)}"
            if out.retrain is not None:
                rt = out.retrain
                state = "promoted to @champion" if rt.promoted else "kept as @challenger"
                yield (
                    f"[retrain]  run {rt.run_id} on {rt.rows.get('total', 0)} rows "
                    f"({rt.rows.get('production', 0)} labelled from the window) -> {name} "
                    f"v{rt.version} {state}: {'; '.join(rt.reasons)[:300]}"
                )
                if rt.promoted:
                    new_champion = rt.version

        if new_champion is not None:
            answers, seconds = serving.wait_for_version(server.port, new_champion)
            probes = serving.probe_summary(answers)
            yield (
                f"[serve]    the running server answers with v{new_champion} (X-Model-Version) "
                f"without a restart, after {seconds:.1f} s of probing: {probes}"
            )
        else:
            yield f"[serve]    the running server still answers with v{champion}"
    finally:
        code = serving.stop(server)
    logged = read_inference_log(settings.inference_log, name, role=None)
    by_version = (
        ", ".join(f"v{v}: {n}" for v, n in logged["model_version"].value_counts().items())
        if not logged.empty
        else "none"
    )
    yield (
        f"[log]      server stopped by SIGTERM (exit {code}); the inference log holds "
        f"{len(logged)} records of {name} ({by_version}) under {settings.inference_log}"
    )
    yield (
        f"[champion] {name} v{champion_version(client, name)} serves now; drift charts: "
        "experiment mlcycle-monitoring in the MLflow UI"
    )
