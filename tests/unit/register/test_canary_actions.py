"""A canary's decisions in the registry: locked, audited, with the evidence attached."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mlcycle import register as reg
from mlcycle.errors import ConfigError, ModelNotFound, RegistryConflict
from mlcycle.register import audit
from mlcycle.register.types import CANARY_SHARE_TAG

NAME = "canaried"
EVIDENCE = {"comparison": {"quality": {"gain": 0.03, "ci_low": 0.01, "p_value": 0.002}}}


@pytest.fixture
def two_versions(client: Any, train_run: Callable[..., str]) -> tuple[str, str]:
    """v1 is the champion, v2 the challenger (the canary)."""
    v1 = str(reg.register(client, train_run(), NAME).version)
    reg.promote(client, NAME, v1, policy=reg.GatePolicy(mode="disabled"))
    v2 = str(reg.register(client, train_run(), NAME).version)
    return v1, v2


def test_a_canary_rollback_archives_the_challenger_and_keeps_the_champion(
    client: Any, two_versions: tuple[str, str]
) -> None:
    v1, v2 = two_versions
    out = reg.end_canary(
        client, NAME, reason="worse on live traffic", evidence=EVIDENCE,
        audit_metrics={"canary_quality_gain": -0.1},
    )  # fmt: skip
    assert (out.action, out.version, out.previous_version) == ("canary_rollback", v2, v1)
    mv = client.get_model_version(NAME, v2)
    assert mv.current_stage == "Archived" and "challenger" not in mv.aliases
    assert mv.tags["mlcycle.rolled_back"] == "worse on live traffic"
    assert reg.champion_version(client, NAME) == v1
    last = reg.history(client, NAME)[-1]
    assert (last.action, last.to_version, last.from_version, last.outcome) == (
        "canary_rollback", v2, v1, "done",
    )  # fmt: skip
    assert last.metrics["canary_quality_gain"] == -0.1
    assert audit.evidence(client, last.run_id) == EVIDENCE


def test_a_canary_promotion_carries_its_evidence_in_the_audit_record(
    client: Any, two_versions: tuple[str, str]
) -> None:
    v1, v2 = two_versions
    out = reg.promote(
        client, NAME, v2, policy=reg.GatePolicy(mode="disabled"), reason="canary: better",
        evidence=EVIDENCE, audit_tags={"mlcycle.canary.run_id": "r1"},
    )  # fmt: skip
    assert (out.version, out.previous_version) == (v2, v1)
    entry = reg.history(client, NAME)[-1]
    assert (entry.action, entry.to_version, entry.reason) == ("promote", v2, "canary: better")
    assert audit.evidence(client, entry.run_id) == EVIDENCE
    assert client.get_run(entry.run_id).data.tags["mlcycle.canary.run_id"] == "r1"
    # A promotion without evidence has none.
    first = reg.history(client, NAME)[0]
    assert audit.evidence(client, first.run_id) is None


def test_raising_a_canary_share_is_tagged_and_audited(
    client: Any, two_versions: tuple[str, str]
) -> None:
    _, v2 = two_versions
    reg.set_canary_share(client, NAME, v2, 0.5, reason="good so far", evidence=EVIDENCE)
    assert client.get_model_version(NAME, v2).tags[CANARY_SHARE_TAG] == "0.5"
    entry = reg.history(client, NAME)[-1]
    assert (entry.action, entry.metrics["canary_share"]) == ("canary_step", 0.5)
    assert audit.evidence(client, entry.run_id) == EVIDENCE


def test_canary_actions_refuse_bad_requests(client: Any, two_versions: tuple[str, str]) -> None:
    v1, v2 = two_versions
    with pytest.raises(ConfigError, match="reason"):
        reg.end_canary(client, NAME, reason=" ")
    with pytest.raises(RegistryConflict, match="champion"):
        reg.end_canary(client, NAME, v1, reason="x")
    with pytest.raises(ModelNotFound):
        reg.end_canary(client, NAME, "99", reason="x")
    with pytest.raises(ConfigError, match="share"):
        reg.set_canary_share(client, NAME, v2, 1.0, reason="x")


def test_a_decision_already_taken_is_a_no_op_and_a_different_one_a_conflict(
    client: Any, two_versions: tuple[str, str]
) -> None:
    """Two `mlcycle canary --act` at once both decide on v2; only the first may act."""
    _, v2 = two_versions
    reg.set_canary_share(client, NAME, v2, 0.5, reason="good so far")
    entries = len(reg.history(client, NAME))
    again = reg.set_canary_share(client, NAME, v2, 0.5, reason="good so far (again)")
    assert (again.action, again.unchanged, again.audit_run_id) == ("canary_step", True, None)
    with pytest.raises(RegistryConflict, match="already at 50% \\(not raised to 20%\\)"):
        reg.set_canary_share(client, NAME, v2, 0.2, reason="a step behind")
    assert len(reg.history(client, NAME)) == entries

    reg.end_canary(client, NAME, v2, reason="worse on live traffic")
    entries = len(reg.history(client, NAME))
    again = reg.end_canary(client, NAME, v2, reason="worse on live traffic (again)")
    assert (again.action, again.unchanged, again.audit_run_id) == ("canary_rollback", True, None)
    assert client.get_model_version(NAME, v2).tags["mlcycle.rolled_back"] == (
        "worse on live traffic"
    )
    with pytest.raises(RegistryConflict, match="already over: @challenger names no version"):
        reg.set_canary_share(client, NAME, v2, 0.9, reason="late step")
    assert len(reg.history(client, NAME)) == entries
    assert [e.action for e in reg.history(client, NAME)].count("canary_rollback") == 1


def test_ending_a_canary_that_was_promoted_meanwhile_is_a_conflict(
    client: Any, two_versions: tuple[str, str]
) -> None:
    _, v2 = two_versions
    reg.promote(client, NAME, v2, policy=reg.GatePolicy(mode="disabled"))
    with pytest.raises(RegistryConflict, match="is the champion; a promoted canary is undone"):
        reg.end_canary(client, NAME, v2, reason="worse on live traffic")


def test_two_concurrent_promotions_of_one_version_record_one_promotion(
    client: Any, two_versions: tuple[str, str]
) -> None:
    """Both pass the checks before the lock (held here), then queue on it: one records."""
    import threading
    import time

    import mlflow
    from mlflow import MlflowClient

    from mlcycle.register.lock import registry_lock

    _, v2 = two_versions
    uri = mlflow.get_tracking_uri()
    results: list[Any] = []

    def promote() -> None:
        results.append(
            reg.promote(MlflowClient(uri), NAME, v2, policy=reg.GatePolicy(mode="disabled"),
                        reason="canary: better")
        )  # fmt: skip

    threads = [threading.Thread(target=promote) for _ in range(2)]
    with registry_lock(client, NAME, None):
        for t in threads:
            t.start()
        time.sleep(3)  # both past the checks, waiting on the lock (a slower one returns early)
    for t in threads:
        t.join(60)
    assert sorted(r.unchanged for r in results) == [False, True]
    promotions = [e for e in reg.history(client, NAME) if e.to_version == v2]
    assert [(e.action, e.from_version) for e in promotions] == [("promote", "1")]
