"""Memory benchmark: what hostile bodies cost a running `mlcycle serve` (issue 10, items 3-4).

Trains one small model in a private store, registers it as ``@champion``, starts
``mlcycle serve`` (and stock ``mlflow models serve``, each in its own process group) and
measures, per server, the RSS growth of its whole process group (sampled every 5 ms from
/proc) for:

1. the 16,000-record body whose records each use a new key (197 KB; goal <= +50 MB);
2. a 218 KB Parquet body declaring 50M rows (goal: 413 with <= +20 MB);
3. ``/ping`` p99 while another client sends 12,000-record bodies (goal <= 50 ms); mlcycle
   runs with ``--max-rows 20000`` here so the body is really parsed and scored.

Stock MLflow materialises the first two in full (about +2 GB and +1 GB): it runs them only
with ``--with-stock``. Figures are printed with ``met``/``MISSED``, never asserted.

    python benchmarks/memory.py
    python benchmarks/memory.py --with-stock     # also the two bodies against stock MLflow
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import BIN, Proc, free_port, http, log, spawn, wait_ready

RECORDS_GOAL_MB = 50.0
PARQUET_GOAL_MB = 20.0
PING_P99_GOAL_MS = 50.0
FEATURES = [f"f{i}" for i in range(5)]


# --------------------------------------------------------------------------- RSS


def group_rss(pgid: int) -> int:
    """Bytes resident in every process of the group (MLflow runs uvicorn as a child)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # field 5 of stat: process group
                continue
            with open(f"/proc/{entry}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


class PeakRss:
    """Samples a process group's RSS in a thread; ``growth`` is peak minus the start."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.start = group_rss(pgid)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, group_rss(self.pgid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.2)  # what is still held after the answer counts too
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, group_rss(self.pgid))

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


# --------------------------------------------------------------------------- bodies


def distinct_key_body(n: int = 16_000) -> bytes:
    doc = {"dataframe_records": [{f"k{i}": 0} for i in range(n)]}
    return json.dumps(doc, separators=(",", ":")).encode()


def parquet_bomb(rows: int = 50_000_000) -> bytes:
    """50M zero rows in 50 row groups: written from one 1M-row table, a few hundred KB."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    group = 1_000_000
    table = pa.table({name: np.zeros(group, np.float64) for name in FEATURES[:1]})
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, table.schema, compression="zstd") as w:
        for _ in range(rows // group):
            w.write_table(table, row_group_size=group)
    return buf.getvalue()


def records_body(features: Any, n: int) -> bytes:
    frame = features.sample(n, replace=True, random_state=0)
    return json.dumps({"dataframe_records": frame.to_dict(orient="records")}).encode()


# --------------------------------------------------------------------------- scenarios


def measure_body(proc: Proc, body: bytes, ctype: str) -> tuple[int, float, float]:
    """(status, seconds, RSS growth MB) for one request."""
    with PeakRss(proc.popen.pid) as rss:
        t0 = time.perf_counter()
        try:
            status, _ = http("POST", proc.url + "/invocations", body, ctype, timeout=300)
        except OSError:
            status = 0  # the server died (out of memory) or dropped the connection
        seconds = time.perf_counter() - t0
    return status, seconds, rss.growth_mb


def ping_during_parse(proc: Proc, body: bytes, pings: int = 200) -> tuple[float, int, int]:
    """(/ping p99 ms, big requests answered, their last status) while big bodies are sent."""
    stop = threading.Event()
    answered = [0, 0]

    def hammer() -> None:
        while not stop.is_set():
            try:
                answered[1], _ = http("POST", proc.url + "/invocations", body, timeout=300)
            except OSError:
                answered[1] = 0
            answered[0] += 1

    t = threading.Thread(target=hammer, daemon=True)
    t.start()
    time.sleep(0.5)  # the first big body is in flight
    lat: list[float] = []
    host, port = "127.0.0.1", proc.port
    with socket.create_connection((host, port)) as sock:
        request = f"GET /ping HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        for _ in range(pings):
            t0 = time.perf_counter()
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            while len(rest) < length:
                rest += sock.recv(65536)
            lat.append(time.perf_counter() - t0)
            time.sleep(0.02)
    stop.set()
    t.join(300)
    lat.sort()
    return lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))] * 1e3, answered[0], answered[1]


