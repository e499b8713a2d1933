"""What `mlcycle gate` prints: the numbers it decided on, whether it passes or fails (issue 13)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner
from registry_helpers import WEAK_DROP

from mlcycle import register as reg
from mlcycle.cli import cli

NAME = "churn"


def _gate(*args: str) -> Any:
    return CliRunner().invoke(cli, ["gate", NAME, *args], catch_exceptions=False)


def test_gate_prints_both_scores_when_it_passes_and_when_it_fails(
    client: Any, train_run: Callable[..., str]
) -> None:
    reg.register(client, train_run(), NAME)
    first = _gate()
    assert first.exit_code == 0, first.output
    passed = r"PASS .*\n.*roc_auc 0\.\d{4} passes every threshold \(no champion"
    assert re.search(passed, first.output), first.output
    reg.promote(client, NAME)

    reg.register(client, train_run(), NAME)  # as good as the champion: it passes
    same = _gate()
    assert same.exit_code == 0, same.output
    assert re.search(
        r"PASS .*\n.*roc_auc (0\.\d{4}) vs champion \1 passes every threshold against champion v1",
        same.output,
    ), same.output

    reg.register(client, train_run(drop=WEAK_DROP), NAME)
    weak = _gate()
    assert weak.exit_code != 0
    assert "FAIL" in weak.output and re.search(r"0\.\d{4}.*0\.\d{4}", weak.output), weak.output
