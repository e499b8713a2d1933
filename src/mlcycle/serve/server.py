"""Running the model server: the composition root of ``mlcycle serve``.

API: :class:`ServerConfig`, :func:`model_source`, :func:`build_app`, :func:`serve`.

``serve`` checks the model first (the trust policy of :mod:`mlcycle.trust`, signature
required: errors before any port is bound), then runs uvicorn. With ``workers > 1`` the
process then becomes the light :mod:`~mlcycle.serve.supervisor` (``exec``), each worker process
builds its own app from the config passed in ``MLCYCLE_SERVE_CONFIG``, and Prometheus counters
are shared through ``PROMETHEUS_MULTIPROC_DIR``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlcycle.config import MLCYCLE_SERVE_CONFIG, PROMETHEUS_MULTIPROC_DIR
from mlcycle.errors import ConfigError, UntrustedModel
from mlcycle.inference_log import InferenceLog
from mlcycle.serve import options as options_mod
from mlcycle.serve.app import ServingApp, create_app
from mlcycle.serve.holder import GONE, ModelSource
from mlcycle.serve.model import (
    ModelRef,
    Predictor,
    check_model,
    current_version,
    load_predictor,
    resolve,
)
from mlcycle.serve.options import ServeOptions
from mlcycle.tags import MLCYCLE_CANARY_SHARE as CANARY_SHARE_TAG
from mlcycle.uris import CHALLENGER, model_uri

logger = logging.getLogger(__name__)

CONFIG_ENV = MLCYCLE_SERVE_CONFIG.name


@dataclass(frozen=True)
class ServerConfig:
    """Everything one ``mlcycle serve`` process needs; its field defaults are the CLI's."""

    model_uri: str
    host: str = options_mod.HOST
    port: int = options_mod.PORT
    workers: int = options_mod.WORKERS
    inference_log: str | None = "./inference-log"
    allow_pickle: bool = False
    tracking_uri: str | None = None
    registry_uri: str | None = None
    grace: float = options_mod.GRACE
    options: ServeOptions = field(default_factory=ServeOptions)
    #: Level of the ``mlcycle`` loggers in worker processes (the CLI's, handed on by ``serve``).
    log_level: int = logging.INFO

    def to_json(self) -> str:
        """For worker processes."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_given(
        cls,
        model_uri: str,
        *,
        host: str | None = None,
        port: int | None = None,
        workers: int | None = None,
        grace: float | None = None,
        **fields: Any,
    ) -> ServerConfig:
        """A config where ``host``, ``port``, ``workers`` and ``grace`` left ``None`` take the
        defaults declared in :mod:`mlcycle.serve.options`; other fields are taken as given."""
        process: dict[str, Any] = {"host": host, "port": port, "workers": workers, "grace": grace}
        return cls(model_uri, **{k: v for k, v in process.items() if v is not None}, **fields)

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        """Inverse of :meth:`to_json`."""
        doc = json.loads(text)
        doc["options"] = ServeOptions(**doc["options"])
        return cls(**doc)


def _version_ref(ref: ModelRef, version: str) -> ModelRef:
    return dataclasses.replace(
        ref, version=version, download_uri=model_uri(ref.name, version=version)
    )


@dataclass
class _Live:
    """A loaded predictor and the download directory it was loaded from."""

    download_uri: str
    directory: str
    predictor: Predictor


def model_source(
    uri: str, client: Any, *, allow_pickle: bool = False, challenger: bool = False
) -> ModelSource:
    """Predictors for ``uri``: the current version, newer ones when its alias/stage moves,
    and (``challenger``) the ``@challenger`` of the same registered model.

    Every load passes :mod:`mlcycle.trust`. A refused version is remembered: later polls
    skip it without downloading it again, the server keeps its last good model, and
    ``source.refused`` counts it once. A version one role already holds is reused, not
    downloaded again (the challenger promoted to champion keeps its loaded model). A
    download directory is deleted once no role holds it; ``close()`` removes the rest.
    """
    ref = resolve(uri, client)
    downloads = tempfile.mkdtemp(prefix="mlcycle-serve-")
    refused: dict[str, str] = {}  # download URI → why; versions are immutable in a registry
    live: dict[str, _Live] = {}  # role → what it serves
    lock = threading.Lock()

    def hold(role: str, entry: _Live | None) -> None:
        with lock:
            old = live.pop(role, None)
            if entry is not None:
                live[role] = entry
            still_used = {e.directory for e in live.values()}
        # The predictor holds the model in memory: the replaced copy is no longer read.
        if old is not None and old.directory not in still_used:
            shutil.rmtree(old.directory, ignore_errors=True)

    def load_ref(r: ModelRef, role: str) -> Predictor:
        if r.download_uri in refused:
            raise UntrustedModel(refused[r.download_uri])
        with lock:
            same = next((e for e in live.values() if e.download_uri == r.download_uri), None)
        if same is not None:
            hold(role, same)
            return same.predictor
        dst = tempfile.mkdtemp(dir=downloads)
        try:
            predictor = load_predictor(r, allow_pickle=allow_pickle, dst=dst)
        except UntrustedModel as exc:
            shutil.rmtree(dst, ignore_errors=True)
            with lock:
                if r.download_uri not in refused:
                    refused[r.download_uri] = str(exc)
                    source.refused += 1
            logger.error("%s", exc)
            raise
        except BaseException:
            shutil.rmtree(dst, ignore_errors=True)
            raise
        hold(role, _Live(r.download_uri, dst, predictor))
        return predictor

    def newer(r: ModelRef, current: Predictor | None, role: str) -> Predictor | None:
        v = current_version(r, client)
        if v is None and current is not None and role == "challenger":
            hold(role, None)
            return GONE
        if v is None or (current is not None and v == str(current.version)):
            return None
        candidate = _version_ref(r, v)
        if candidate.download_uri in refused:
            return None  # refused once, logged and counted then; keep the last good model
        try:
            return load_ref(candidate, role)
        except UntrustedModel:
            return None

    def load() -> Predictor:
        return load_ref(ref, "champion")

    def poll(current: Predictor | None) -> Predictor | None:
        return newer(ref, current, "champion")

    poll_challenger = poll_share = None
    if challenger and ref.follow is not None:
        challenger_ref = ModelRef(
            model_uri(ref.name, alias=CHALLENGER), ref.name, "", "", CHALLENGER, "alias"
        )

        def poll_challenger(current: Predictor | None) -> Predictor | None:
            return newer(challenger_ref, current, "challenger")

        def poll_share(challenger: Predictor) -> float | None:
            tags = client.get_model_version(ref.name, str(challenger.version)).tags or {}
            raw = tags.get(CANARY_SHARE_TAG)
            if raw is None:
                return None
            try:
                share = float(raw)
            except ValueError:
                share = -1.0
            if not 0 < share <= 1:
                logger.warning(
                    "ignoring %s=%r on version %s", CANARY_SHARE_TAG, raw, challenger.version
                )
                return None
            return share

    def close() -> None:
        shutil.rmtree(downloads, ignore_errors=True)

    source = ModelSource(
        load,
        poll if ref.follow is not None else None,
        poll_challenger,
        close=close,
        poll_share=poll_share,
    )
    return source


def build_app(config: ServerConfig, client: Any | None = None) -> ServingApp:
    """The app for ``config`` (builds the ``MlflowClient`` when not given)."""
    if client is None:
        import mlflow
        from mlflow import MlflowClient

        if config.tracking_uri:
            mlflow.set_tracking_uri(config.tracking_uri)
        if config.registry_uri:
            mlflow.set_registry_uri(config.registry_uri)
        client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.registry_uri)
    source = model_source(
        config.model_uri,
        client,
        allow_pickle=config.allow_pickle,
        challenger=bool(config.options.shadow or config.options.canary),
    )
    log = InferenceLog(config.inference_log) if config.inference_log else None
    shared = PROMETHEUS_MULTIPROC_DIR.get() if config.workers > 1 else None
    return create_app(source, config.options, log, config.workers, shared)


def _set_header_timeout(options: ServeOptions) -> None:
    from mlcycle.serve.http import HeaderTimeoutProtocol

    HeaderTimeoutProtocol.header_timeout = options.header_timeout


def _worker_logging(level: int) -> None:
    """Log in a worker as ``mlcycle serve`` logs with one worker: same level, same format, and
    passwords masked. A worker is a fresh interpreter that inherits none of the CLI's set-up."""
    from mlcycle.redact import RedactingFilter

    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlcycle").setLevel(level)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def app_from_env() -> ServingApp:
    """uvicorn factory for worker processes."""
    config = ServerConfig.from_json(MLCYCLE_SERVE_CONFIG.get() or "")
    _worker_logging(config.log_level)
    _set_header_timeout(config.options)
    return build_app(config)