def train_model(workdir: Path) -> tuple[str, Any]:
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient
    from sklearn.datasets import make_classification

    from mlcycle.train import TrainConfig, train

    client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    X, y = make_classification(n_samples=2000, n_features=len(FEATURES), random_state=0)
    frame = pd.DataFrame(X, columns=FEATURES).assign(target=y)
    path = workdir / "train.csv"
    frame.to_csv(path, index=False)
    result = train(
        TrainConfig(data=str(path), target="target", model="linear", plots=False,
                    experiment="benchmark-memory"),
        client,
    )  # fmt: skip
    name = "bench_memory"
    mv = mlflow.register_model(result.model_uri, name)
    client.set_registered_model_alias(name, "champion", mv.version)
    return name, frame[FEATURES]


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--with-stock", action="store_true",
                    help="Also send both bodies to stock MLflow (+3 GB there).")  # fmt: skip
    ap.add_argument("--no-stock", action="store_true", help="Do not start stock MLflow at all.")
    ap.add_argument("--workdir", type=Path, default=None, help="Keep store and logs here.")
    args = ap.parse_args(argv)

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="mlcycle-bench-mem-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for key in list(os.environ):
        if key.startswith(("MLFLOW_", "MLCYCLE_")):
            del os.environ[key]
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    os.environ["MLCYCLE_ARTIFACT_ROOT"] = str(workdir / "mlartifacts")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    os.chdir(workdir)
    import logging

    logging.basicConfig(level=logging.WARNING)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    log(f"workdir {workdir}; {os.cpu_count()} CPUs")

    name, features = train_model(workdir)
    uri = f"models:/{name}@champion"
    records = distinct_key_body()
    bomb = parquet_bomb()
    big = records_body(features, 12_000)
    log(f"bodies: distinct keys {len(records) / 1e3:.0f} KB, Parquet bomb "
        f"{len(bomb) / 1e3:.0f} KB (50M rows), 12,000 records {len(big) / 1e6:.1f} MB")  # fmt: skip

    lines: list[str] = []
    procs: list[Proc] = []
    try:
        servers: list[tuple[str, Proc]] = []
        mp = free_port()
        ours = spawn("mlcycle", [str(BIN / "mlcycle"), "serve", "--model", uri, "--host",
                     "127.0.0.1", "--port", str(mp), "--no-inference-log", "--max-rows",
                     "20000"], workdir, env, mp)  # fmt: skip
        procs.append(ours)
        servers.append(("mlcycle", ours))
        if not args.no_stock:
            sp = free_port()
            stock = spawn("stock", [str(BIN / "mlflow"), "models", "serve", "-m", uri,
                          "--env-manager", "local", "-h", "127.0.0.1", "-p", str(sp)],
                          workdir, env, sp)  # fmt: skip
            procs.append(stock)
            servers.append(("stock", stock))
        wait_ready(ours, "/ready")
        if not args.no_stock:
            wait_ready(servers[1][1], "/ping")

        for label, proc in servers:
            bombs = label == "mlcycle" or args.with_stock
            if bombs:
                # The bomb first: memory freed by an earlier request stays resident and would
                # hide its growth.
                st, sec, mb = measure_body(proc, bomb, "application/vnd.apache.parquet")
                ok = st == 413 and mb <= PARQUET_GOAL_MB
                goal = f" (goal 413 with <= +{PARQUET_GOAL_MB:.0f} MB: {verdict(ok)})"
                lines.append(f"{label:8} Parquet bomb (50M rows): HTTP {st} in {sec:.2f}s, "
                             f"RSS +{mb:.0f} MB{goal if label == 'mlcycle' else ''}")  # fmt: skip
                log(lines[-1])
                st, sec, mb = measure_body(proc, records, "application/json")
                ok = label != "mlcycle" or (mb <= RECORDS_GOAL_MB and 400 <= st < 500)
                goal = f" (goal <= +{RECORDS_GOAL_MB:.0f} MB: {verdict(ok)})"
                lines.append(f"{label:8} 16,000 distinct-key records: HTTP {st} in {sec:.2f}s, "
                             f"RSS +{mb:.0f} MB{goal if label == 'mlcycle' else ''}")  # fmt: skip
                log(lines[-1])
            p99, n, st = ping_during_parse(proc, big)
            goal = f" (goal <= {PING_P99_GOAL_MS:.0f} ms: {verdict(p99 <= PING_P99_GOAL_MS)})"
            lines.append(f"{label:8} /ping p99 during 12,000-record bodies: {p99:.1f} ms "
                         f"({n} bodies answered, last HTTP {st})"
                         f"{goal if label == 'mlcycle' else ''}")  # fmt: skip
            log(lines[-1])
    finally:
        for proc in procs:
            proc.stop()
    print("\nmemory benchmark — RSS growth of the server's process group, peak sampled every 5 ms")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
