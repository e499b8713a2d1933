"""``loop --every`` is read by pandas.Timedelta; bad schedules are usage errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner

from mlcycle.cli import cli
from mlcycle.errors import ConfigError
from mlcycle.monitoring.loop import parse_period


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
        ("1D", timedelta(days=1)),
        ("1H", timedelta(hours=1)),
        ("1M", timedelta(minutes=1)),  # as before: units are case-insensitive
        ("3600", timedelta(hours=1)),  # a plain number is seconds
        ("1 day", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("PT90M", timedelta(minutes=90)),
        (" 2h ", timedelta(hours=2)),
    ],
)
def test_a_period_is_read_as_people_write_it(text: str, expected: timedelta) -> None:
    assert parse_period(text) == expected


@pytest.mark.parametrize("text", ["soon", "", "nat", "1y", "inf", "nan", "1e300"])
def test_a_period_that_is_not_a_duration_is_refused_with_examples(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a duration like 30s, 15m, 1h30m, 1d"):
        parse_period(text)


@pytest.mark.parametrize("text", ["0s", "-5m", "0", "P-1D"])
def test_a_period_must_be_positive(text: str) -> None:
    with pytest.raises(ConfigError, match="must be positive"):
        parse_period(text)


def test_a_bad_every_is_a_usage_error_that_names_the_option_and_the_value() -> None:
    res = CliRunner().invoke(cli, ["loop", "--model", "m", "--every", "1h30"])
    assert res.exit_code == 2
    assert "--every" in res.output and "'1h30' is not a duration" in res.output


def test_loop_accepts_hours_and_minutes_together(own_mlflow: str) -> None:
    # The period is read before anything else: past it, the unknown model is the error.
    res = CliRunner().invoke(cli, ["loop", "--model", "nope", "--every", "1h30m", "--once"])
    assert res.exit_code == 1, res.output
    assert "nope" in res.output and "--every" not in res.output


def test_more_bad_windows_than_windows_is_a_usage_error_naming_both_options() -> None:
    res = CliRunner().invoke(cli, ["loop", "--model", "m", "--bad-windows", "3", "--of-last", "2"])
    assert res.exit_code == 2
    assert "--bad-windows" in res.output and "--of-last" in res.output
    assert "bad_windows <= of_last" in res.output
