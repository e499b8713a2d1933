"""The training configuration decides what was left open (values, not code paths)."""

from __future__ import annotations

import pytest

from mlcycle.train import TrainConfig


@pytest.mark.parametrize(
    ("given", "engine"),
    [
        ({}, "random"),
        ({"search_storage": "postgresql+psycopg2://db/optuna"}, "optuna"),
        ({"search_workers": 3}, "optuna"),
        ({"search_engine": "random", "search_storage": "sqlite:///s.db"}, "random"),
        ({"search_engine": "optuna"}, "optuna"),
    ],
)
def test_the_search_engine_is_optuna_when_the_search_is_shared_unless_chosen(
    given: dict, engine: str
) -> None:
    assert TrainConfig(data="d.csv", target="y", **given).search_engine == engine
