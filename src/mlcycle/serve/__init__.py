"""Serving: MLflow's scoring protocol, fast, observable, logging what it scores.

Modules (see docs/serving.md):

- :mod:`~mlcycle.serve.protocol` — parse ``/invocations`` requests, build responses.
- :mod:`~mlcycle.serve.model` — resolve a model URI, load a predictor (ONNX fast path).
- :mod:`~mlcycle.serve.batching` — micro-batching of concurrent requests.
- :mod:`~mlcycle.serve.metrics` — Prometheus metrics.
- :mod:`~mlcycle.serve.app` — :func:`create_app`, the ASGI app.
- :mod:`~mlcycle.serve.server` — :func:`serve`, running uvicorn with N workers.

Heavy imports stay in the submodules; import what you use from them.
"""
