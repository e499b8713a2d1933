"""Serving benchmark: stock `mlflow models serve` against `mlcycle serve` on the same models.

Trains two models with mlcycle's training function in a private store, registers each as
``@champion``, starts both servers on each (one process group per server), checks that both
return identical predictions on a sample, then drives each server in turn with the same load
generator: one-row requests with 1 and 16 concurrent clients, and 1000-row requests. mlcycle
runs twice: with ``--no-inference-log`` ("mlcycle") and with the inference log on
("mlcycle+log", the configuration monitoring needs). Prints req/s, rows/s, p50/p99 latency,
errors and the mlcycle/stock ratios against the targets of issue 4, then the goals of issue 15:
log on vs off (p99 <= 2x, req/s >= 90 %), 1000-row p99 <= 4x its p50, and the memory of
``--workers 2`` against two single-worker servers (+100 MB), as RSS and PSS of the process tree.
Then the goal of issue 16: ``--canary 10%`` (``@challenger`` answering a tenth of the requests in
the same process) against the single-model server at 16 clients, req/s within 10 %: the median
of the per-round ratios of alternating rounds, so both see the same machine load.

Load generator: ``wrk`` when installed (``apt-get install wrk``), otherwise a small asyncio
client on raw keep-alive HTTP/1.1 sockets. Both are first run against a trivial ASGI endpoint
so the table shows the generator's own ceiling on this machine: a server cannot be measured
faster than that.

    python benchmarks/serving.py                 # 10 s per scenario
    python benchmarks/serving.py --quick         # 3 s per scenario, smaller training sets
    python benchmarks/serving.py --generator python --duration 20

Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
TARGETS = {
    # (model, scenario): minimum mlcycle/stock ratio
    ("random_forest", "1 row x16"): 30.0,
    ("logistic", "1 row x16"): 10.0,
    ("random_forest", "1000 rows x2"): 2.0,
    ("logistic", "1000 rows x2"): 2.0,
    # `mlcycle train --model xgboost` (skops pipeline, issue 12): the same model on both.
    ("xgboost", "1 row x16"): 10.0,
}
P99_TARGET_MS = 25.0
P50_ONE_CLIENT_TARGET_MS = 2.0
LOG_P99_MAX_RATIO = 2.0  # log on / log off, 1 and 16 clients
LOG_RPS_MIN_RATIO = 0.9
BIG_P99_MAX_P50 = 4.0  # 1000-row requests: no collector pauses in the tail
MEMORY_SLACK_MB = 100.0  # --workers N <= N x one worker + this
CANARY_MIN_RATIO = 0.9  # canary req/s / single-model req/s, 1 row x16
CANARY_ROUNDS = 5


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the whole process group (MLflow spawns uvicorn and its workers)."""
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


def spawn(name: str, cmd: list[str], workdir: Path, env: dict[str, str], port: int) -> Proc:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Proc(name, popen, port, log)


