"""The limits and behaviour of one model server, declared once.

API: :class:`ServeOptions`, :func:`parse_share`, :data:`DEFAULTS`, :data:`CANARY_KEY_HEADER`,
and the process defaults :data:`HOST`, :data:`PORT`, :data:`WORKERS`, :data:`GRACE`.

Every default lives here: ``mlcycle serve`` passes only the options the user gave
(:meth:`ServeOptions.from_given`; its options default to ``None``), the app, the batcher and
the server read the fields, and docs/serving.md lists them. This module imports nothing heavy,
so the CLI can show the defaults in its help.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from mlcycle.errors import ConfigError

_HEADER_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # an RFC 9110 token
#: Header whose value pins a client to one arm of a canary (``--canary-key``).
CANARY_KEY_HEADER = "X-Canary-Key"
#: Interface, port, worker processes and SIGTERM grace seconds of ``mlcycle serve``.
HOST = "127.0.0.1"
PORT = 8080
WORKERS = 1
GRACE = 20.0


@dataclass(frozen=True)
class ServeOptions:
    """Limits and behaviour of one server.

    ``header_timeout``: seconds from connection (or the previous response) until a request's
    headers are complete, else the connection gets 408 and is closed. ``body_timeout``:
    seconds from the headers until the whole body has arrived, else 408 and close.
    ``max_decoded_bytes``: the uncompressed size a Parquet body's footer may declare (413
    above, checked before decoding). ``canary``: share of requests (0-1) answered by
    ``@challenger``; 0 is off. ``canary_key``: request header that pins a client to one arm.
    ``canary_seed``: seed of the draw for requests without that header.

    Raises:
        ConfigError: a value out of range, or ``shadow`` together with ``canary``.
    """

    max_body_bytes: int = 5 * 1024 * 1024
    max_rows: int = 10_000
    max_decoded_bytes: int = 64 * 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    timeout: float = 10.0
    retry_after: int = 1
    max_batch_rows: int = 64
    max_wait: float = 0.002
    max_queue_rows: int = 50_000
    reload_interval: float | None = 10.0  # 0 or None: never poll the registry
    shadow: bool = False
    canary: float = 0.0
    canary_key: str = CANARY_KEY_HEADER
    canary_seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.canary <= 1.0:
            raise ConfigError(f"canary share {self.canary!r} is not between 0 and 1")
        if self.canary and self.shadow:
            raise ConfigError(
                "--shadow and --canary cannot be combined: both use @challenger (shadow scores "
                "copies of every request and answers nobody; canary answers a share of them)"
            )
        if not _HEADER_RE.match(self.canary_key):
            raise ConfigError(f"--canary-key must be an HTTP header name, not {self.canary_key!r}")

    @classmethod
    def from_given(cls, **given: Any) -> ServeOptions:
        """Options from the values the user gave; ``None`` means "the default declared here".

        Raises:
            ConfigError: an unknown name or a bad value.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(given) - names)
        if unknown:
            raise ConfigError(f"unknown serve options: {', '.join(unknown)}")
        return cls(**{k: v for k, v in given.items() if v is not None})


#: The defaults, for help texts and docs.
DEFAULTS = ServeOptions()


def parse_share(text: str) -> float:
    """A traffic share from ``10%`` or ``0.1`` (both mean one request in ten).

    Raises:
        ConfigError: not a number, a bare number above 1 (write ``10%``), or outside 0-100 %.
    """
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw.removesuffix("%").strip())
    except ValueError:
        raise ConfigError(f"'{text}' is not a share: write it as 10% or 0.1") from None
    if percent:
        value /= 100.0
    elif value > 1.0:
        raise ConfigError(f"'{text}' is above 1: write a percentage as {raw}% or a fraction as 0.1")
    if not 0.0 < value <= 1.0:
        raise ConfigError(f"'{text}' is not a share above 0 and at most 100%")
    return value
