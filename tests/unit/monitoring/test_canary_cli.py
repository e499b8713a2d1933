"""`mlcycle canary` refuses bad input with a clear message and the right exit code."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mlcycle.cli import cli


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["canary", "m", "--until", "2026-01-01"], 2, "--until needs --since"),
        (["canary", "m", "--metric", "auc"], 2, "'auc' is not one of"),
        (["canary", "m", "--min-labelled", "0"], 2, "--min-labelled"),
        (["canary", "m", "--max-error-rate", "2"], 2, "--max-error-rate"),
        (["canary", "m", "--steps", "a,b"], 1, "canary steps must be comma-separated"),
        (["canary", "m", "--steps", "0.5,0.1"], 1, "increasing shares"),
        (["canary", "nosuch"], 1, "nosuch"),
        (["canary", "m", "--since", "2026-01-02", "--until", "2026-01-01"], 1, "not after"),
        (["monitor", "--model", "m", "--current", "x.csv", "--canary"], 2, "has none"),
    ],
)
def test_bad_canary_input_is_refused(args: list[str], code: int, message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, result.output
    assert message in result.output


def test_a_bad_canary_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLCYCLE_CANARY_MAX_ERROR_RATE", "1.5")
    result = CliRunner().invoke(cli, ["canary", "m"])
    assert result.exit_code == 1 and "canary_max_error_rate" in result.output
