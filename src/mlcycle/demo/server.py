"""The demo's model server and its traffic: a ``mlcycle serve`` process driven over HTTP.

API: :func:`start_server` / :func:`wait_ready` / :func:`stop` (its own process group,
SIGTERM so it flushes its inference log), :func:`send` (a frame in requests of
:data:`REQUEST_RECORDS`, labels kept by request id), :func:`wait_for_log`,
:func:`wait_for_version` and :func:`probe_summary` (hot reload seen from outside),
:func:`now`, :func:`window_end`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mlcycle.config import Settings
from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from mlcycle.errors import ServingError

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


@dataclass(frozen=True)
class Sent:
    """One batch of traffic: the time range the server scored it in and its labels."""

    start: pd.Timestamp
    end: pd.Timestamp
    labels: pd.DataFrame
    versions: frozenset[str]


@dataclass(frozen=True)
class Server:
    proc: subprocess.Popen[bytes]
    port: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(settings: Settings, uri: str, log_path: Path) -> Server:
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
    return Server(proc, port)


def stop(server: Server) -> int | None:
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


def wait_ready(server: Server, log_path: Path) -> None:
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


def now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def window_end(last: pd.Timestamp) -> pd.Timestamp:
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


def send(port: int, frame: pd.DataFrame) -> Sent:
    """Send ``frame``'s features in requests of ``REQUEST_RECORDS``; keep labels by request id."""
    features = [c for c in frame.columns if c not in (SCENARIO_TARGET, SCENARIO_TIME)]
    labels: list[pd.DataFrame] = []
    versions: set[str] = set()
    start = now()
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
    return Sent(start, now(), pd.concat(labels, ignore_index=True), frozenset(versions))


def wait_for_log(root: str, name: str, version: str, windows: list[Window], expected: int) -> None:
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


def probe_summary(answers: Counter[str]) -> str:
    """``3 probe requests, none failed: 2 answered by v1, 1 by v2`` (from X-Model-Version)."""
    total = sum(answers.values())
    parts = [f"{n} by v{v}" for v, n in sorted(answers.items(), key=lambda kv: (len(kv[0]), kv[0]))]
    noun = "request" if total == 1 else "requests"
    return f"{total} probe {noun}, none failed: answered {', '.join(parts)}"


def wait_for_version(port: int, version: str) -> tuple[Counter[str], float]:
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
