"""How registry writes are made: the champion moved, the state before kept, the change audited.

API: :func:`make_champion`, :class:`Before`, :func:`audited`, :func:`lock_uri`.

Used by :mod:`mlcycle.register.promote` (promote, rollback) and :mod:`mlcycle.register.canary`
(end a canary, raise its share); each runs them under
:func:`mlcycle.register.lock.registry_lock`.

Audit first: the audit run is opened before the registry changes, so a user who may edit
the model but not write the audit trail changes nothing; a change that fails half-way is
undone (stages, aliases) and its audit run records the failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlcycle.config import Settings
from mlcycle.register import audit
from mlcycle.register.core import alias_version, champion_version, set_stage
from mlcycle.register.types import CHALLENGER, CHAMPION

logger = logging.getLogger(__name__)


def make_champion(client: Any, name: str, version: str) -> None:
    """``version`` becomes ``Production`` and ``@champion``; it loses ``@challenger``."""
    # One transaction: the version enters Production and every other Production version is
    # archived. Then the alias moves; it is never deleted, so there is never zero champions.
    set_stage(client, name, version, "Production", archive=True)
    client.set_registered_model_alias(name, CHAMPION, version)
    if alias_version(client, name, CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)


@dataclass(frozen=True)
class Before:
    """What a promotion or rollback changes, read before it does: what undo restores."""

    target: str
    target_stage: str
    champion: str | None
    challenger: str | None

    @classmethod
    def read(cls, client: Any, name: str, target: str) -> Before:
        """The state of ``target``, ``@champion`` and ``@challenger`` now."""
        return cls(
            target=target,
            target_stage=str(client.get_model_version(name, target).current_stage or "None"),
            champion=champion_version(client, name),
            challenger=alias_version(client, name, CHALLENGER),
        )

    def restore(self, client: Any, name: str) -> None:
        """Put stages and aliases back as :meth:`read` found them."""
        if self.champion is not None:
            make_champion(client, name, self.champion)
        else:
            client.delete_registered_model_alias(name, CHAMPION)
        if self.target != self.champion:
            set_stage(client, name, self.target, self.target_stage)
        if self.challenger is not None:
            client.set_registered_model_alias(name, CHALLENGER, self.challenger)


def audited(
    client: Any, name: str, before: Before, change: Callable[[], None], **audit_kwargs: Any
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


def lock_uri(settings: Settings | None) -> str | None:
    """The PostgreSQL that serialises writes to an HTTP registry (``None``: the default)."""
    return settings.registry_lock_uri if settings is not None else None
