"""The one place that builds ``models:/`` URIs and resolves registry versions.

API: :func:`model_uri`, :func:`logged_model_uri`, :func:`logged_model_id`,
:func:`parse_model_uri`, :func:`check_model_uri`, :func:`resolve_version` (the one version
resolver), :func:`is_not_found`; constants :data:`CHAMPION` (the default alias),
:data:`CHALLENGER`, :data:`STAGES`, :data:`NOT_FOUND_CODES`.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from mlcycle.errors import ConfigError, ModelNotFound

#: The alias mlcycle serves and monitors, and the one a URI or lookup names by default.
CHAMPION = "champion"
#: The alias of the version waiting for the gate.
CHALLENGER = "challenger"
#: MLflow's registry stages (deprecated in MLflow 3 but still resolved by ``models:/NAME/Stage``).
STAGES = ("None", "Staging", "Production", "Archived")
#: MLflow error codes meaning "no such model, version or alias", as opposed to a registry that
#: could not be asked (those errors propagate).
NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"})

_MODELS_RE = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<ref>[^/]+))$")
_LOGGED_PREFIX = "models:/m-"


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
    return f"models:/{name}@{(alias or CHAMPION).lstrip('@')}"


def logged_model_uri(model_id: str) -> str:
    """The ``models:/<model_id>`` URI of an MLflow 3 logged model (``m-…``)."""
    return f"models:/{model_id}"


def logged_model_id(uri: str) -> str | None:
    """The logged model id a ``models:/m-…`` URI names, else ``None``."""
    if not uri.startswith(_LOGGED_PREFIX):
        return None
    return uri.removeprefix("models:/").strip("/")


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None] | None:
    """``(name, alias, version-or-stage)`` of ``models:/NAME@alias`` / ``models:/NAME/ref``.

    ``None`` for anything else (runs, paths, logged model ids).
    """
    m = _MODELS_RE.match(uri)
    if m is None:
        return None
    return m.group("name"), m.group("alias"), m.group("ref")


def stage_name(text: str) -> str | None:
    """MLflow's spelling of a stage given in any case, or ``None`` when it is no stage."""
    return next((s for s in STAGES if s.lower() == text.lower()), None)


def is_not_found(exc: BaseException) -> bool:
    """Whether an MLflow error says the model, version or alias does not exist."""
    return getattr(exc, "error_code", None) in NOT_FOUND_CODES


def resolve_version(
    client: Any,
    name: str,
    version: str | int | None = None,
    *,
    alias: str | None = None,
    stage: str | None = None,
) -> Any:
    """The ``ModelVersion`` of ``name`` given by version, else stage, else alias.

    With no version and no stage the alias names it: ``@champion`` unless another is given
    (``alias=CHALLENGER`` reads "this version, or the challenger when none is given").

    Args:
        client: an ``MlflowClient``.
        name: registered model name.
        version: a version number.
        alias: the alias to follow when ``version`` and ``stage`` are ``None``.
        stage: a stage (any case) whose latest version is wanted.

    Raises:
        ModelNotFound: unknown model, version, stage, or unset alias.
        MlflowException: the registry could not be asked (not a "not found").
    """
    try:
        if version is not None:
            return client.get_model_version(name, str(version))
        if stage is not None:
            canonical = stage_name(stage)
            if canonical is None:
                raise ModelNotFound(f"'{stage}' is not a stage ({', '.join(STAGES)})")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                found = client.get_latest_versions(name, stages=[canonical])
            if not found:
                raise ModelNotFound(f"model '{name}' has no version in stage {canonical}")
            return found[0]
        return client.get_model_version_by_alias(name, (alias or CHAMPION).lstrip("@"))
    except Exception as exc:
        if not is_not_found(exc):
            raise
        _require_model(client, name)
        if version is not None:
            raise ModelNotFound(f"model '{name}' has no version '{version}'") from exc
        if stage is not None:
            raise ModelNotFound(f"model '{name}' has no version in stage {stage}") from exc
        raise ModelNotFound(
            f"model '{name}' has no @{(alias or CHAMPION).lstrip('@')}; give a version"
        ) from exc


def _require_model(client: Any, name: str) -> None:
    try:
        client.get_registered_model(name)
    except Exception as exc:
        if is_not_found(exc):
            raise ModelNotFound(f"no registered model named '{name}'") from exc
        raise


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
