"""mlcycle: the whole machine-learning lifecycle on MLflow.

Stages, each a subpackage with a plain function API:

- :mod:`mlcycle.data` — load, validate, split; the demo scenario generator.
- :mod:`mlcycle.train` — sklearn pipelines, search, tracked runs.
- :mod:`mlcycle.register` — registry versions, champion/challenger gate, promotion, rollback.
- :mod:`mlcycle.serve` — the ``/invocations`` server, inference log, hot reload.
- :mod:`mlcycle.monitoring` — Evidently drift reports, retrain policy, loop.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlcycle")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
