"""Promotion and rollback: the only writes to ``Production`` and ``@champion``.

API: :func:`promote`, :func:`rollback` (a canary's own decisions, :func:`end_canary` and
:func:`set_canary_share`, live in :mod:`mlcycle.register.canary` and are re-exported here).

Both run under :func:`mlcycle.register.lock.registry_lock` and re-read the registry inside
it. The stage change is one MLflow transaction (``archive_existing_versions=True``), and the
``@champion`` alias is moved (never deleted), so after the first promotion there is always
exactly one champion; the stage and the alias agree again as soon as the call returns. Each
change is audited first and undone when it fails half-way (:mod:`mlcycle.register.change`).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd

from mlcycle.config import Settings
from mlcycle.errors import ConfigError, GateRejected, ModelNotFound, RegistryConflict
from mlcycle.register.canary import end_canary, set_canary_share
from mlcycle.register.change import Before, audited, lock_uri, make_champion
from mlcycle.register.core import alias_version, champion_version, get_registered_model
from mlcycle.register.facts import check_schema, model_facts
from mlcycle.register.gate import gate
from mlcycle.register.lock import registry_lock
from mlcycle.register.types import CHALLENGER, GateDecision, GatePolicy, PromotionResult
from mlcycle.tags import MLCYCLE_GATE_MODE, MLCYCLE_PREVIOUS_CHAMPION, MLCYCLE_ROLLED_BACK
from mlcycle.uris import resolve_version

#: Re-exported: the canary's decisions were defined here before the split.
__all__ = ["end_canary", "promote", "rollback", "set_canary_share"]

logger = logging.getLogger(__name__)

PREVIOUS_TAG = MLCYCLE_PREVIOUS_CHAMPION


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

    with registry_lock(client, name, lock_uri(settings)):
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
            make_champion(client, name, v)
            if previous is not None and previous != v:
                client.set_model_version_tag(name, v, PREVIOUS_TAG, previous)

        run_id = audited(
            client,
            name,
            Before.read(client, name, v),
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
    with registry_lock(client, name, lock_uri(settings)):
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
            make_champion(client, name, target)
            client.set_model_version_tag(name, current, MLCYCLE_ROLLED_BACK, reason)

        run_id = audited(
            client,
            name,
            Before.read(client, name, target),
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
