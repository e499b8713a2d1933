"""Schedule: monitor one window (detect → decide → act), or keep doing it every period.

API: :func:`run_once`, :func:`loop`, :func:`unmonitored`; re-exported: :class:`MonitorOutcome`
and :data:`ENGINES` (:mod:`mlcycle.monitoring.cycle`, the read → detect → decide → act of one
window),
:func:`parse_period` (:mod:`mlcycle.monitoring.period`).

``run_once`` is safe to run twice at once for the same window: a file lock serialises
monitors on one machine, a completed run for the window makes later ones skip, and the
earliest live MLflow run for the window wins between machines — so one window never starts
two retrains.

A window is the data it covers. Without a time range, ``run_once`` reads the inference log
from the end of the last window already monitored for the model version, so re-running it on
an unchanged log monitors nothing twice (it says the data is already monitored). A time range
that overlaps ranges already monitored (a whole-log run, an earlier ``--since``, a loop
period) is narrowed to what is new, skipped when nothing is, and refused when what is new is
in several pieces (the error names them).

Monitoring degrades, never dies: a log file that cannot be read or has a foreign schema
becomes a finding and the rest of the window is analysed. A window run left ``RUNNING`` for
longer than ``stale_after`` (its monitor was killed) is reported in
:attr:`MonitorOutcome.stale`; the CLI then exits non-zero.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from filelock import FileLock

from mlcycle import storage
from mlcycle.config import Settings, ensure_experiment
from mlcycle.errors import ConfigError, DataError
from mlcycle.inference_log import scan_inference_log
from mlcycle.monitoring import record
from mlcycle.monitoring.cycle import (
    ENGINES,
    Engine,
    MonitorOutcome,
    RetrainFn,
    monitor_window,
    summarise_log,
    window_summary,
)
from mlcycle.monitoring.drift import DriftConfig
from mlcycle.monitoring.inputs import (
    ReferenceData,
    Window,
    load_current,
    load_reference,
    read_inference_log,
    summarise_file,
)
from mlcycle.monitoring.period import parse_period
from mlcycle.monitoring.policy import RetrainPolicy
from mlcycle.monitoring.summary import WindowSummary
from mlcycle.monitoring.trigger import retrain
from mlcycle.tags import MLCYCLE_DUPLICATE_OF, MLCYCLE_WINDOW

if TYPE_CHECKING:
    from mlcycle.register import GatePolicy

__all__ = ["ENGINES", "MonitorOutcome", "loop", "parse_period", "run_once"]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _file_lock(lock_dir: Path, key: str) -> Iterator[None]:
    lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = lock_dir / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".lock")
    with FileLock(path, mode=0o600):
        yield


def run_once(
    client: Any,
    settings: Settings,
    name: str,
    *,
    version: str | None = None,
    window: Window | None = None,
    current: pd.DataFrame | str | Path | None = None,
    reference: ReferenceData | None = None,
    labels: pd.DataFrame | None = None,
    config: DriftConfig | None = None,
    policy: RetrainPolicy | None = None,
    allow_retrain: bool = True,
    output_dir: str | Path = "monitoring-reports",
    retrain_fn: RetrainFn = retrain,
    lock_dir: str | Path | None = None,
    stale_after: timedelta = timedelta(hours=1),
    engine: Engine = "pandas",
    spark_master: str = "local[2]",
    gate_policy: GatePolicy | None = None,
) -> MonitorOutcome:
    """Analyse one window, log it, decide, and retrain when the policy says so.

    Args:
        client: an ``MlflowClient``.
        settings: resolved settings (inference log root, experiment, seed, and the
            retrain action: :func:`mlcycle.monitoring.project.project_retrain`).
        name: registered model name.
        version: the version monitored; ``@champion`` when omitted.
        window: the time range read from the inference log; it also names the window for
            idempotence. Without it and without ``current`` the log is read from the end of
            the last window monitored for the version, and the window is the time range of
            the rows found.
        current: the window's rows when given directly: a frame, or a CSV/Parquet file. A
            Parquet file without the target column is streamed into the window's summary
            one record batch at a time (:func:`~mlcycle.monitoring.inputs.summarise_file`);
            other files are read whole.
        reference: what to compare with; the version's training reference when omitted.
        labels: late labels (``request_id``, optional ``record_index``, target).
        config: drift thresholds and methods; its ``drift_share`` is the one threshold:
            the window's status, its report, its run's tags and the policy's "bad window".
        policy: the retrain policy.
        allow_retrain: ``False`` records the decision but never trains.
        output_dir: where reports are written (one sub-directory per window).
        retrain_fn: the act step (injectable for tests).
        lock_dir: directory of the per-window file locks.
        stale_after: a window run still ``RUNNING`` after this long is reported as stale.
        engine: how a window of the inference log is read (:data:`ENGINES`): ``pandas``
            loads it whole; ``arrow`` streams record batches into the window's summary in
            bounded memory; ``spark`` computes that summary with Spark. All give the same
            verdicts; the streaming engines keep only the rows that labels name.
        spark_master: the Spark master URL for ``engine="spark"``.
        gate_policy: the gate a retrained challenger must pass to be promoted; the
            default :class:`mlcycle.register.GatePolicy` when ``None``.

    Raises:
        ModelNotFound: no such model/version or no champion.
        MonitoringError: the reference is unusable.
        DataError: the inference log or labels cannot be read.
    """
    policy = policy or RetrainPolicy()
    config = config or DriftConfig()
    if gate_policy is not None:
        retrain_fn = functools.partial(retrain_fn, gate_policy=gate_policy)
    ref = reference or load_reference(client, name, version)
    version = version or ref.model_version
    experiment_id = ensure_experiment(client, record.EXPERIMENT, settings)
    source = "file" if current is not None else "log"  # before a file becomes its summary
    cutoff = int((time.time() - stale_after.total_seconds()) * 1000)
    stale = tuple(
        f"{r.info.run_id} (window {r.data.tags.get(MLCYCLE_WINDOW) or '-'}, RUNNING since "
        f"{pd.Timestamp(r.info.start_time, unit='ms', tz='UTC'):%Y-%m-%d %H:%M}Z)"
        for r in record.stale_runs(client, experiment_id, name, cutoff)
    )
    for s in stale:
        logger.warning("stale monitoring run %s: its monitor was killed", s)
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine '{engine}'; choose one of {', '.join(ENGINES)}")
    problems: list[str] = []
    note: str | None = None
    summary: WindowSummary | None = None
    frame: pd.DataFrame | None = None
    if isinstance(current, (str, Path)):
        summary = summarise_file(current, window_summary(ref, config, labels))
        frame = None if summary is not None else load_current(str(current))
    else:
        frame = current
    if window is None and frame is None and summary is None:
        since, by = record.covered_until(client, experiment_id, name, version)
        if engine == "pandas":
            frame = read_inference_log(
                settings.inference_log, name, None, version=version, problems=problems, since=since
            )
            empty = frame.empty or "timestamp" not in frame.columns
        else:
            summary = summarise_log(
                settings, name, None, version, problems, since, ref, config, labels, engine,
                spark_master,
            )  # fmt: skip
            empty = summary.first_ts is None
        if empty:
            why = (
                f"no new data: the log up to {since} is already monitored by run {by}"
                if since is not None
                else "the inference log has no rows for this model version"
            )
            return MonitorOutcome(None, by, None, None, skipped=why, source=source, stale=stale)
        if summary is not None:
            first, last = pd.Timestamp(summary.first_ts), pd.Timestamp(summary.last_ts)
        else:
            assert frame is not None
            ts = pd.to_datetime(frame["timestamp"], utc=True)
            first, last = ts.min(), ts.max()
        window = Window.of(first.floor("s"), last.floor("s") + pd.Timedelta(seconds=1))
    elif window is not None and frame is None and summary is None:
        parts, owners = unmonitored(
            window, record.covered_windows(client, experiment_id, name, version)
        )
        runs = ", ".join(owners)
        if len(parts) > 1:
            # Around a monitored range: the pieces with no rows (before the log began, say)
            # are not data to monitor.
            parts = [p for p in parts if _has_rows(settings.inference_log, name, version, p)]
        if not parts:
            why = f"already monitored: the data of {window.key} is in run(s) {runs}"
            logger.info("window %s of %s %s", window.key, name, why)
            return MonitorOutcome(
                window.key, owners[-1], None, None, skipped=why, source=source, stale=stale
            )
        if len(parts) > 1:
            raise ConfigError(
                f"part of the window {window.key} is already monitored (run(s) {runs}); monitor "
                "the rest one range at a time: "
                + "; ".join(f"--since {p.start:%Y-%m-%dT%H:%M:%SZ} --until "
                            f"{p.end:%Y-%m-%dT%H:%M:%SZ}" for p in parts)
            )  # fmt: skip
        if parts[0] != window:
            note = f"asked for {window.key}; the rest is already monitored in run(s) {runs}"
            logger.info("window of %s: %s", name, note)
            window = parts[0]
    key = window.key if window is not None else None
    lock_key = f"{settings.tracking_uri}|{name}|{version}|{key or time.time_ns()}"
    locks = Path(lock_dir) if lock_dir else storage.lock_dir() / "monitor"
    with _file_lock(locks, lock_key):
        if key is not None:
            done = record.finished_run_for(client, experiment_id, name, key)
            if done:
                logger.info("window %s of %s already monitored by run %s", key, name, done)
                return MonitorOutcome(
                    key,
                    done,
                    None,
                    None,
                    skipped=f"already monitored by run {done}",
                    source=source,
                    stale=stale,
                )
        run_id = record.start_window_run(client, experiment_id, name, version, key, source)
        if key is not None:
            owner = record.claim(client, experiment_id, run_id, key, name)
            if owner:
                record.finish(client, run_id, None, {MLCYCLE_DUPLICATE_OF: owner}, status="KILLED")
                return MonitorOutcome(
                    key,
                    owner,
                    None,
                    None,
                    skipped=f"window owned by run {owner}",
                    source=source,
                    stale=stale,
                )
        try:
            out = monitor_window(
                client,
                settings,
                name,
                version,
                window,
                frame,
                ref,
                labels,
                config,
                policy,
                allow_retrain,
                Path(output_dir),
                retrain_fn,
                experiment_id,
                run_id,
                problems,
                summary,
                engine,
                spark_master,
            )
        except BaseException:
            record.finish(client, run_id, None, status="FAILED")
            raise
        return replace(out, source=source, stale=stale, note=note)


def _has_rows(root: str, name: str, version: str | None, window: Window) -> bool:
    """Whether the log holds a row of the version in ``window`` (reads timestamps only)."""
    for part in scan_inference_log(root, name, window, version, columns={"timestamp"}):
        try:
            if any(batch.num_rows for batch in part.batches()):
                return True
        except DataError:
            continue  # the window's read reports it
    return False


def unmonitored(
    window: Window, covered: list[tuple[pd.Timestamp, pd.Timestamp, str]]
) -> tuple[list[Window], list[str]]:
    """The parts of ``window`` that no monitored range covers, and the runs that cover the rest.

    A window is the data it covers: data already in a finished window run (a whole-log run,
    an earlier ``--since`` range, a loop period) is never counted again.

    Args:
        window: the range asked for.
        covered: ``(start, end, run id)`` of the ranges already monitored
            (:func:`mlcycle.monitoring.record.covered_windows`).
    """
    parts = [window]
    by: list[str] = []
    for start, end, run_id in covered:
        if end <= window.start or start >= window.end:
            continue
        by.append(run_id)
        rest = []
        for p in parts:
            if end <= p.start or start >= p.end:
                rest.append(p)
                continue
            if p.start < start:
                rest.append(Window(p.start, start))
            if end < p.end:
                rest.append(Window(end, p.end))
        parts = rest
    return parts, list(dict.fromkeys(by))


def loop(
    client: Any,
    settings: Settings,
    name: str,
    every: timedelta,
    *,
    max_windows: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC"),
    stop: threading.Event | None = None,
    **kwargs: Any,
) -> Iterator[MonitorOutcome]:
    """Monitor the last complete window of length ``every``, then wait for the next one.

    Yields one :class:`MonitorOutcome` per window; the caller prints progress. The model's
    reference is reloaded for every window, so a promotion is followed.

    Args:
        client: an ``MlflowClient``.
        settings: resolved settings.
        name: registered model name.
        every: window length and period.
        max_windows: stop after this many windows (``None``: forever).
        sleep: how to wait (injectable for tests).
        now: the clock (injectable for tests).
        stop: once set, no new window starts and the wait for one ends at once (the window
            in progress is finished: ``mlcycle loop`` sets it on SIGTERM).
        **kwargs: passed to :func:`run_once`.
    """
    done = 0
    while (max_windows is None or done < max_windows) and not (stop and stop.is_set()):
        window = Window.latest(every, now())
        yield run_once(client, settings, name, window=window, **kwargs)
        done += 1
        if max_windows is not None and done >= max_windows:
            return
        wait = max((window.end + pd.Timedelta(every) - now()).total_seconds(), 0.0) + 1.0
        if stop is None:
            sleep(wait)
        elif stop.wait(wait):
            return
