"""Schedule: monitor one window (detect → decide → act), or keep doing it every period.

API: :class:`MonitorOutcome`, :func:`run_once`, :func:`loop`, :func:`parse_period`.

``run_once`` is safe to run twice at once for the same window: a file lock serialises
monitors on one machine, a completed run for the window makes later ones skip, and the
earliest live MLflow run for the window wins between machines — so one window never starts
two retrains.

A window is the data it covers. Without a time range, ``run_once`` reads the inference log
from the end of the last window already monitored for the model version, so re-running it on
an unchanged log monitors nothing twice (it says the data is already monitored).

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
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from filelock import FileLock

from mlcycle import storage
from mlcycle.config import Settings, ensure_experiment
from mlcycle.errors import ConfigError
from mlcycle.monitoring import record
from mlcycle.monitoring.drift import (
    DriftConfig,
    DriftResult,
    Finding,
    analyse_summary,
    analyse_window,
    new_summary,
)
from mlcycle.monitoring.inputs import (
    ReferenceData,
    Window,
    join_labels,
    load_current,
    load_reference,
    read_inference_log,
    stream_inference_log,
    summarise_file,
)
from mlcycle.monitoring.policy import Decision, RetrainPolicy, WindowOutcome, decide
from mlcycle.monitoring.project import project_retrain
from mlcycle.monitoring.summary import WindowSummary
from mlcycle.monitoring.trigger import RetrainOutcome, retrain
from mlcycle.tags import (
    MLCYCLE_DUPLICATE_OF,
    MLCYCLE_RETRAIN_PROMOTED,
    MLCYCLE_RETRAIN_RUN_ID,
    MLCYCLE_RETRAIN_SKIPPED,
    MLCYCLE_RETRAIN_VERSION,
    MLCYCLE_WINDOW,
)

if TYPE_CHECKING:
    from mlcycle.register import GatePolicy

logger = logging.getLogger(__name__)

RetrainFn = Callable[..., RetrainOutcome]
Engine = Literal["pandas", "arrow", "spark"]
#: How a window from the inference log is read: whole into pandas, streamed as Arrow
#: record batches (bounded memory), or summarised by Spark where the log lies.
ENGINES: tuple[str, ...] = ("pandas", "arrow", "spark")


#: A plain number is seconds.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")


def parse_period(text: str) -> timedelta:
    """A window length such as ``30s``, ``15m``, ``1h30m``, ``1d`` or ``1 day``, via pandas.

    Units are case-insensitive (``1M`` is a minute, as ``1m``); a plain number is seconds;
    ISO 8601 durations (``PT90M``) are read as pandas reads them.

    Raises:
        ConfigError: not a duration, or not a positive one.
    """
    raw = text.strip()
    if raw.startswith(("P", "-P")):
        spec = raw  # ISO 8601: its letters are upper case by definition
    else:
        # pandas spells days and weeks D and W; people write 1d, 1H, 1M (a minute).
        spec = re.sub(r"(?<![a-z])([dw])(?![a-z])", lambda m: m.group(1).upper(), raw.lower())
    try:
        value = pd.Timedelta(seconds=float(raw)) if _NUMBER.fullmatch(raw) else pd.Timedelta(spec)
    except (ValueError, OverflowError):
        value = pd.NaT
    if pd.isna(value):
        raise ConfigError(f"'{text}' is not a duration like 30s, 15m, 1h30m, 1d")
    if value <= pd.Timedelta(0):
        raise ConfigError(f"the period must be positive, not '{text}'")
    return value.to_pytimedelta()


@dataclass(frozen=True)
class MonitorOutcome:
    """What one monitoring pass did."""

    window: str | None
    run_id: str | None
    result: DriftResult | None
    decision: Decision | None
    retrain: RetrainOutcome | None = None
    skipped: str | None = None
    source: str = "log"
    stale: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (what ``mlcycle monitor --json`` prints)."""
        return {
            "window": self.window,
            "run_id": self.run_id,
            "skipped": self.skipped,
            "result": self.result.as_dict() if self.result else None,
            "decision": asdict(self.decision) if self.decision else None,
            "retrain": asdict(self.retrain) if self.retrain else None,
            "stale": list(self.stale),
        }


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
        config: drift thresholds and methods; its ``drift_share`` is replaced by the
            policy's, so the window's status, its report and the policy use one threshold.
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
    if config.drift_share != policy.drift_share:
        # One threshold: the status, the report's headline and the policy must agree.
        config = replace(config, drift_share=policy.drift_share)
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
    summary: WindowSummary | None = None
    frame: pd.DataFrame | None = None
    if isinstance(current, (str, Path)):
        summary = summarise_file(current, _new_summary(ref, config, labels))
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
            summary = _summarise_log(
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
            out = _monitor(
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
        return replace(out, source=source, stale=stale)


def _monitor(
    client: Any,
    settings: Settings,
    name: str,
    version: str | None,
    window: Window | None,
    current: pd.DataFrame | None,
    ref: ReferenceData,
    labels: pd.DataFrame | None,
    config: DriftConfig,
    policy: RetrainPolicy,
    allow_retrain: bool,
    output_dir: Path,
    retrain_fn: RetrainFn,
    experiment_id: str,
    run_id: str,
    problems: list[str],
    summary: WindowSummary | None = None,
    engine: Engine = "pandas",
    spark_master: str = "local[2]",
) -> MonitorOutcome:
    key = window.key if window is not None else None
    if current is None and summary is None:
        if engine == "pandas":
            current = read_inference_log(
                settings.inference_log, name, window, version=version, problems=problems
            )
        else:
            summary = _summarise_log(
                settings, name, window, version, problems, None, ref, config, labels, engine,
                spark_master,
            )  # fmt: skip
    findings = [Finding("inference_log", "unreadable_file", p) for p in problems]
    refused: list[str] = []
    if summary is not None:
        # Streamed: only the rows labels name were kept; they are the window's labelled
        # rows (quality, retrain data), and the report's sample gets its labels too.
        current = summary.labelled_frame()
        if labels is not None:
            current = join_labels(current, labels, ref.target, problems=refused)
            if summary.sample is not None:
                summary.sample = join_labels(summary.sample, labels, ref.target, problems=[])
    elif labels is not None:
        assert current is not None
        current = join_labels(current, labels, ref.target, problems=refused)
    findings += [Finding(ref.target, "labels_refused", p) for p in refused]
    assert current is not None
    before = record.history(client, experiment_id, name, version)
    step = len(before)
    if summary is not None:
        labelled = current if ref.target in current.columns else None
        result = analyse_summary(ref, summary, config, output_dir / run_id, labelled=labelled)
    else:
        result = analyse_window(ref, current, config, output_dir / run_id)
    if findings:
        result = replace(result, findings=(*findings, *result.findings))
    trend = None
    stamp = None
    if window is not None:
        end = window.end - pd.Timedelta(microseconds=1)
        trend = record.trend_run(client, experiment_id, name, version, f"{end:%Y-%m}")
        stamp = int(window.end.timestamp() * 1000)
    record.log_result(client, run_id, result, step, trend, stamp, config.drift_share)
    outcome = WindowOutcome(
        key=key or run_id,
        status=result.status,
        drift_share=result.drift_share,
        quality_drop=result.quality_drop,
        drifted=tuple(result.drifted),
    )
    decision = decide([*before, outcome], policy)
    extra: dict[str, str] = {}
    retrained = None
    if decision.retrain:
        labelled = 0
        if ref.target in current.columns:
            labelled = int(current[ref.target].notna().sum())
        if not allow_retrain:
            extra[MLCYCLE_RETRAIN_SKIPPED] = "retrain disabled"
        elif labelled < config.min_labels:
            extra[MLCYCLE_RETRAIN_SKIPPED] = (
                f"{labelled} labelled rows; {config.min_labels} needed to retrain"
            )
            logger.info("retrain wanted for %s but %s", name, extra[MLCYCLE_RETRAIN_SKIPPED])
        else:
            retrained = retrain_fn(
                client,
                name,
                ref,
                current,
                monitoring_run_id=run_id,
                window=key,
                experiment=settings.experiment,
                seed=settings.seed,
                data_path=output_dir / run_id / "retrain.parquet",
                action=project_retrain(settings),
                settings=settings,
            )
            extra.update(
                {
                    MLCYCLE_RETRAIN_RUN_ID: retrained.run_id,
                    MLCYCLE_RETRAIN_VERSION: retrained.version,
                    MLCYCLE_RETRAIN_PROMOTED: str(retrained.promoted).lower(),
                }
            )
    record.finish(client, run_id, decision, extra)
    return MonitorOutcome(key, run_id, result, decision, retrained)


def _summarise_log(
    settings: Settings,
    name: str,
    window: Window | None,
    version: str | None,
    problems: list[str],
    since: pd.Timestamp | None,
    ref: ReferenceData,
    config: DriftConfig,
    labels: pd.DataFrame | None,
    engine: Engine,
    spark_master: str,
) -> WindowSummary:
    summary = _new_summary(ref, config, labels)
    if engine == "spark":
        from mlcycle.monitoring.spark import spark_summary

        return spark_summary(
            settings.inference_log, name, summary, window, version, since=since, master=spark_master
        )
    return stream_inference_log(
        settings.inference_log, name, summary, window, version, problems=problems, since=since
    )


def _new_summary(
    ref: ReferenceData, config: DriftConfig, labels: pd.DataFrame | None
) -> WindowSummary:
    """An empty summary that keeps the rows ``labels`` name (they join after the pass)."""
    keys: dict[str, frozenset[str]] = {}
    if labels is not None:
        for col in ("record_id", "request_id"):
            if col in labels.columns:
                keys[col] = frozenset(labels[col].dropna().astype("str"))
    return new_summary(ref, config, keys or None)


def loop(
    client: Any,
    settings: Settings,
    name: str,
    every: timedelta,
    *,
    max_windows: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC"),
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
        **kwargs: passed to :func:`run_once`.
    """
    done = 0
    while max_windows is None or done < max_windows:
        window = Window.latest(every, now())
        yield run_once(client, settings, name, window=window, **kwargs)
        done += 1
        if max_windows is not None and done >= max_windows:
            return
        wait = (window.end + pd.Timedelta(every) - now()).total_seconds()
        sleep(max(wait, 0.0) + 1.0)
