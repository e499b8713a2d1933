"""mlcycle: the whole machine-learning lifecycle on MLflow.

Stages, each a subpackage with a plain function API:

- :mod:`mlcycle.data` — load, validate, split; the demo scenario generator.
- :mod:`mlcycle.train` — sklearn pipelines, search, tracked runs.
- :mod:`mlcycle.register` — registry versions, champion/challenger gate, promotion, rollback.
- :mod:`mlcycle.serve` — the ``/invocations`` server, inference log, hot reload.
- :mod:`mlcycle.monitoring` — Evidently drift reports, retrain policy, loop.

:func:`log_contract` writes mlcycle's lifecycle contract (:mod:`mlcycle.contract`) from
your own training code, one call after ``log_model``.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("mlcycle")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"


def log_contract(
    model_info_or_run: Any,
    train_df: Any,
    test_df: Any = None,
    *,
    target: str,
    task: str | None = None,
    pos_label: Any = None,
    allow_pickle: bool = False,
) -> Any:
    """Write mlcycle's lifecycle contract after ``log_model``; see
    :func:`mlcycle.contract.log_contract` (imported on first call: ``import mlcycle`` stays
    light for the CLI).
    """
    from mlcycle.contract import log_contract as _log_contract

    return _log_contract(
        model_info_or_run, train_df, test_df,
        target=target, task=task, pos_label=pos_label, allow_pickle=allow_pickle,
    )  # fmt: skip


__all__ = ["__version__", "log_contract"]