def serve(config: ServerConfig, client: Any, announce: Callable[[], None] | None = None) -> None:
    """Check the model, then run uvicorn until SIGTERM/SIGINT (graceful within ``grace``).

    ``announce`` is called once the model passed its checks, before the port is bound (the
    CLI says "serving … on …" there, not before a refusal).

    With ``config.workers > 1`` this process is replaced by the supervisor and never returns.

    Raises:
        ConfigError: ``--canary`` on a model that follows no alias or stage.
        ModelNotFound: the URI matches nothing.
        UntrustedModel: the trust policy refused the model.
        ServingError: no usable signature.
    """
    import uvicorn

    from mlcycle.serve.http import PROTOCOL as HTTP_PROTOCOL

    ref = resolve(config.model_uri, client)
    if config.options.canary and ref.follow is None:
        raise ConfigError(
            f"--canary needs a registered model followed by alias or stage "
            f"(models:/NAME@champion or models:/NAME/Production), not {config.model_uri}"
        )
    check_model(ref, config.allow_pickle)
    if announce is not None:
        announce()
    common: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": int(config.grace),
        "lifespan": "on",
        "loop": "auto",
        # uvicorn's own protocol has no header read timeout (slow loris): ours answers 408.
        "http": HTTP_PROTOCOL,
    }
    _set_header_timeout(config.options)
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises SIGTERM once it has drained; by then the work is done and flushed,
        # so end with status 0 instead of dying by the signal.
        signal.signal(signal.SIGTERM, lambda *_: None)
    if config.workers <= 1:
        app = build_app(config, client)
        uvicorn.run(app, **common)
        return
    level = logging.getLogger("mlcycle").getEffectiveLevel()
    MLCYCLE_SERVE_CONFIG.set(dataclasses.replace(config, log_level=level).to_json())
    # This process imported MLflow and the model's libraries to check the model; the parent of
    # the workers answers no request, so it continues as a fresh, light interpreter.
    from mlcycle.serve.supervisor import exec_supervisor

    exec_supervisor(config.workers, common)
