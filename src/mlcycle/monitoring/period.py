"""Window lengths: ``30s``, ``15m``, ``1h30m``, ``1d`` as the loop's ``--every`` takes them.

API: :func:`parse_period`.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pandas as pd

from mlcycle.errors import ConfigError

#: A plain number is seconds.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")


def parse_period(text: str) -> timedelta:
    """A window length such as ``30s``, ``15m``, ``1h30m``, ``1d`` or ``1 day``, via pandas.

    Units are case-insensitive (``1M`` is a minute, as ``1m``); a plain number is seconds;
    ISO 8601 durations (``PT90M``) are read as pandas reads them.

    Raises:
        ConfigError: not a duration, or not a positive one.
    """
    raw = text.strip()
    if raw.startswith(("P", "-P")):
        spec = raw  # ISO 8601: its letters are upper case by definition
    else:
        # pandas spells days and weeks D and W; people write 1d, 1H, 1M (a minute).
        spec = re.sub(r"(?<![a-z])([dw])(?![a-z])", lambda m: m.group(1).upper(), raw.lower())
    try:
        value = pd.Timedelta(seconds=float(raw)) if _NUMBER.fullmatch(raw) else pd.Timedelta(spec)
    except (ValueError, OverflowError):
        value = pd.NaT
    if pd.isna(value):
        raise ConfigError(f"'{text}' is not a duration like 30s, 15m, 1h30m, 1d")
    if value <= pd.Timedelta(0):
        raise ConfigError(f"the period must be positive, not '{text}'")
    return value.to_pytimedelta()
