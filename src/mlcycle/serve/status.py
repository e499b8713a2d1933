"""What a server says about itself: its state for metrics, ``/ready`` and ``/info``.

API: :func:`state`, :func:`not_ready`, :func:`info`.

Read from the app when asked (a scrape, a probe), never on the request path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

import mlcycle

if TYPE_CHECKING:
    from mlcycle.serve.app import ServingApp


def state(app: ServingApp) -> dict[str, Any]:
    """The numbers :class:`~mlcycle.serve.metrics.ServeMetrics` reads when scraped."""
    models = {}
    arms = app.holder.arms
    challenger_role = "shadow" if app.options.shadow else "challenger"
    for role, p in (("champion", arms.champion), (challenger_role, arms.challenger)):
        if p is not None:
            models[role] = {"name": p.name, "version": str(p.version), "backend": p.backend}
    log = app.log
    return {
        "models": models,
        "ready": int(app.ready),
        "loaded": int(app.loaded),
        "batch_queue_rows": app.depth(),
        "inference_log_queue_records": log.pending if log else 0,
        "inference_log_dropped": log.dropped if log else 0,
        "inference_log_written": log.written if log else 0,
        "model_reloads": app.holder.reloads,
        "model_reload_failures": app.holder.reload_failures,
        "model_refused": app.source.refused,
    }


def not_ready(app: ServingApp) -> bytes:
    """The body of a 503 ``/ready``: why, the load error, and the workers loaded."""
    champion, error = app.holder.champion, app.holder.load_error
    reason = (
        "draining"
        if app.draining
        else ("loading" if error is None else "load failed")
        if champion is None
        else "saturated"
        if app.saturated
        else "loading"  # this worker is ready, another is still loading
    )
    doc: dict[str, Any] = {"status": reason, "error": error}
    if app.shared_dir is not None:
        doc["workers_loaded"] = app.workers_loaded()
        doc["workers"] = app.workers
    return orjson.dumps(doc)


def info(app: ServingApp) -> dict[str, Any]:
    """``/info``: versions of mlcycle and MLflow, the models, the canary."""
    import mlflow.version

    p, shadow, challenger = app.holder.champion, app.shadow, app.holder.challenger
    router = app.router
    return {
        "mlcycle": mlcycle.__version__,
        "mlflow": mlflow.version.VERSION,
        "model": None
        if p is None
        else {
            "name": p.name,
            "version": str(p.version),
            "uri": p.ref.uri,
            "backend": p.backend,
        },
        "shadow": None if shadow is None else {"name": shadow.name, "version": str(shadow.version)},
        "challenger": None
        if challenger is None
        else {"name": challenger.name, "version": str(challenger.version)},
        "canary": None
        if router is None
        else {
            # The share recorded on the challenger by `mlcycle canary`, else --canary.
            "share": app.holder.arms.share if app.holder.arms.share is not None else router.share,
            "key_header": router.key_header,
            "active": app.holder.arms.split,
        },
    }