def http(method: str, url: str, body: bytes | None = None, ctype: str = "application/json",
         timeout: float = 30.0) -> tuple[int, bytes]:  # fmt: skip
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(proc: Proc, path: str, timeout: float = 180.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited:\n{proc.log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            if http("GET", proc.url + path, timeout=5)[0] == 200:
                return time.perf_counter() - t0
        time.sleep(0.1)
    raise TimeoutError(f"{proc.name} not ready after {timeout}s:\n{proc.log.read_text()[-3000:]}")


def tree_memory_mb(pid: int) -> tuple[float, float, int]:
    """(RSS, PSS, processes) of ``pid`` and all its descendants, from smaps_rollup."""
    todo, pids = [pid], []
    while todo:
        p = todo.pop()
        pids.append(p)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    rss = pss = 0
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key == "Rss":
                    rss += int(value.split()[0])
                elif key == "Pss":
                    pss += int(value.split()[0])
    return rss / 1024, pss / 1024, len(pids)


# --------------------------------------------------------------------------- load generators


@dataclass
class Load:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


async def _python_client(host: str, port: int, request: bytes, deadline: float, budget: list[int],
                         lat: list[float], errs: list[int]) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            chunked = False
            for line in head.split(b"\r\n")[1:]:
                key, _, value = line.partition(b":")
                key = key.strip().lower()
                if key == b"content-length":
                    length = int(value)
                elif key == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            else:
                await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            if status != 200:
                errs[0] += 1
    except (OSError, asyncio.IncompleteReadError, ValueError):
        errs[0] += 1
    finally:
        writer.close()


def python_load(url: str, body: bytes, ctype: str, clients: int, duration: float,
                max_requests: int) -> Load:  # fmt: skip
    """Closed-loop load from ``clients`` keep-alive connections, bounded by time and count."""
    hostport = url.split("//", 1)[1].split("/", 1)[0]
    host, port = hostport.split(":")
    request = (
        f"POST /invocations HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    ).encode() + body
    lat: list[float] = []
    errs = [0]
    budget = [max_requests]

    async def main() -> float:
        t0 = time.perf_counter()
        deadline = t0 + duration
        await asyncio.gather(*(
            _python_client(host, int(port), request, deadline, budget, lat, errs)
            for _ in range(clients)
        ))  # fmt: skip
        return time.perf_counter() - t0

    seconds = asyncio.run(main())
    lat.sort()
    return Load(
        len(lat), errs[0], seconds, _percentile(lat, 0.5) * 1e3, _percentile(lat, 0.99) * 1e3
    )


_WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("BENCH_CTYPE")
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\\"requests\\": %d, \\"us\\": %d, \\"errors\\": %d, "
    .. "\\"p50\\": %f, \\"p99\\": %f}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_load(url: str, body: bytes, ctype: str, clients: int, duration: float,
             max_requests: int) -> Load:  # fmt: skip
    """The same scenario with ``wrk`` (time-bounded; ``max_requests`` does not apply)."""
    del max_requests
    with tempfile.TemporaryDirectory() as tmp:
        script, body_file = Path(tmp) / "post.lua", Path(tmp) / "body"
        script.write_text(_WRK_LUA)
        body_file.write_bytes(body)
        env = {**os.environ, "BENCH_BODY": str(body_file), "BENCH_CTYPE": ctype}
        threads = min(clients, 2)
        out = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{max(1, round(duration))}s",
             "--timeout", "30s", "-s", str(script), url + "/invocations"],
            capture_output=True, text=True, env=env, check=True,
        ).stdout  # fmt: skip
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH_JSON "))
    doc = json.loads(line.split(" ", 1)[1])
    return Load(doc["requests"], doc["errors"], doc["us"] / 1e6, doc["p50"] / 1e3, doc["p99"] / 1e3)


# --------------------------------------------------------------------------- trivial endpoint


async def _trivial_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b'{"predictions": [0]}'})


def run_trivial_server(port: int) -> None:
    import uvicorn

    uvicorn.run(_trivial_app, host="127.0.0.1", port=port, log_level="warning",
                access_log=False, http="httptools", loop="uvloop")  # fmt: skip


# --------------------------------------------------------------------------- models


def train_models(workdir: Path, quick: bool) -> dict[str, tuple[str, Any]]:
    """Train and register both models; return {label: (registered name, feature frame)}."""
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient
    from sklearn.datasets import make_classification

    from mlcycle import data as data_mod
    from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
    from mlcycle.train import TrainConfig, train

    client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    n = 5000 if quick else 20000
    X, y = make_classification(n_samples=n, n_features=20, random_state=0)
    rf_frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)]).assign(target=y)
    churn = make_scenario(n, period="reference", seed=0)
    jobs = [
        ("random_forest", "bench_rf", rf_frame, "target", "random_forest",
         {"n_estimators": "100"}, None),
        ("logistic", "bench_logistic", churn, SCENARIO_TARGET, "linear", {}, SCENARIO_TIME),
        ("xgboost", "bench_xgboost", rf_frame, "target", "xgboost", {"n_jobs": "1"}, None),
    ]  # fmt: skip
    out: dict[str, tuple[str, Any]] = {}
    for label, name, frame, target, model, params, time_col in jobs:
        path = workdir / f"{name}.csv"
        frame.to_csv(path, index=False)
        t0 = time.perf_counter()
        result = train(
            TrainConfig(data=str(path), target=target, model=model, params=params,
                        time_column=time_col, plots=False, experiment="benchmark-serving"),
            client,
        )  # fmt: skip
        mv = mlflow.register_model(result.model_uri, name)
        client.set_registered_model_alias(name, "champion", mv.version)
        spec = data_mod.infer_spec(frame, target, None, time_col, ())
        features = data_mod.prepare_features(frame.sample(1000, random_state=1), spec)
        log(f"trained {label}: {time.perf_counter() - t0:.1f}s, onnx exact={result.onnx_exact}")
        out[label] = (name, features.reset_index(drop=True))
    return out


