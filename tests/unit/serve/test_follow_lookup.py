"""A followed alias that is missing is logged once, not at every reload poll."""

from __future__ import annotations

import logging

import pytest
from mlflow import MlflowClient

from mlcycle.serve.model import ModelRef, current_version


def test_a_missing_alias_is_warned_once_until_it_comes_back(caplog: pytest.LogCaptureFixture):
    client = MlflowClient()
    client.create_registered_model("followed")
    version = client.create_model_version("followed", source="file:///nowhere/model").version
    ref = ModelRef("models:/followed@challenger", "followed", "", "", "challenger", "alias")

    def warnings() -> int:
        return sum("cannot look up challenger" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.WARNING, logger="mlcycle"):
        assert [current_version(ref, client) for _ in range(5)] == [None] * 5
        assert warnings() == 1  # an ended canary: said once, not every poll

        client.set_registered_model_alias("followed", "challenger", version)
        assert current_version(ref, client) == str(version)

        client.delete_registered_model_alias("followed", "challenger")
        assert current_version(ref, client) is None
        assert current_version(ref, client) is None
        assert warnings() == 2  # gone again: said again, once
