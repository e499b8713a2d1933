"""The one place that builds ``models:/`` URIs.

API: :func:`model_uri`, :func:`check_model_uri`.
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
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ConfigError(f"'{name}' is not a registered model name (no '/', '\\' or '..')")
    given = [x for x in (alias, stage, version) if x is not None]
    if len(given) > 1:
        raise ConfigError("give at most one of alias, stage and version")
    if version is not None:
        return f"models:/{name}/{version}"
    if stage is not None:
        return f"models:/{name}/{stage}"
    return f"models:/{name}@{(alias or 'champion').lstrip('@')}"


def check_model_uri(uri: str) -> str:
    """Refuse a ``models:/`` or ``runs:/`` URI whose path climbs with ``..`` or holds a NUL.

    MLflow joins such paths onto artifact roots; mlcycle never needs them.

    Raises:
        ConfigError: the URI has a ``..`` segment (``/`` or ``\\`` separated, or
            percent-encoded) or a NUL byte.
    """
    from urllib.parse import unquote

    if uri.startswith(("models:/", "runs:/")):
        plain = unquote(uri)
        segments = plain.replace("\\", "/").split("/")
        if "\x00" in plain or ".." in segments:
            raise ConfigError(f"model URI '{uri}' must not contain '..' path segments")
    return uri