def split_body(frame: Any) -> bytes:
    records = frame.astype(object).where(frame.notna(), None)
    doc = records.to_dict(orient="split")
    return json.dumps(
        {"dataframe_split": {"columns": doc["columns"], "data": doc["data"]}}
    ).encode()


# --------------------------------------------------------------------------- main


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fmt_row(cols: list[str], widths: list[int]) -> str:
    pairs = enumerate(zip(cols, widths, strict=True))
    return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in pairs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="Seconds per scenario.")
    ap.add_argument("--quick", action="store_true", help="3 s per scenario, smaller training sets.")
    ap.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--workers", type=int, default=1, help="mlcycle serve --workers.")
    ap.add_argument("--max-requests", type=int, default=200_000, help="Per scenario (python).")
    ap.add_argument("--workdir", type=Path, default=None, help="Keep store and logs here.")
    ap.add_argument(
        "--ceiling-only", action="store_true", help="Only measure the generator's own ceiling."
    )
    models = ["random_forest", "logistic", "xgboost"]
    ap.add_argument("--models", nargs="+", choices=models, default=models,
                    help="Models to measure.")  # fmt: skip
    ap.add_argument("--trivial-server", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.trivial_server is not None:
        run_trivial_server(args.trivial_server)
        return 0
    duration = 3.0 if args.quick and args.duration == 10.0 else args.duration
    gen_name = args.generator
    if gen_name == "auto":
        gen_name = "wrk" if shutil.which("wrk") else "python"
    generate = wrk_load if gen_name == "wrk" else python_load

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlcycle-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()
    for key in list(os.environ):
        if key.startswith(("MLFLOW_", "MLCYCLE_")):
            del os.environ[key]
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    os.environ["MLCYCLE_ARTIFACT_ROOT"] = str(workdir / "mlartifacts")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    os.chdir(workdir)
    import logging

    logging.basicConfig(level=logging.WARNING)
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    # `mlflow models serve` execs `uvicorn` by name: this environment's bin must come first.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    log(f"workdir {workdir}; generator {gen_name}; {duration:.0f}s per scenario; "
        f"{os.cpu_count()} CPUs")  # fmt: skip

    scenarios = [("1 row x1", 1, 1), ("1 row x16", 16, 1), ("1000 rows x2", 2, 1000)]
    rows_out: list[list[str]] = []
    procs: list[Proc] = []
    try:
        # The generator's own ceiling: the same scenarios against a constant ASGI endpoint.
        port = free_port()
        trivial = spawn("trivial", [sys.executable, __file__, "--trivial-server", str(port)],
                        workdir, env, port)  # fmt: skip
        procs.append(trivial)
        wait_ready_port(trivial)
        ceilings: dict[str, Load] = {}
        for label, clients, _ in scenarios[:2]:
            body = b'{"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}'
            ceilings[label] = generate(trivial.url, body, "application/json", clients, duration,
                                       args.max_requests)  # fmt: skip
            log(f"generator ceiling {label}: {ceilings[label].rps():.0f} req/s")
        trivial.stop()
        if args.ceiling_only:
            for k, v in ceilings.items():
                print(f"{gen_name} ceiling {k}: {v.rps():.0f} req/s p50 {v.p50_ms:.2f} ms")
            return 0

        models = {k: v for k, v in train_models(workdir, args.quick).items() if k in args.models}
        results: dict[tuple[str, str, str], Load] = {}
        memory: dict[str, tuple[tuple[float, float, int], tuple[float, float, int]]] = {}
        canary: dict[str, tuple[float, float, float]] = {}
        identical: dict[str, bool] = {}
        for label, (name, features) in models.items():
            uri = f"models:/{name}@champion"
            sp, mp = free_port(), free_port()
            stock = spawn(f"stock-{label}", [str(BIN / "mlflow"), "models", "serve", "-m", uri,
                          "--env-manager", "local", "-h", "127.0.0.1", "-p", str(sp)],
                          workdir, env, sp)  # fmt: skip
            ours = spawn(f"mlcycle-{label}", [str(BIN / "mlcycle"), "serve", "--model", uri,
                         "--host", "127.0.0.1", "--port", str(mp), "--workers",
                         str(args.workers), "--no-inference-log"], workdir, env, mp)  # fmt: skip
            lp = free_port()
            ours_log = spawn(f"mlcycle-log-{label}", [str(BIN / "mlcycle"), "serve", "--model",
                             uri, "--host", "127.0.0.1", "--port", str(lp), "--workers",
                             str(args.workers), "--inference-log", str(workdir / f"ilog-{label}")],
                             workdir, env, lp)  # fmt: skip
            procs += [stock, ours, ours_log]
            log(f"{label}: stock ready in {wait_ready(stock, '/ping'):.1f}s, "
                f"mlcycle ready in {wait_ready(ours, '/ready'):.1f}s, "
                f"mlcycle+log ready in {wait_ready(ours_log, '/ready'):.1f}s")  # fmt: skip
            sample = split_body(features.head(200))
            a, b = (
                http("POST", stock.url + "/invocations", sample),
                http("POST", ours.url + "/invocations", sample),
            )
            same = a[0] == b[0] == 200 and json.loads(a[1]) == json.loads(b[1])
            identical[label] = same
            log(f"{label}: identical predictions on 200 rows: {same}")
            if not same:
                log(f"  stock {a[0]} {a[1][:200]!r}\n  mlcycle {b[0]} {b[1][:200]!r}")
            for scen, clients, nrows in scenarios:
                body = split_body(features.head(nrows))
                servers = (("stock", stock), ("mlcycle", ours), ("mlcycle+log", ours_log))
                for server_name, proc in servers:
                    generate(proc.url, body, "application/json", clients, min(1.0, duration),
                             args.max_requests)  # warm-up  # fmt: skip
                    res = generate(proc.url, body, "application/json", clients, duration,
                                   args.max_requests)  # fmt: skip
                    results[(label, scen, server_name)] = res
                    log(
                        f"{label} {scen} {server_name}: {res.rps():.0f} req/s p50 "
                        f"{res.p50_ms:.2f} ms p99 {res.p99_ms:.2f} ms errors {res.errors}"
                    )
                    rows_out.append([label, scen, server_name, f"{res.rps():.0f}",
                                     f"{res.rps() * nrows:.0f}", f"{res.p50_ms:.2f}",
                                     f"{res.p99_ms:.2f}", str(res.errors), ""])  # fmt: skip
                s, m = results[(label, scen, "stock")], results[(label, scen, "mlcycle")]
                ratio = m.rps() / s.rps() if s.rps() else float("inf")
                target = TARGETS.get((label, scen))
                verdict = f"{ratio:.1f}x" + (
                    f" (target >= {target:.0f}x: {'met' if ratio >= target else 'MISSED'})"
                    if target else "")  # fmt: skip
                rows_out[-2][-1] = verdict
                lg = results[(label, scen, "mlcycle+log")]
                rows_out[-1][-1] = f"{lg.rps() / s.rps() if s.rps() else float('inf'):.1f}x"
            stock.stop()
            canary[label] = measure_canary(name, uri, ours, features, workdir, env, args, generate,
                                           duration, procs)  # fmt: skip
            # Memory of the default (log on) server: --workers 1 is running; add --workers 2.
            ours.stop()
            one = tree_memory_mb(ours_log.popen.pid)
            ours_log.stop()
            wp = free_port()
            two_proc = spawn(f"mlcycle-w2-{label}", [str(BIN / "mlcycle"), "serve", "--model",
                             uri, "--host", "127.0.0.1", "--port", str(wp), "--workers", "2",
                             "--inference-log", str(workdir / f"ilog-w2-{label}")],
                             workdir, env, wp)  # fmt: skip
            procs.append(two_proc)
            wait_ready(two_proc, "/ready")
            one_row = split_body(features.head(1))
            for _ in range(50):  # both workers answer a few requests before being measured
                http("POST", two_proc.url + "/invocations", one_row)
            two = tree_memory_mb(two_proc.popen.pid)
            two_proc.stop()
            memory[label] = (one, two)
            log(f"{label}: memory --workers 1 rss {one[0]:.0f} MB pss {one[1]:.0f} MB "
                f"({one[2]} processes); --workers 2 rss {two[0]:.0f} MB pss {two[1]:.0f} MB "
                f"({two[2]} processes)")  # fmt: skip
    finally:
        for proc in procs:
            proc.stop()

    header = ["model", "scenario", "server", "req/s", "rows/s", "p50 ms", "p99 ms", "errors",
              "mlcycle/stock"]  # fmt: skip
    table = [header, *rows_out]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print(f"\nserving benchmark — generator {gen_name}, {duration:.0f}s per scenario, "
          f"{os.cpu_count()} CPUs, mlcycle --workers {args.workers}\n")  # fmt: skip
    print(fmt_row(header, widths))
    print(fmt_row(["-" * w for w in widths], widths))
    for row in rows_out:
        print(fmt_row(row, widths))
    print(
        "\ngenerator ceiling (constant ASGI endpoint): "
        + ", ".join(f"{k}: {v.rps():.0f} req/s p50 {v.p50_ms:.2f} ms" for k, v in ceilings.items())
    )
    checks = []
    for label in models:
        m16 = results[(label, "1 row x16", "mlcycle")]
        m1 = results[(label, "1 row x1", "mlcycle")]
        p99_ok = "met" if m16.p99_ms <= P99_TARGET_MS else "MISSED"
        p50_ok = "met" if m1.p50_ms <= P50_ONE_CLIENT_TARGET_MS else "MISSED"
        checks.append(
            f"{label}: p99 x16 {m16.p99_ms:.1f} ms (target <= {P99_TARGET_MS:.0f}: {p99_ok}); "
            f"p50 x1 {m1.p50_ms:.2f} ms (target <= {P50_ONE_CLIENT_TARGET_MS:.0f}: {p50_ok})"
        )
    for label in models:
        for scen in ("1 row x1", "1 row x16"):
            off, on = results[(label, scen, "mlcycle")], results[(label, scen, "mlcycle+log")]
            p99_ratio = on.p99_ms / off.p99_ms if off.p99_ms else float("inf")
            rps_ratio = on.rps() / off.rps() if off.rps() else 0.0
            checks.append(
                f"{label} {scen}: log on/off p99 {on.p99_ms:.2f}/{off.p99_ms:.2f} ms = "
                f"{p99_ratio:.2f}x (target <= {LOG_P99_MAX_RATIO:.0f}x: "
                f"{'met' if p99_ratio <= LOG_P99_MAX_RATIO else 'MISSED'}); req/s "
                f"{rps_ratio:.0%} of log off (target >= {LOG_RPS_MIN_RATIO:.0%}: "
                f"{'met' if rps_ratio >= LOG_RPS_MIN_RATIO else 'MISSED'})"
            )
        for server_name in ("mlcycle", "mlcycle+log"):
            big = results[(label, "1000 rows x2", server_name)]
            ratio = big.p99_ms / big.p50_ms if big.p50_ms else float("inf")
            checks.append(
                f"{label} 1000 rows x2 {server_name}: p99/p50 {big.p99_ms:.1f}/"
                f"{big.p50_ms:.1f} ms = {ratio:.1f}x (target <= {BIG_P99_MAX_P50:.0f}x: "
                f"{'met' if ratio <= BIG_P99_MAX_P50 else 'MISSED'})"
            )
        one, two = memory[label]
        for i, kind in ((0, "RSS"), (1, "PSS")):
            limit = 2 * one[i] + MEMORY_SLACK_MB
            checks.append(
                f"{label} memory {kind}: --workers 2 {two[i]:.0f} MB ({two[2]} processes) vs "
                f"2 x --workers 1 ({one[i]:.0f} MB) + {MEMORY_SLACK_MB:.0f} MB = {limit:.0f} MB: "
                f"{'met' if two[i] <= limit else 'MISSED'}"
            )
    for label, (single, both, ratio) in canary.items():
        checks.append(
            f"{label} 1 row x16: --canary 10% {both:.0f} req/s vs single model {single:.0f} "
            f"req/s (medians); canary/single {ratio:.2f}x (median of {CANARY_ROUNDS} paired "
            f"rounds; target >= {CANARY_MIN_RATIO:.1f}x: "
            f"{'met' if ratio >= CANARY_MIN_RATIO else 'MISSED'})"
        )
    checks += [f"{label}: identical predictions to stock on 200 rows: "
               f"{'met' if same else 'MISSED'}" for label, same in identical.items()]  # fmt: skip
    print("\n".join(checks))
    return 0


