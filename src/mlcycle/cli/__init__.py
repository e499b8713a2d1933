"""The ``mlcycle`` command line: parse, call a stage function, render, map errors.

This package is the only code that prints or exits, and the only one that imports click.
Every command builds its settings and MLflow client here (the composition root,
``_common.context``) and passes them to the stage functions. One module per stage:

- ``_common``: the root group, error mapping, logging set-up, settings and client;
- ``_options``: option blocks several commands share (gate, monitor, ``--json``, ...);
- ``train``: ``train``, ``search-worker``;
- ``registry``: ``register``, ``gate``, ``promote``, ``rollback``, ``history``;
- ``serve``: ``serve``, ``build-docker``;
- ``batch``: ``predict``;
- ``monitor``: ``monitor``, ``loop``;
- ``canary``: ``canary``;
- ``stack``: ``server``;
- ``demo``: ``scenario``, ``demo``.
"""

from __future__ import annotations

# Importing a command module registers its commands on the group.
from mlcycle.cli import batch, canary, demo, monitor, registry, serve, stack, train  # noqa: F401
from mlcycle.cli._common import cli, own_process

__all__ = ["cli", "main"]


def main(prog_name: str | None = None) -> None:
    """The ``mlcycle`` executable (and ``python -m mlcycle``): a process of mlcycle's own."""
    own_process()
    cli(prog_name=prog_name)
