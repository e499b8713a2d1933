"""model_uri is the one place models:/ URIs are built."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import mlcycle
from mlcycle.errors import ConfigError, ModelNotFound
from mlcycle.uris import (
    CHALLENGER,
    CHAMPION,
    is_not_found,
    logged_model_id,
    logged_model_uri,
    model_uri,
    parse_model_uri,
    resolve_version,
)


def test_model_uri_names_the_champion_alias_by_default() -> None:
    assert model_uri("churn") == "models:/churn@champion"


def test_model_uri_builds_alias_stage_and_version_forms() -> None:
    assert model_uri("churn", alias="@challenger") == "models:/churn@challenger"
    assert model_uri("churn", stage="Production") == "models:/churn/Production"
    assert model_uri("churn", version=3) == "models:/churn/3"


def test_model_uri_refuses_two_selectors_or_no_name() -> None:
    with pytest.raises(ConfigError):
        model_uri("churn", alias="champion", version="1")
    with pytest.raises(ConfigError):
        model_uri("")


# ------------------------------------------------------------------ one builder, one resolver

SRC = Path(mlcycle.__file__).parent


def _models_uri_builders(path: Path) -> list[int]:
    """Lines that build a ``models:/`` URI by formatting or concatenation."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        first = None
        if isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            first = node.left
        if (
            isinstance(first, ast.Constant)
            and isinstance(first.value, str)
            and first.value.startswith("models:/")
        ):
            lines.append(node.lineno)
    return lines


def test_no_module_but_uris_builds_a_models_uri() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{line}"
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "uris.py" or path.parent != SRC
        for line in _models_uri_builders(path)
    ]
    assert not offenders, "build models:/ URIs with mlcycle.uris:\n" + "\n".join(offenders)


def test_the_builder_scan_sees_f_strings_and_concatenation(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('n = "x"\na = f"models:/{n}/1"\nb = "models:/" + n\nc = "models:/x@y"\n')
    assert _models_uri_builders(module) == [2, 3]


def test_logged_model_uris_round_trip() -> None:
    assert logged_model_uri("m-abc") == "models:/m-abc"
    assert logged_model_id("models:/m-abc") == "m-abc"
    assert logged_model_id("models:/churn/3") is None
    assert parse_model_uri("models:/churn@champion") == ("churn", "champion", None)
    assert parse_model_uri("models:/churn/Production") == ("churn", None, "Production")
    assert parse_model_uri("runs:/abc/model") is None


@pytest.fixture
def registry() -> tuple[Any, str]:
    """Model ``churn`` with versions 1 (Production, @champion) and 2 (@challenger)."""
    import mlflow
    from mlflow import MlflowClient

    from mlcycle.register.core import set_stage

    client = MlflowClient(mlflow.get_tracking_uri())
    client.create_registered_model("churn")
    for _ in range(2):
        client.create_model_version("churn", "file:///nowhere/model")
    set_stage(client, "churn", "1", "Production")
    client.set_registered_model_alias("churn", CHAMPION, "1")
    client.set_registered_model_alias("churn", CHALLENGER, "2")
    return client, "churn"


def test_resolve_version_by_version_alias_and_stage(registry: tuple[Any, str]) -> None:
    client, name = registry
    assert str(resolve_version(client, name).version) == "1"  # the one default alias: @champion
    assert str(resolve_version(client, name, alias=CHALLENGER).version) == "2"
    assert str(resolve_version(client, name, "2", alias=CHALLENGER).version) == "2"
    assert str(resolve_version(client, name, stage="production").version) == "1"


def test_resolve_version_says_what_is_missing(registry: tuple[Any, str]) -> None:
    client, name = registry
    with pytest.raises(ModelNotFound, match="no registered model named 'nope'"):
        resolve_version(client, "nope")
    with pytest.raises(ModelNotFound, match="no registered model named 'nope'"):
        resolve_version(client, "nope", "1")
    with pytest.raises(ModelNotFound, match="has no version '9'"):
        resolve_version(client, name, "9")
    with pytest.raises(ModelNotFound, match="has no @shadow"):
        resolve_version(client, name, alias="shadow")
    with pytest.raises(ModelNotFound, match="no version in stage Staging"):
        resolve_version(client, name, stage="Staging")
    with pytest.raises(ModelNotFound, match="not a stage"):
        resolve_version(client, name, stage="Prod")


def test_the_not_found_codes_are_mlflows(registry: tuple[Any, str]) -> None:
    from mlflow.exceptions import MlflowException

    client, name = registry
    with pytest.raises(MlflowException) as info:
        client.get_model_version(name, "9")
    assert is_not_found(info.value)
    assert not is_not_found(MlflowException("down", error_code="INTERNAL_ERROR"))
