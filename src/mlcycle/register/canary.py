"""A canary's decisions in the registry: end it, or raise its traffic share.

API: :func:`end_canary`, :func:`set_canary_share`.

A canary is the version ``@challenger`` names while a server splits traffic between it and
``@champion``. Promoting it is :func:`mlcycle.register.promote.promote`. Each decision runs
under :func:`mlcycle.register.lock.registry_lock`, re-checks there that the canary is still
open, and is audited with the evidence it was taken on.
"""

from __future__ import annotations

import logging
from typing import Any

from mlcycle.config import Settings
from mlcycle.errors import ConfigError, RegistryConflict
from mlcycle.register import audit
from mlcycle.register.change import Before, audited, lock_uri
from mlcycle.register.core import alias_version, champion_version, set_stage
from mlcycle.register.lock import registry_lock
from mlcycle.register.types import CANARY_SHARE_TAG, CHALLENGER, PromotionResult
from mlcycle.tags import MLCYCLE_ROLLED_BACK
from mlcycle.uris import resolve_version

logger = logging.getLogger(__name__)


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


def _already_ended(client: Any, name: str, version: str) -> bool:
    """``version`` lost ``@challenger`` to a canary rollback: Archived, tagged rolled back."""
    mv = client.get_model_version(name, version)
    return (
        alias_version(client, name, CHALLENGER) != version
        and str(mv.current_stage or "") == "Archived"
        and MLCYCLE_ROLLED_BACK in dict(mv.tags or {})
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
    Recorded in the audit trail as ``canary_rollback`` with the evidence attached. Ending a
    canary that a concurrent decision already rolled back changes and records nothing: the
    result says ``unchanged``.

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
    with registry_lock(client, name, lock_uri(settings)):
        resolve_version(client, name, v)
        champ = champion_version(client, name)
        if champ == v:
            raise RegistryConflict(
                f"{name} version {v} is the champion; a promoted canary is undone by rollback"
            )
        if _already_ended(client, name, v):
            # The same rollback ran concurrently (two `canary --act`): it is recorded once.
            logger.info("canary of %s v%s was rolled back meanwhile; nothing to do", name, v)
            return PromotionResult(
                name, "canary_rollback", v, champ, False, reason, None, None, unchanged=True
            )
        _check_canary_open(client, name, v)

        def change() -> None:
            set_stage(client, name, v, "Archived")
            if alias_version(client, name, CHALLENGER) == v:
                client.delete_registered_model_alias(name, CHALLENGER)
            client.set_model_version_tag(name, v, MLCYCLE_ROLLED_BACK, reason)

        run_id = audited(
            client,
            name,
            Before.read(client, name, v),
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

    A share the challenger is already at (a concurrent decision took the same step) changes
    and records nothing: the result says ``unchanged``.

    Raises:
        ConfigError: a share outside ``(0, 1)``.
        ModelNotFound: unknown model or version.
        RegistryConflict: the canary is over, or already past ``share``.
    """
    if not 0 < share < 1:
        raise ConfigError(f"a canary share must be in (0, 1), not {share}")
    v = str(resolve_version(client, name, version, alias=CHALLENGER).version)
    with registry_lock(client, name, lock_uri(settings)):
        champ = champion_version(client, name)
        _check_canary_open(client, name, v)
        tags = dict(client.get_model_version(name, v).tags or {})
        before = tags.get(CANARY_SHARE_TAG)
        if before is not None and float(before) == share:
            # The same step ran concurrently (two `canary --act`): it is recorded once.
            logger.info("canary of %s v%s was raised to %s meanwhile", name, v, before)
            return PromotionResult(
                name, "canary_step", v, champ, False, reason, None, None, unchanged=True
            )
        if before is not None and float(before) > share:
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
