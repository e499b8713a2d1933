"""Promotion and rollback: the only writes to ``Production`` and ``@champion``.

API: :func:`promote`, :func:`rollback`, :func:`end_canary`, :func:`set_canary_share`.

Both run under :func:`mlcycle.register.lock.registry_lock` and re-read the registry inside
it. The stage change is one MLflow transaction (``archive_existing_versions=True``), and the
``@champion`` alias is moved (never deleted), so after the first promotion there is always
exactly one champion; the stage and the alias agree again as soon as the call returns.

Audit first: the audit run is opened before the registry changes, so a user who may edit
the model but not write the audit trail changes nothing; a change that fails half-way is
undone (stages, aliases) and its audit run records the failure.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlcycle.config import Settings
from mlcycle.errors import ConfigError, GateRejected, ModelNotFound, RegistryConflict
from mlcycle.register import audit
from mlcycle.register.core import (
    alias_version,
    champion_version,
    get_registered_model,
    set_stage,
)
from mlcycle.register.gate import check_schema, gate, model_facts
from mlcycle.register.lock import registry_lock
from mlcycle.register.types import (
    CANARY_SHARE_TAG,
    CHALLENGER,
    CHAMPION,
    GateDecision,
    GatePolicy,
    PromotionResult,
)
from mlcycle.tags import MLCYCLE_GATE_MODE, MLCYCLE_PREVIOUS_CHAMPION, MLCYCLE_ROLLED_BACK
from mlcycle.uris import resolve_version

logger = logging.getLogger(__name__)

PREVIOUS_TAG = MLCYCLE_PREVIOUS_CHAMPION


def _make_champion(client: Any, name: str, version: str) -> None:
    # One transaction: the version enters Production and every other Production version is
    # archived. Then the alias moves; it is never deleted, so there is never zero champions.
    set_stage(client, name, version, "Production", archive=True)
    client.set_registered_model_alias(name, CHAMPION, version)
    if alias_version(client, name, CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)


@dataclass(frozen=True)
class _Before:
    """What a promotion or rollback changes, read before it does: what undo restores."""

    target: str
    target_stage: str
    champion: str | None
    challenger: str | None

    @classmethod
    def read(cls, client: Any, name: str, target: str) -> _Before:
        return cls(
            target=target,
            target_stage=str(client.get_model_version(name, target).current_stage or "None"),
            champion=champion_version(client, name),
            challenger=alias_version(client, name, CHALLENGER),
        )

    def restore(self, client: Any, name: str) -> None:
        if self.champion is not None:
            _make_champion(client, name, self.champion)
        else:
            client.delete_registered_model_alias(name, CHAMPION)
        if self.target != self.champion:
            set_stage(client, name, self.target, self.target_stage)
        if self.challenger is not None:
            client.set_registered_model_alias(name, CHALLENGER, self.challenger)


def _audited(
    client: Any, name: str, before: _Before, change: Callable[[], None], **audit_kwargs: Any
) -> str:
    """Open the audit run, make the change, close the run; undo the change if it fails."""
    # Raises (e.g. 403 on the audit experiment) before anything in the registry changed.
    run_id = audit.begin(client, name, **audit_kwargs)
    try:
        change()
    except Exception as exc:
        try:
            before.restore(client, name)
        except Exception:
            logger.exception("could not undo the failed %s of %s", audit_kwargs["action"], name)
        try:
            audit.finish(client, run_id, error=f"{type(exc).__name__}: {exc}")
        except Exception:
            # The store may be down; the run stays `pending` and history says UNFINISHED.
            logger.exception("could not record the failed %s of %s", audit_kwargs["action"], name)
        raise
    audit.finish(client, run_id)
    return run_id


def _lock_uri(settings: Settings | None) -> str | None:
    return settings.registry_lock_uri if settings is not None else None


def _audit_metrics(decision: GateDecision | None) -> dict[str, float]:
    if decision is None:
        return {}
    out = {f"challenger_{k}": v for k, v in decision.challenger_metrics.items()}
    out |= {f"champion_{k}": v for k, v in decision.champion_metrics.items()}
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _check_schema_against(
    client: Any, name: str, version: str, champ: str | None, target: str | None = None
) -> None:
    if champ is None or champ == version:
        return
    challenger = model_facts(client, resolve_version(client, name, version), target)
    check_schema(challenger, model_facts(client, resolve_version(client, name, champ), target))


def _already_champion(client: Any, name: str, mv: Any) -> bool:
    return (
        champion_version(client, name) == str(mv.version)
        and str(mv.current_stage or "") == "Production"
        and alias_version(client, name, CHALLENGER) != str(mv.version)
    )


def promote(
    client: Any,
    name: str,
    version: str | None = None,
    *,
    policy: GatePolicy = GatePolicy(),  # noqa: B008 - frozen dataclass, safe as default
    force: bool = False,
    reason: str | None = None,
    eval_data: pd.DataFrame | None = None,
    target: str | None = None,
    evidence: dict[str, Any] | None = None,
    audit_metrics: dict[str, float] | None = None,
    audit_tags: dict[str, str] | None = None,
    settings: Settings | None = None,
) -> PromotionResult:
    """Make a version the champion: stage ``Production``, alias ``@champion``.

    Unless forced, the version must have an input schema compatible with the champion's and
    pass the gate (``enabled``; ``dry_run`` records the decision without enforcing it;
    ``disabled`` skips it). The previous champion moves to ``Archived`` and is remembered on
    the new champion (tag ``mlcycle.previous_champion``) for :func:`rollback`; ``@challenger``
    is cleared when it named this version. The promotion is recorded in the audit experiment.
    Promoting the version that already is the champion changes and records nothing: the
    result says ``unchanged``.

    Args:
        client: an ``MlflowClient``.
        name: registered model name.
        version: the version; ``None`` means the one ``@challenger`` names.
        policy: gate thresholds and mode.
        force: bypass the gate and the schema check (needs ``reason``).
        reason: why; recorded in the audit trail.
        eval_data: gate evaluation data (default: the challenger's held-out test split).
        target: the column the model predicts, for versions whose contract does not say.
        evidence: what the promotion was decided on (a canary's arm comparison); stored
            with the audit record (:func:`mlcycle.register.audit.evidence`).
        audit_metrics / audit_tags: extra numbers and tags on the audit record.
        settings: the CLI's settings: the promotion lock of an HTTP registry
            (``registry_lock_uri``) and where a new audit experiment keeps artifacts.

    Raises:
        ConfigError: ``force`` without a reason.
        ModelNotFound: unknown model or version, or no ``@challenger``.
        SchemaMismatch: the challenger's inputs are incompatible with the champion's.
        GateRejected: the gate (mode ``enabled``) refused the version.
        DataError: evaluation data missing or lacking columns.
    """
    if force and not (reason and reason.strip()):
        raise ConfigError("--force needs --reason: forced promotions are audited with a reason")
    mv = resolve_version(client, name, version, alias=CHALLENGER)
    v = str(mv.version)
    if _already_champion(client, name, mv):
        # A re-run of the same promotion: gating the champion against itself would say
        # "vs no champion" and the audit trail would record a change that did not happen.
        logger.info("%s v%s is already the champion; nothing to do", name, v)
        return PromotionResult(name, "promote", v, v, force, reason, None, None, unchanged=True)
    decision: GateDecision | None = None
    if not force:
        _check_schema_against(client, name, v, champion_version(client, name), target)
        if policy.mode != "disabled":
            decision = gate(client, name, v, policy, eval_data, target, settings=settings)
            if policy.mode == "enabled" and not decision.passed:
                raise GateRejected(
                    f"gate refused {name} version {v}: " + "; ".join(decision.reasons)
                )

    with registry_lock(client, name, _lock_uri(settings)):
        # Re-read: another promotion or rollback may have run while we evaluated.
        if _already_champion(client, name, resolve_version(client, name, v)):
            # The same promotion ran concurrently (two `canary --act`): record it once.
            logger.info("%s v%s was promoted meanwhile; nothing to do", name, v)
            return PromotionResult(name, "promote", v, v, force, reason, None, None, unchanged=True)
        previous = champion_version(client, name)
        compared = None if previous == v else previous
        if not force and (decision is None or decision.champion_version != compared):
            # The champion changed since the checks above (or the gate is off): check again
            # against the champion this promotion actually replaces.
            _check_schema_against(client, name, v, previous, target)
            if decision is not None and policy.mode == "enabled":
                decision = gate(client, name, v, policy, eval_data, target, settings=settings)
                if not decision.passed:
                    raise GateRejected(
                        f"gate refused {name} version {v} against the new champion "
                        f"v{previous}: " + "; ".join(decision.reasons)
                    )

        def change() -> None:
            _make_champion(client, name, v)
            if previous is not None and previous != v:
                client.set_model_version_tag(name, v, PREVIOUS_TAG, previous)

        run_id = _audited(
            client,
            name,
            _Before.read(client, name, v),
            change,
            action="promote",
            to_version=v,
            from_version=previous,
            forced=force,
            reason=reason,
            metrics=_audit_metrics(decision) | (audit_metrics or {}),
            tags={MLCYCLE_GATE_MODE: "forced" if force else policy.mode, **(audit_tags or {})},
            evidence=evidence,
            settings=settings,
        )
    logger.info("promoted %s v%s to Production/@champion (was %s)", name, v, previous)
    return PromotionResult(name, "promote", v, previous, force, reason, decision, run_id)


def rollback(
    client: Any, name: str, reason: str, *, settings: Settings | None = None
) -> PromotionResult:
    """Restore the previous champion (stage and alias) and record why.

    The previous champion is the one the current champion replaced; rolling back again goes
    one step further back.

    Args:
        client: an ``MlflowClient``.
        name: registered model name.
        reason: why; recorded in the audit trail and on the demoted version.
        settings: the CLI's settings (as for :func:`promote`).

    Raises:
        ConfigError: no reason given.
        ModelNotFound: unknown model.
        RegistryConflict: no champion, or no previous champion to return to.
    """
    if not (reason and reason.strip()):
        raise ConfigError("rollback needs --reason")
    get_registered_model(client, name)
    with registry_lock(client, name, _lock_uri(settings)):
        current = champion_version(client, name)
        if current is None:
            raise RegistryConflict(f"model '{name}' has no champion to roll back from")
        tags = dict(client.get_model_version(name, current).tags or {})
        target = tags.get(PREVIOUS_TAG)
        if not target:
            raise RegistryConflict(
                f"{name} version {current} has no previous champion to roll back to"
            )
        try:
            resolve_version(client, name, target)
        except ModelNotFound as exc:
            raise RegistryConflict(
                f"previous champion {name} version {target} no longer exists"
            ) from exc

        def change() -> None:
            _make_champion(client, name, target)
            client.set_model_version_tag(name, current, MLCYCLE_ROLLED_BACK, reason)

        run_id = _audited(
            client,
            name,
            _Before.read(client, name, target),
            change,
            action="rollback",
            to_version=target,
            from_version=current,
            forced=True,
            reason=reason,
            settings=settings,
        )
    logger.info("rolled back %s from v%s to v%s: %s", name, current, target, reason)
    return PromotionResult(name, "rollback", target, current, True, reason, None, run_id)


def _check_canary_open(client: Any, name: str, version: str) -> None:
    """Under the lock: ``version`` is still ``@challenger``, so no other decision ended it.

    Raises:
        RegistryConflict: ``@challenger`` moved or was removed since the check decided.
    """
    current = alias_version(client, name, CHALLENGER)
    if current != version:
        now = f"v{current}" if current else "no version"
        raise RegistryConflict(
            f"the canary of {name} v{version} is already over: @challenger names {now} "
            "(another decision came first); nothing changed"
        )


def end_canary(
    client: Any,
    name: str,
    version: str | None = None,
    *,
    reason: str,
    evidence: dict[str, Any] | None = None,
    audit_metrics: dict[str, float] | None = None,
    settings: Settings | None = None,
) -> PromotionResult:
    """Roll a canary back: the challenger goes to ``Archived`` and loses ``@challenger``.

    The champion is untouched, so a server splitting traffic sends everything to it again.
    Recorded in the audit trail as ``canary_rollback`` with the evidence attached.

    Args:
        client: an ``MlflowClient``.
        name: registered model name.
        version: the challenger; ``None`` means the one ``@challenger`` names.
        reason: why; recorded in the audit trail and on the version (``mlcycle.rolled_back``).
        evidence: what the decision was taken on (stored as the audit run's evidence).
        audit_metrics: numbers logged on the audit run.
        settings: the CLI's settings (the promotion lock of an HTTP registry).

    Raises:
        ConfigError: no reason given.
        ModelNotFound: unknown model or version, or no ``@challenger``.
        RegistryConflict: the version is the champion (use :func:`rollback`).
    """
    if not (reason and reason.strip()):
        raise ConfigError("ending a canary needs a reason")
    v = str(resolve_version(client, name, version, alias=CHALLENGER).version)
    with registry_lock(client, name, _lock_uri(settings)):
        resolve_version(client, name, v)
        champ = champion_version(client, name)
        if champ == v:
            raise RegistryConflict(
                f"{name} version {v} is the champion; a promoted canary is undone by rollback"
            )
        _check_canary_open(client, name, v)

        def change() -> None:
            set_stage(client, name, v, "Archived")
            if alias_version(client, name, CHALLENGER) == v:
                client.delete_registered_model_alias(name, CHALLENGER)
            client.set_model_version_tag(name, v, MLCYCLE_ROLLED_BACK, reason)

        run_id = _audited(
            client,
            name,
            _Before.read(client, name, v),
            change,
            action="canary_rollback",
            to_version=v,
            from_version=champ,
            forced=False,
            reason=reason,
            metrics=audit_metrics or {},
            evidence=evidence,
            settings=settings,
        )
    logger.info("canary of %s v%s rolled back (champion v%s stays): %s", name, v, champ, reason)
    return PromotionResult(name, "canary_rollback", v, champ, False, reason, None, run_id)


def set_canary_share(
    client: Any,
    name: str,
    version: str,
    share: float,
    *,
    reason: str,
    evidence: dict[str, Any] | None = None,
    audit_metrics: dict[str, float] | None = None,
    settings: Settings | None = None,
) -> PromotionResult:
    """Record the challenger's next traffic share (tag ``mlcycle.canary.share``), audited.

    Raises:
        ConfigError: a share outside ``(0, 1)``.
        ModelNotFound: unknown model or version.
    """
    if not 0 < share < 1:
        raise ConfigError(f"a canary share must be in (0, 1), not {share}")
    v = str(resolve_version(client, name, version, alias=CHALLENGER).version)
    with registry_lock(client, name, _lock_uri(settings)):
        champ = champion_version(client, name)
        _check_canary_open(client, name, v)
        tags = dict(client.get_model_version(name, v).tags or {})
        before = tags.get(CANARY_SHARE_TAG)
        if before is not None and float(before) >= share:
            raise RegistryConflict(
                f"the canary of {name} v{v} is already at {float(before):.0%} "
                f"(not raised to {share:.0%}): a concurrent decision took it there"
            )

        def change() -> None:
            client.set_model_version_tag(name, v, CANARY_SHARE_TAG, f"{share:g}")

        def restore() -> None:
            if before is None:
                client.delete_model_version_tag(name, v, CANARY_SHARE_TAG)
            else:
                client.set_model_version_tag(name, v, CANARY_SHARE_TAG, before)

        run_id = audit.begin(
            client,
            name,
            "canary_step",
            to_version=v,
            from_version=champ,
            reason=reason,
            metrics=(audit_metrics or {}) | {"canary_share": share},
            evidence=evidence,
            settings=settings,
        )
        try:
            change()
        except Exception as exc:
            restore()
            audit.finish(client, run_id, error=f"{type(exc).__name__}: {exc}")
            raise
        audit.finish(client, run_id)
    logger.info("canary of %s v%s raised to %.0f%%: %s", name, v, share * 100, reason)
    return PromotionResult(name, "canary_step", v, champ, False, reason, None, run_id)
