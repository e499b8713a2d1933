"""model_uri is the one place models:/ URIs are built."""

from __future__ import annotations

import pytest

from mlcycle.errors import ConfigError
from mlcycle.uris import model_uri


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
