"""Which arm of a canary answers a request: pure, the same in every worker and every restart.

API: :class:`CanaryRouter`, :func:`bucket`, :data:`BUCKETS`.

A request carrying the key header goes to the challenger when the SHA-256 of the key falls in
the first ``share`` of :data:`BUCKETS` buckets, so a client keeps its arm across requests,
workers and restarts, and raising the share only moves clients from the champion to the
challenger, never back. A request without the key is drawn from a ``random.Random(seed)``:
reproducible for one worker; with ``--workers N`` each worker draws its own sequence from the
same seed, each holding the share. An empty (or blank) key counts as no key. The share may
change while the server runs (the registry records a raised one): a request is routed by the
share passed with it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable

#: Resolution of the share: 10,000 buckets, so 0.01 % steps.
BUCKETS = 10_000


def bucket(key: bytes) -> int:
    """The bucket (0 to :data:`BUCKETS` - 1) of a key."""
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % BUCKETS


class CanaryRouter:
    """Decides, per request, whether the challenger answers."""

    def __init__(self, share: float, key_header: str, seed: int = 0) -> None:
        self.share = share
        self.key_header = key_header
        self._header = key_header.lower().encode("latin-1")
        self._threshold = round(share * BUCKETS)
        self._rng = random.Random(seed)

    def to_challenger(
        self, headers: Iterable[tuple[bytes, bytes]], share: float | None = None
    ) -> bool:
        """Whether a request with these (lower-case ASGI) headers goes to the challenger, at
        ``share`` (default: the router's own)."""
        if share is None:
            share, threshold = self.share, self._threshold
        else:
            threshold = round(share * BUCKETS)
        for k, v in headers:
            # An empty key is no key: otherwise every client that sends the header blank
            # shares one bucket and lands on one arm together, whatever the share.
            if k == self._header and v.strip():
                return bucket(v.strip()) < threshold
        return self._rng.random() < share
