"""The lifecycle demo on the embedded default store.

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

import contextlib
import http.client
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlcycle.config import Settings
from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from mlcycle.errors import ConfigError, ServingError
from mlcycle.train import TrainConfig, train

if TYPE_CHECKING:
    from mlcycle.monitoring import Window

logger = logging.getLogger(__name__)

#: Records per ``/invocations`` request, like a batch client.
REQUEST_RECORDS = 25
#: Seconds the server may take to load the champion (imports and model download included).
READY_TIMEOUT = 120.0
#: Seconds to wait for logged records: the server writes its log every 5 seconds.
LOG_TIMEOUT = 30.0
#: Seconds to wait for the running server to answer with a newly promoted version.
SWAP_TIMEOUT = 15.0
#: Seconds the server gets to drain and flush after SIGTERM.
STOP_GRACE = 30.0


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


# --------------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class _Sent:
    """One batch of traffic: the time range the server scored it in and its labels."""

    start: pd.Timestamp
    end: pd.Timestamp
    labels: pd.DataFrame
    versions: frozenset[str]


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
    server = _start_server(settings, model_uri(name, alias="champion"), log_path)
    url = f"http://127.0.0.1:{server.port}"
    try:
        _wait_ready(server, log_path)
        yield (
            f"[serve]    mlcycle serve on {url} follows {model_uri(name)} "
            f"(pid {server.proc.pid}, log {log_path})"
        )
        sent: list[_Sent] = []
        for i in range(2):
            frame = make_scenario(per_window, period="both", seed=settings.seed + 10 + i, days=1)
            if sent:  # windows are whole seconds: start the next one after the last ends
                time.sleep(max(0.0, (_window_end(sent[-1].end) - _now()).total_seconds()))
            sent.append(_send(server.port, frame))
        labels_path = workdir / "labels.csv"
        pd.concat([s.labels for s in sent]).to_csv(labels_path, index=False)
        windows = [Window.of(s.start.floor("s"), _window_end(s.end)) for s in sent]
        served_by = sorted(set().union(*(s.versions for s in sent)))
        yield (
            f"[traffic]  {per_window} drifted records x {len(sent)} windows in requests of "
            f"{REQUEST_RECORDS} to {url}/invocations, answered by v{', v'.join(served_by)} "
            f"(labels later in {labels_path})"
        )

        _wait_for_log(settings.inference_log, name, champion, windows, per_window * len(sent))
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
            answers, seconds = _wait_for_version(server.port, new_champion)
            yield (
                f"[serve]    the running server answers with v{new_champion} (X-Model-Version) "
                f"without a restart, after {seconds:.1f} s of probing: {_probe_summary(answers)}"
            )
        else:
            yield f"[serve]    the running server still answers with v{champion}"
    finally:
        code = _stop(server)
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


# --------------------------------------------------------------------------- the server


@dataclass(frozen=True)
class _Server:
    proc: subprocess.Popen[bytes]
    port: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(settings: Settings, uri: str, log_path: Path) -> _Server:
    """``mlcycle serve`` on the demo's stores, in its own process group."""
    port = _free_port()
    env = dict(os.environ)
    env.update(
        {
            "MLFLOW_TRACKING_URI": settings.tracking_uri,
            "MLCYCLE_ARTIFACT_ROOT": settings.artifact_root,
            "MLCYCLE_INFERENCE_LOG": settings.inference_log,
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }
    )
    if settings.registry_uri:
        env["MLFLOW_REGISTRY_URI"] = settings.registry_uri
    cmd = [sys.executable, "-m", "mlcycle", "serve", "--model", uri, "--host", "127.0.0.1",
           "--port", str(port), "--reload-interval", "1"]  # fmt: skip
    logger.info("starting %s (log %s)", " ".join(cmd), log_path)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return _Server(proc, port)


def _stop(server: _Server) -> int | None:
    """SIGTERM the server's process group (it drains and flushes its log), SIGKILL if stuck."""
    proc = server.proc
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            logger.warning("server %d ignored SIGTERM for %.0f s; killing it", proc.pid, STOP_GRACE)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        except ProcessLookupError:
            pass
    return proc.returncode


def _log_tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""


def _wait_ready(server: _Server, log_path: Path) -> None:
    """Block until ``/ready`` answers 200 (the champion is loaded).

    Raises:
        ServingError: the server exited or was not ready within ``READY_TIMEOUT``.
    """
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise ServingError(
                f"mlcycle serve exited with {server.proc.returncode}:\n{_log_tail(log_path)}"
            )
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _, _ = _request(server.port, "GET", "/ready")
            if status == 200:
                return
        time.sleep(0.2)
    tail = _log_tail(log_path)
    raise ServingError(f"mlcycle serve not ready after {READY_TIMEOUT:.0f} s:\n{tail}")


