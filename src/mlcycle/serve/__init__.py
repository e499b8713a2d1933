"""Serving: MLflow's scoring protocol, fast, observable, logging what it scores.

Modules (see docs/serving.md):

- :mod:`~mlcycle.serve.protocol` — parse ``/invocations`` requests, build responses.
- :mod:`~mlcycle.serve.model` — resolve a model URI, load a predictor (ONNX fast path).
- :mod:`~mlcycle.serve.batching` — micro-batching of concurrent requests.
- :mod:`~mlcycle.serve.metrics` — Prometheus metrics.
- :mod:`~mlcycle.serve.options` — :class:`ServeOptions`, every serve default declared once.
- :mod:`~mlcycle.serve.holder` — the models of one worker: load with backoff, hot reload,
  ``@challenger``.
- :mod:`~mlcycle.serve.shadow` — shadow scoring of ``@challenger``.
- :mod:`~mlcycle.serve.canary` — which arm of a ``--canary`` answers a request.
- :mod:`~mlcycle.serve.status` — the server's state for metrics, ``/ready`` and ``/info``.
- :mod:`~mlcycle.serve.asgi` — ASGI plumbing (bodies, responses, lifespan).
- :mod:`~mlcycle.serve.app` — :func:`create_app`, the ASGI app: routes only.
- :mod:`~mlcycle.serve.server` — :func:`serve`, running uvicorn with N workers.

Heavy imports stay in the submodules; import what you use from them.
"""
