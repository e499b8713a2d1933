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
import os
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

from mlcycle.errors import UntrustedModel
from mlcycle.inference_log import InferenceLog
from mlcycle.serve.app import ModelSource, ServeOptions, ServingApp, create_app
from mlcycle.serve.metrics import MULTIPROC_ENV
from mlcycle.serve.model import (
    ModelRef,
    Predictor,
    check_model,
    current_version,
    load_predictor,
    resolve,
)

logger = logging.getLogger(__name__)

CONFIG_ENV = "MLCYCLE_SERVE_CONFIG"


@dataclass(frozen=True)
class ServerConfig:
    """Everything one ``mlcycle serve`` process needs."""

    model_uri: str
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    inference_log: str | None = "./inference-log"
    allow_pickle: bool = False
    tracking_uri: str | None = None
    registry_uri: str | None = None
    grace: float = 20.0
    options: ServeOptions = field(default_factory=ServeOptions)

    def to_json(self) -> str:
        """For worker processes."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        """Inverse of :meth:`to_json`."""
        doc = json.loads(text)
        doc["options"] = ServeOptions(**doc["options"])
        return cls(**doc)


def _version_ref(ref: ModelRef, version: str) -> ModelRef:
    return dataclasses.replace(ref, version=version, download_uri=f"models:/{ref.name}/{version}")


def model_source(
    uri: str, client: Any, *, allow_pickle: bool = False, shadow: bool = False
) -> ModelSource:
    """Predictors for ``uri``: the current version, newer ones when its alias/stage moves,
    and (``shadow``) the ``@challenger`` of the same registered model.

    Every load passes :mod:`mlcycle.trust`. A refused version is remembered: later polls
    skip it without downloading it again, the server keeps its last good model, and
    ``source.refused`` counts it once. Each role keeps only its live download; the copy of a
    replaced or refused model is deleted, and ``close()`` removes the rest.
    """
    ref = resolve(uri, client)
    downloads = tempfile.mkdtemp(prefix="mlcycle-serve-")
    refused: dict[str, str] = {}  # download URI → why; versions are immutable in a registry
    live: dict[str, str] = {}  # role → download directory of the predictor serving it
    lock = threading.Lock()

    def load_ref(r: ModelRef, role: str) -> Predictor:
        if r.download_uri in refused:
            raise UntrustedModel(refused[r.download_uri])
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
        with lock:
            # The predictor holds the model in memory: the replaced copy is no longer read.
            old = live.get(role)
            live[role] = dst
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return predictor

    def newer(r: ModelRef, current: Predictor | None, role: str) -> Predictor | None:
        v = current_version(r, client)
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

    load_shadow = poll_shadow = None
    if shadow and ref.follow is not None:
        shadow_ref = ModelRef(
            f"models:/{ref.name}@challenger", ref.name, "", "", "challenger", "alias"
        )

        def load_shadow() -> Predictor | None:
            v = current_version(shadow_ref, client)
            if v is None:
                logger.warning("no @challenger for %s: shadow scoring is off", ref.name)
                return None
            return load_ref(_version_ref(shadow_ref, v), "shadow")

        def poll_shadow(current: Predictor | None) -> Predictor | None:
            return newer(shadow_ref, current, "shadow")

    def close() -> None:
        shutil.rmtree(downloads, ignore_errors=True)

    source = ModelSource(
        load,
        poll if ref.follow is not None else None,
        load_shadow,
        poll_shadow,
        close=close,
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
        config.model_uri, client, allow_pickle=config.allow_pickle, shadow=config.options.shadow
    )
    log = InferenceLog(config.inference_log) if config.inference_log else None
    shared = os.environ.get(MULTIPROC_ENV) if config.workers > 1 else None
    return create_app(source, config.options, log, config.workers, shared)


def _set_header_timeout(options: ServeOptions) -> None:
    from mlcycle.serve.http import HeaderTimeoutProtocol

    HeaderTimeoutProtocol.header_timeout = options.header_timeout


def app_from_env() -> ServingApp:
    """uvicorn factory for worker processes."""
    config = ServerConfig.from_json(os.environ[CONFIG_ENV])
    _set_header_timeout(config.options)
    return build_app(config)


def serve(config: ServerConfig, client: Any) -> None:
    """Check the model, then run uvicorn until SIGTERM/SIGINT (graceful within ``grace``).

    With ``config.workers > 1`` this process is replaced by the supervisor and never returns.

    Raises:
        ModelNotFound: the URI matches nothing.
        UntrustedModel: the trust policy refused the model.
        ServingError: no usable signature.
    """
    import uvicorn

    from mlcycle.serve.http import PROTOCOL as HTTP_PROTOCOL

    ref = resolve(config.model_uri, client)
    check_model(ref, config.allow_pickle)
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
    os.environ[CONFIG_ENV] = config.to_json()
    # This process imported MLflow and the model's libraries to check the model; the parent of
    # the workers answers no request, so it continues as a fresh, light interpreter.
    from mlcycle.serve.supervisor import exec_supervisor

    exec_supervisor(config.workers, common)
