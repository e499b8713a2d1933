"""The one place that builds ``models:/`` URIs.

API: :func:`model_uri`.
"""

from __future__ import annotations

from mlcycle.errors import ConfigError


def model_uri(
    name: str,
    *,
    alias: str | None = None,
    stage: str | None = None,
    version: str | int | None = None,
) -> str:
    """Build the ``models:/`` URI of a registered model by alias, stage or version.

    Exactly one of ``alias``, ``stage`` and ``version`` may be given; with none the URI
    names the ``@champion`` alias, the version mlcycle serves.

    Args:
        name: registered model name.
        alias: an alias such as ``champion`` (a leading ``@`` is accepted).
        stage: a stage such as ``Production``.
        version: a version number.

    Raises:
        ConfigError: the name is empty or more than one selector is given.
    """
    if not name:
        raise ConfigError("a registered model name is required")
    given = [x for x in (alias, stage, version) if x is not None]
    if len(given) > 1:
        raise ConfigError("give at most one of alias, stage and version")
    if version is not None:
        return f"models:/{name}/{version}"
    if stage is not None:
        return f"models:/{name}/{stage}"
    return f"models:/{name}@{(alias or 'champion').lstrip('@')}"
