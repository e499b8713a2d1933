"""The registry's safety guarantee on a PostgreSQL-backed registry.

Stock MLflow's ``transition_model_version_stage(..., archive_existing_versions=True)`` leaves
several versions in Production when called concurrently; mlcycle serialises promotions and
rollbacks with a PostgreSQL advisory lock. Here 36 threads, released together by a barrier,
promote different versions and roll back, while a watcher checks the registry throughout.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mlcycle import register as reg
from mlcycle.data import SCENARIO_TARGET, make_scenario
from mlcycle.errors import RegistryConflict

NAME = "churn"
WORKERS = 36
VERSIONS = 6


@pytest.fixture
def pg_client(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", pg_url)
    mlflow.set_tracking_uri(pg_url)
    return MlflowClient(pg_url)


def _train(client: Any, tmp_path: Path) -> str:
    from mlcycle.train import TrainConfig, train

    cfg = TrainConfig(
        data=str(tmp_path / "scenario.csv"),
        target=SCENARIO_TARGET,
        model="linear",
        onnx=False,
        plots=False,
    )
    return train(cfg, client, frame=make_scenario(1500, seed=5)).run_id


def _registry_view(client: Any) -> tuple[list[str], str | None]:
    versions = client.search_model_versions(f"name = '{NAME}'")
    production = sorted(str(v.version) for v in versions if v.current_stage == "Production")
    return production, reg.champion_version(client, NAME)


@pytest.mark.postgres
@pytest.mark.slow
def test_concurrent_promotions_and_rollbacks_leave_exactly_one_champion(
    pg_client: Any, tmp_path: Path
) -> None:
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    run_id = _train(pg_client, tmp_path)
    for _ in range(VERSIONS):
        reg.register(pg_client, run_id, NAME)
    reg.promote(pg_client, NAME, "1", force=True, reason="first champion")

    barrier = threading.Barrier(WORKERS)
    done = threading.Event()
    errors: list[BaseException] = []
    conflicts: list[str] = []
    succeeded: list[str] = []
    unchanged: list[str] = []
    seen: list[tuple[list[str], str | None]] = []
    policy = reg.GatePolicy(mode="disabled")  # the schema check still runs under the lock

    def worker(i: int) -> None:
        barrier.wait()
        try:
            if i % 4 == 3:
                reg.rollback(pg_client, NAME, reason=f"worker {i}")
                succeeded.append("rollback")
            else:
                result = reg.promote(pg_client, NAME, str(1 + i % VERSIONS), policy=policy)
                # Promoting the version that already is the champion changes nothing and is
                # not audited.
                (unchanged if result.unchanged else succeeded).append("promote")
        except RegistryConflict as exc:  # e.g. nothing to roll back to at that moment
            conflicts.append(str(exc))
        except BaseException as exc:
            errors.append(exc)

    def watcher() -> None:
        while not done.is_set():
            seen.append(_registry_view(pg_client))
            time.sleep(0.01)

    watch = threading.Thread(target=watcher)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    watch.start()
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    elapsed = time.perf_counter() - started
    done.set()
    watch.join()

    assert not errors, errors
    assert len(succeeded) + len(unchanged) + len(conflicts) == WORKERS
    production, champion = _registry_view(pg_client)
    assert champion is not None and production == [champion]
    by_stage = get_model_name_and_version(pg_client, reg.model_uri(NAME, stage="Production"))[1]
    by_alias = get_model_name_and_version(pg_client, reg.model_uri(NAME, alias="champion"))[1]
    assert str(by_stage) == str(by_alias) == champion
    # Throughout the race: never two versions in Production, never no champion.
    assert seen and all(len(prod) <= 1 and champ is not None for prod, champ in seen)
    # Every successful operation is in the trail, in an order that chains: each entry starts
    # from the champion the previous one left.
    trail = reg.history(pg_client, NAME)
    assert len(trail) == 1 + len(succeeded)
    for before, after in itertools.pairwise(trail):
        assert after.from_version == before.to_version
    assert trail[-1].to_version == champion
    split = sum(1 for prod, champ in seen if prod != [champ])
    print(
        f"{WORKERS} workers: {len(succeeded)} done, {len(conflicts)} refused in {elapsed:.1f}s; "
        f"{len(seen)} observations, {split} with stage and alias briefly apart; {set(conflicts)}"
    )


@pytest.mark.postgres
def test_an_http_registry_is_locked_in_the_configured_postgres_across_machines(
    pg_url: str,
) -> None:
    import sqlalchemy as sa

    from mlcycle.register.lock import _key, registry_lock

    class HttpClient:  # only the URI matters to the lock
        tracking_uri = "http://mlflow:5000"
        _registry_uri = None

    engine = sa.create_engine(pg_url)
    held, release = threading.Event(), threading.Event()

    def promoter() -> None:
        with registry_lock(HttpClient(), "churn", lock_uri=pg_url):
            held.set()
            release.wait(10)

    t = threading.Thread(target=promoter)
    t.start()
    assert held.wait(10)
    try:
        # Another machine (another connection) cannot take the same lock meanwhile.
        with engine.connect() as conn:
            got = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _key("http-registry", "churn")}
            ).scalar()
            assert got is False
    finally:
        release.set()
        t.join(10)
    with engine.connect() as conn:
        got = conn.execute(
            sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _key("http-registry", "churn")}
        ).scalar()
        assert got is True
        conn.execute(sa.text("SELECT pg_advisory_unlock_all()"))
    engine.dispose()
