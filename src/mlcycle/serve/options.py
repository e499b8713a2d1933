"""The limits and behaviour of one model server, declared once.

API: :class:`ServeOptions`, :data:`DEFAULTS`, and the process defaults :data:`HOST`,
:data:`PORT`, :data:`WORKERS`, :data:`GRACE` (fields of ``ServerConfig``).

Every default lives here: ``mlcycle serve`` passes only the options the user gave
(:meth:`ServeOptions.from_given`; its options default to ``None``), the app, the batcher and
the server read the fields, and docs/serving.md lists them. This module imports nothing heavy,
so the CLI can show the defaults in its help.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mlcycle.errors import ConfigError

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
    above, checked before decoding).
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