def measure_canary(name: str, uri: str, single: Proc, features: Any, workdir: Path,
                   env: dict[str, str], args: argparse.Namespace, generate: Any,
                   duration: float, procs: list[Proc]) -> tuple[float, float, float]:  # fmt: skip
    """Median req/s of the single-model server and of ``--canary 10%`` (1 row, 16 clients),
    and the median of their per-round ratios."""
    import statistics

    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    source = client.get_model_version_by_alias(name, "champion").source
    client.set_registered_model_alias(
        name, "challenger", mlflow.register_model(source, name).version
    )
    cp = free_port()
    proc = spawn(f"mlcycle-canary-{name}", [str(BIN / "mlcycle"), "serve", "--model", uri,
                 "--host", "127.0.0.1", "--port", str(cp), "--workers", str(args.workers),
                 "--no-inference-log", "--canary", "10%"], workdir, env, cp)  # fmt: skip
    procs.append(proc)
    wait_ready(proc, "/ready")
    body = split_body(features.head(1))
    generate(proc.url, body, "application/json", 16, min(1.0, duration), args.max_requests)
    rps: dict[str, list[float]] = {"single": [], "canary": []}
    roles: list[int] = []
    for r in range(CANARY_ROUNDS):
        pair = [("single", single), ("canary", proc)]
        for key, p in pair if r % 2 == 0 else pair[::-1]:  # neither always goes first
            res = generate(p.url, body, "application/json", 16, duration, args.max_requests)
            rps[key].append(res.rps())
    metrics = http("GET", proc.url + "/metrics")[1].decode()
    for line in metrics.splitlines():
        if line.startswith("mlcycle_requests_total{") and 'route="/invocations"' in line:
            roles.append(int(float(line.rsplit(" ", 1)[1])) if 'role="challenger"' in line else 0)
    proc.stop()
    client.delete_registered_model_alias(name, "challenger")
    a, b = statistics.median(rps["single"]), statistics.median(rps["canary"])
    paired = statistics.median(c / s for s, c in zip(rps["single"], rps["canary"], strict=True))
    log(f"{name}: canary {b:.0f} req/s vs single {a:.0f} req/s, paired ratio {paired:.2f} "
        f"({rps}); challenger answered {sum(roles)} requests")  # fmt: skip
    return a, b, paired


def wait_ready_port(proc: Proc, timeout: float = 30.0) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", proc.port)) == 0:
                return
        if proc.popen.poll() is not None:
            raise RuntimeError(proc.log.read_text()[-2000:])
        time.sleep(0.05)
    raise TimeoutError(f"{proc.name} not listening")


if __name__ == "__main__":
    sys.exit(main())
