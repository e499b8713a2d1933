"""Optuna plumbing of the distributed search: the search space bridge and the study storage.

API: :func:`suggest_params`, :func:`distributions`, :func:`import_optuna`, :func:`storage`,
:func:`safe_uri`, :func:`masked`, :data:`PG_SCHEMA`.

Re-exported by :mod:`mlcycle.train.search` (``_storage`` there is :func:`storage`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlcycle.errors import ConfigError
from mlcycle.redact import redact_uri
from mlcycle.train import pipelines


class _Draws:
    """Stands in for ``numpy.random.Generator`` inside one SEARCH_SPACES sampler."""

    def __init__(self, trial: Any, name: str) -> None:
        self.trial = trial
        self.name = name

    def uniform(self, low: float, high: float) -> float:
        return float(self.trial.suggest_float(self.name, float(low), float(high)))

    def choice(self, options: Any) -> Any:
        plain = [o.item() if isinstance(o, np.generic) else o for o in list(options)]
        return self.trial.suggest_categorical(self.name, plain)

    def integers(self, low: int, high: int | None = None) -> int:
        if high is None:
            low, high = 0, low
        return int(self.trial.suggest_int(self.name, int(low), int(high) - 1))


def suggest_params(trial: Any, model: str, task: str) -> dict[str, Any]:
    """One draw from the estimator's SEARCH_SPACES entry, suggested through ``trial``."""
    space = pipelines.search_space(model, task)  # type: ignore[arg-type]
    # _Draws has the three Generator methods the samplers call (duck typing by design).
    return {key: draw(_Draws(trial, key)) for key, draw in space.items()}  # type: ignore[arg-type]


def distributions(model: str, task: str) -> dict[str, Any]:
    """The Optuna distributions the estimator's search space translates into."""
    import optuna

    study = optuna.create_study()
    trial = study.ask()
    suggest_params(trial, model, task)
    return dict(trial.distributions)


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise ConfigError(
            "the optuna search engine needs optuna: pip install 'mlcycle[search]'"
        ) from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def safe_uri(uri: str) -> str | None:
    """``uri`` when it holds no password (it is stored in the study), else ``None``."""
    if "://" not in uri:
        return uri
    netloc = uri.split("://", 1)[1].split("/", 1)[0]
    userinfo = netloc.rpartition("@")[0]
    return None if ":" in userinfo else uri


def masked(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (for params and messages)."""
    return redact_uri(uri)


#: PostgreSQL schema of the study tables when the storage is the tracking database.
PG_SCHEMA = "mlcycle_search"


def storage(optuna: Any, url: str) -> Any:
    """Optuna's RDB storage at ``url``; on PostgreSQL in schema :data:`PG_SCHEMA`.

    Optuna and MLflow both keep their migration state in a table ``alembic_version``: in the
    same schema each would read the other's revision and refuse to start. Giving Optuna its
    own schema lets the study live in the tracking database itself. A URL that already sets
    ``search_path`` is used as given.
    """
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    try:
        if url.startswith("postgresql") and "search_path" not in url:
            import sqlalchemy as sa

            engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{PG_SCHEMA}"'))
            finally:
                engine.dispose()
            kwargs["connect_args"] = {"options": f"-csearch_path={PG_SCHEMA}"}
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:
        raise ConfigError(f"cannot open the study storage {masked(url)}: {exc}") from exc
