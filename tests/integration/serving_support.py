"""Helpers for the serving integration tests: a private MLflow store, registered models and
real model servers (stock ``mlflow models serve`` and ``mlcycle serve``) as process groups.

Module-scoped fixtures cannot use the per-test store of ``tests/conftest.py``, so everything
here takes its tracking URI and working directory explicitly.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from testkit import free_port, stop_group, wait_for_answer

BIN = Path(sys.executable).parent
# Stock startup measured at ~5 s alone; give slow shared CI machines plenty of room.
START_TIMEOUT = 120.0


@dataclass
class Store:
    """A private tracking store + artifact root in one directory."""

    root: Path
    uri: str = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.uri = f"sqlite:///{self.root / 'mlflow.db'}"

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Point mlflow, the environment and the working directory at this store, then restore."""
        import mlflow

        previous = mlflow.get_tracking_uri()
        with pytest.MonkeyPatch.context() as mp:
            for key in list(os.environ):
                if key.startswith(("MLFLOW_", "MLCYCLE_")):
                    mp.delenv(key)
            mp.setenv("MLFLOW_TRACKING_URI", self.uri)
            mp.setenv("MLCYCLE_ARTIFACT_ROOT", str(self.root / "mlartifacts"))
            mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            mp.chdir(self.root)
            mlflow.set_tracking_uri(self.uri)
            try:
                yield
            finally:
                while mlflow.active_run() is not None:
                    mlflow.end_run()
                mlflow.set_tracking_uri(previous)

    def env(self) -> dict[str, str]:
        """Environment of a server subprocess reading this store."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLCYCLE_"))}
        # `mlflow models serve` execs `uvicorn` through bash: the venv must be on PATH.
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env["MLFLOW_TRACKING_URI"] = self.uri
        env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        return env


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    features: pd.DataFrame  # held-out rows to score (feature columns only)


def train_and_register(
    store: Store,
    name: str,
    frame: pd.DataFrame,
    target: str,
    model: str,
    *,
    time_column: str | None = None,
    params: dict[str, Any] | None = None,
    sample: int = 20,
) -> Registered:
    """Train with ``mlcycle.train.train``, register as ``name``, make it @champion + Production."""
    import mlflow
    from mlflow import MlflowClient

    from mlcycle import data as data_mod
    from mlcycle.train import TrainConfig, train

    with store.active():
        path = store.root / f"{name}.csv"
        frame.to_csv(path, index=False)
        client = MlflowClient(tracking_uri=store.uri)
        result = train(
            TrainConfig(
                data=str(path),
                target=target,
                model=model,
                params=params or {},
                time_column=time_column,
                plots=False,
                experiment=f"serving-{name}",
            ),
            client,
        )
        mv = mlflow.register_model(result.model_uri, name)
        client.set_registered_model_alias(name, "champion", mv.version)
        client.transition_model_version_stage(name, mv.version, "Production")
        spec = data_mod.infer_spec(frame, target, None, time_column, ())
        features = data_mod.prepare_features(frame.tail(sample).reset_index(drop=True), spec)
    return Registered(name, str(mv.version), features)


def reference_predict(store: Store, model_uri: str, features: pd.DataFrame) -> list[Any]:
    """What ``mlflow.pyfunc.load_model(uri).predict`` returns, as JSON-ready values."""
    import mlflow

    with store.active():
        out = mlflow.pyfunc.load_model(model_uri).predict(features)
    return pd.Series(out).tolist() if not isinstance(out, pd.DataFrame) else out.to_dict("records")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_group(self.proc)


def _spawn(cmd: list[str], store: Store, log: Path, port: int) -> Server:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=store.root,
            env=store.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # MLflow spawns uvicorn (and workers): stop the group.
        )
    return Server(proc, port, log)


def start_stock(store: Store, model_uri: str, tag: str) -> Server:
    """Start ``mlflow models serve --env-manager local`` (returns before it is ready)."""
    port = free_port()
    cmd = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    return _spawn(cmd, store, store.root / f"stock-{tag}.log", port)


def start_mlcycle(store: Store, model_uri: str, tag: str, *extra: str) -> Server:
    """Start ``mlcycle serve`` on the CLI contract (returns before it is ready)."""
    port = free_port()
    cmd = [str(BIN / "mlcycle"), "serve", "--model", model_uri, "--host", "127.0.0.1",
           "--port", str(port), *extra]  # fmt: skip
    return _spawn(cmd, store, store.root / f"mlcycle-{tag}.log", port)


def wait_ready(server: Server, path: str = "/ping", timeout: float = START_TIMEOUT) -> float:
    """Block until ``path`` answers 200; return the seconds waited. Fail with the server log."""
    try:
        return wait_for_answer(
            server.proc,
            server.port,
            lambda: httpx.get(server.url + path, timeout=5).status_code == 200,
            timeout,
        )
    except (RuntimeError, TimeoutError) as exc:
        tail = server.log.read_text(errors="replace")[-3000:] if server.log.exists() else ""
        pytest.fail(f"{exc}\n--- server log ---\n{tail}")


def split_payload(features: pd.DataFrame) -> dict[str, Any]:
    """An MLflow ``dataframe_split`` body with JSON-native values."""
    doc = features.to_dict(orient="split")
    return {"dataframe_split": {"columns": doc["columns"], "data": doc["data"]}}


@dataclass(frozen=True)
class Answer:
    """One 200 of :class:`Traffic`: which body was sent and what the server said about it."""

    body: int  # index into Traffic.bodies
    rows: int
    request_id: str
    version: str
    role: str
    record_prefix: str


class Traffic:
    """Threads posting ``/invocations`` bodies until stopped; every outcome kept.

    Each thread sends ``bodies`` in turn from its own offset, or picked at random with
    ``shuffle``, and waits ``pause`` seconds between requests. A 200 whose predictions are
    one per row sent becomes an :class:`Answer` in ``answers``; anything else (another status,
    a wrong count, a transport error's class name) goes to ``failures``. Hold ``lock`` to read
    either while the threads run. Use as a context manager, or :meth:`start` and
    :meth:`finish`.
    """

    def __init__(
        self,
        url: str,
        bodies: list[dict[str, Any]],
        threads: int = 4,
        *,
        shuffle: bool = False,
        pause: float = 0.0,
        timeout: float = 60.0,
    ) -> None:
        self.url = url
        self.bodies = bodies
        self.rows = [len(b["dataframe_split"]["data"]) for b in bodies]
        self.shuffle, self.pause, self.timeout = shuffle, pause, timeout
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers: list[Answer] = []
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(k,)) for k in range(threads)]

    @classmethod
    def of_rows(cls, url: str, features: pd.DataFrame, **kwargs: Any) -> Traffic:
        """Requests of 1, 2 and 3 rows, in turn."""
        return cls(url, [split_payload(features.head(n)) for n in (1, 2, 3)], **kwargs)

    def start(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(self.timeout)

    def __enter__(self) -> Traffic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def _run(self, k: int) -> None:
        rng = random.Random(k)
        i = k
        with httpx.Client(timeout=self.timeout) as client:
            while not self.stop.is_set():
                b = rng.randrange(len(self.bodies)) if self.shuffle else i % len(self.bodies)
                i += 1
                try:
                    r = client.post(self.url + "/invocations", json=self.bodies[b])
                    answer = self._answer(b, r)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(type(exc).__name__)
                    time.sleep(0.01)
                    continue
                except Exception as exc:  # a bug of the test: say so, stop this thread
                    with self.lock:
                        self.failures.append(repr(exc))
                    return
                with self.lock:
                    if isinstance(answer, Answer):
                        self.answers.append(answer)
                    else:
                        self.failures.append(answer)
                if self.pause:
                    time.sleep(self.pause)

    def _answer(self, b: int, r: httpx.Response) -> Answer | str:
        if r.status_code != 200:
            return f"{r.status_code} {r.text[:100]}"
        got = len(r.json()["predictions"])
        if got != self.rows[b]:
            return f"200 with {got} predictions for {self.rows[b]} rows"
        h = r.headers
        return Answer(
            b, got, h.get("x-request-id", ""), h["x-model-version"], h.get("x-model-role", ""),
            h.get("x-record-id-prefix", ""),
        )  # fmt: skip

    def wait_records(self, n: int, role: str | None = None, timeout: float = 120) -> None:
        """Until ``n`` records were answered (by ``role`` only, when given); fails when every
        thread has died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert any(t.is_alive() for t in self.threads), f"load died: {self.failures[-3:]}"
            with self.lock:
                if sum(a.rows for a in self.answers if role in (None, a.role)) >= n:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"fewer than {n} records answered in {timeout}s: {self.failures[-3:]}")

    def wait_recent(self, check: Callable[[list[Answer]], bool], n: int = 30,
                    timeout: float = 60) -> None:  # fmt: skip
        """Until ``check`` holds for the last ``n`` answers (a registry change shows)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                recent = self.answers[-n:]
            if len(recent) == n and check(recent):
                return
            time.sleep(0.05)
        raise TimeoutError(f"the change never showed in the answers: {self.failures[-3:]}")


# --------------------------------------------------------------------------- canary traffic

_LOG_KINDS = {"i": "long", "f": "double", "b": "boolean"}


def shuffled_labels(frame: pd.DataFrame, target: str, seed: int) -> pd.DataFrame:
    """``frame`` with ``target`` permuted: a model trained on it learns nothing."""
    import numpy as np

    out = frame.copy()
    out[target] = np.random.default_rng(seed).permutation(out[target].to_numpy())
    return out


def log_canary_traffic(
    log_root: Path,
    name: str,
    versions: dict[str, str],
    traffic: pd.DataFrame,
    target: str,
    arm: Any,
    per_request: int,
) -> pd.DataFrame:
    """Score each arm's rows of ``traffic`` with its real model, log them through the server's
    writer ``per_request`` records a request, and return the labels by ``record_id``.

    ``arm`` holds each row's role (``champion``/``challenger``); ``versions`` maps role → version.
    """
    import mlflow
    import numpy as np

    from mlcycle.inference_log import InferenceLog, LogItem

    truth = traffic[target].to_numpy()
    features = traffic.drop(columns=[target, "event_time"], errors="ignore")
    kinds = tuple((c, _LOG_KINDS.get(features[c].dtype.kind, "string")) for c in features.columns)
    log = InferenceLog(str(log_root)).start()
    labels: list[dict[str, Any]] = []
    for role, version in versions.items():
        idx = np.flatnonzero(np.asarray(arm) == role)
        rows = features.iloc[idx].reset_index(drop=True)
        preds = np.asarray(mlflow.pyfunc.load_model(f"models:/{name}/{version}").predict(rows))
        now = int(time.time() * 1e6)
        for start in range(0, len(rows), per_request):
            part = slice(start, start + per_request)
            item = LogItem(
                request_id=f"{role}-{start}", timestamp_us=now, model_name=name,
                model_version=version, role=role,
                columns={c: rows[c].to_numpy()[part] for c in rows.columns},
                kinds=kinds, predictions=preds[part],
            )  # fmt: skip
            assert log.append(item)
            labels += [
                {"record_id": f"{item.record_uid}-{i}", target: int(t)}
                for i, t in enumerate(truth[idx][part])
            ]
    log.close()
    return pd.DataFrame(labels)
