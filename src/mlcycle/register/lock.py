"""A lock around registry writes that holds across threads, processes and machines.

API: :func:`registry_lock`.

MLflow's own ``archive_existing_versions`` runs in one transaction, but two concurrent
promotions each read "the others" before either commits, so both stay in Production. Every
promotion and rollback therefore runs under this lock and re-reads the state inside it:

- PostgreSQL registry: ``pg_advisory_lock`` on a separate connection to the registry database,
  so it holds for every process and machine that talks to that database;
- SQLite registry: a ``filelock`` lock on a file next to the database file (``flock`` on
  POSIX, ``msvcrt.locking`` on Windows; a fresh lock object per acquisition also excludes
  threads of one process);
- a tracking server over HTTP: ``pg_advisory_lock`` in the database named by
  ``MLCYCLE_REGISTRY_LOCK_URI`` (any PostgreSQL every promoting machine reaches, e.g. the
  tracking database) — across machines;
- anything else, or HTTP without that setting: a file lock in this user's private lock
  directory (:func:`mlcycle.storage.lock_dir`) keyed by the URI, which only covers processes
  of this user on this machine (a warning says so).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

from mlcycle.mlflow_compat import registry_uri
from mlcycle.redact import redact_uri
from mlcycle.storage import lock_dir

logger = logging.getLogger(__name__)


def _key(uri: str, name: str) -> int:
    # pg advisory locks take a signed 64-bit key; hash so the key is stable across processes.
    digest = hashlib.sha256(f"mlcycle-registry:{uri}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _pg_lock(uri: str, name: str, key_uri: str | None = None) -> Iterator[None]:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(uri, poolclass=NullPool)
    key = _key(key_uri or uri, name)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
    finally:
        engine.dispose()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path, mode=0o600):
        yield


def _lock_path(uri: str, name: str) -> Path:
    safe = hashlib.sha256(name.encode()).hexdigest()[:16]
    if uri.startswith("sqlite:///"):
        # sqlite:///rel.db is relative, sqlite:////abs.db keeps its leading slash here.
        db = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
        return db.with_name(f"{db.name}.mlcycle-{safe}.lock")
    logger.warning(
        "registry %s cannot be locked across machines; promotions are serialised on this "
        "machine only",
        redact_uri(uri),
    )
    tag = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return lock_dir() / f"mlcycle-registry-{tag}-{safe}.lock"


@contextmanager
def registry_lock(client: Any, name: str, lock_uri: str | None = None) -> Iterator[None]:
    """Hold the exclusive promotion lock of model ``name`` in the client's registry.

    Args:
        client: an ``MlflowClient``.
        name: registered model name.
        lock_uri: the PostgreSQL whose advisory locks serialise promotions when the registry
            is a tracking server over HTTP (``Settings.registry_lock_uri``); ignored for
            other registries.
    """
    uri = registry_uri(client)
    scheme = uri.split(":", 1)[0]
    shared = lock_uri if uri.startswith(("http://", "https://")) else None
    if shared is not None:
        # Keyed by model name only: clients may reach one server under different host names.
        lock = _pg_lock(shared, name, key_uri="http-registry")
    elif scheme.startswith("postgresql"):
        lock = _pg_lock(uri, name)
    else:
        lock = _file_lock(_lock_path(uri, name))
    with lock:
        logger.debug("registry lock held for %s", name)
        yield