# --------------------------------------------------------------------------- traffic


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _window_end(last: pd.Timestamp) -> pd.Timestamp:
    """End of a whole-second window that contains ``last`` (window keys are whole seconds)."""
    return last.floor("s") + pd.Timedelta(seconds=1)


def _request(
    port: int, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _invocations(port: int, records: pd.DataFrame) -> tuple[str, str]:
    """POST ``records`` as MLflow's ``dataframe_split``; the response's request id and version.

    Raises:
        ServingError: the server did not answer 200.
    """
    split = records.to_json(orient="split", index=False)  # NaN → null, ints stay ints
    body = b'{"dataframe_split": ' + split.encode() + b"}"
    status, headers, payload = _request(port, "POST", "/invocations", body)
    if status != 200:
        raise ServingError(f"/invocations answered {status}: {payload[:300]!r}")
    n = len(json.loads(payload)["predictions"])
    if n != len(records):
        raise ServingError(f"/invocations returned {n} predictions for {len(records)} records")
    return headers["x-request-id"], headers["x-model-version"]


def _send(port: int, frame: pd.DataFrame) -> _Sent:
    """Send ``frame``'s features in requests of ``REQUEST_RECORDS``; keep labels by request id."""
    features = [c for c in frame.columns if c not in (SCENARIO_TARGET, SCENARIO_TIME)]
    labels: list[pd.DataFrame] = []
    versions: set[str] = set()
    start = _now()
    for lo in range(0, len(frame), REQUEST_RECORDS):
        part = frame.iloc[lo : lo + REQUEST_RECORDS]
        rid, version = _invocations(port, part[features])
        versions.add(version)
        labels.append(
            pd.DataFrame(
                {
                    "request_id": rid,
                    "record_index": range(len(part)),
                    SCENARIO_TARGET: part[SCENARIO_TARGET].to_numpy(),
                }
            )
        )
    return _Sent(start, _now(), pd.concat(labels, ignore_index=True), frozenset(versions))


def _wait_for_log(root: str, name: str, version: str, windows: list[Window], expected: int) -> None:
    """Wait until the server's log writer has written every record sent in ``windows``.

    Raises:
        ServingError: the records did not all appear within ``LOG_TIMEOUT``.
    """
    from mlcycle.monitoring import Window, read_inference_log

    span = Window.of(windows[0].start, windows[-1].end)
    deadline = time.monotonic() + LOG_TIMEOUT
    found = 0
    while time.monotonic() < deadline:
        # The writer creates the root with its first file: until then there is nothing yet.
        if root.startswith("s3://") or Path(root).is_dir():
            found = len(read_inference_log(root, name, span, version=version))
            if found >= expected:
                return
        time.sleep(0.5)
    raise ServingError(f"the inference log holds {found} of {expected} records sent")


def _probe_summary(answers: Counter[str]) -> str:
    """``3 probe requests, none failed: 2 answered by v1, 1 by v2`` (from X-Model-Version)."""
    total = sum(answers.values())
    parts = [f"{n} by v{v}" for v, n in sorted(answers.items(), key=lambda kv: (len(kv[0]), kv[0]))]
    noun = "request" if total == 1 else "requests"
    return f"{total} probe {noun}, none failed: answered {', '.join(parts)}"


def _wait_for_version(port: int, version: str) -> tuple[Counter[str], float]:
    """Send one-record requests until the server answers with ``version``.

    Returns:
        How many requests each version answered (their ``X-Model-Version``), and the
        seconds waited.

    Raises:
        ServingError: a request failed, or the version did not arrive within ``SWAP_TIMEOUT``.
    """
    frame = make_scenario(1, period="both", seed=0)
    record = frame.drop(columns=[SCENARIO_TARGET, SCENARIO_TIME])
    t0 = time.monotonic()
    answers: Counter[str] = Counter()
    answered = ""
    while time.monotonic() - t0 < SWAP_TIMEOUT:
        _, answered = _invocations(port, record)
        answers[answered] += 1
        if answered == version:
            return answers, time.monotonic() - t0
        time.sleep(0.1)
    raise ServingError(
        f"the running server still answers with v{answered} {SWAP_TIMEOUT:.0f} s after "
        f"v{version} was promoted"
    )
