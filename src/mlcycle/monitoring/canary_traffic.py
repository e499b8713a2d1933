"""Canary traffic: what the server counted for each arm, read from its Prometheus text.

API: :class:`Traffic`, :func:`arm_traffic`, :func:`scrape`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlcycle.errors import DataError


@dataclass(frozen=True)
class Traffic:
    """What the server counted for one arm (from its Prometheus series)."""

    requests: int = 0
    errors: int = 0
    p99_ms: float | None = None


def _quantile_from_buckets(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            width = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / width if width else 1.0)
        prev_le, prev_count = le, count
    return prev_le


def arm_traffic(text: str, route: str = "/invocations") -> dict[tuple[str, str], Traffic]:
    """Per-arm request and error counts and p99 latency from a server's ``/metrics`` text.

    Reads the series that carry ``role`` and ``version`` labels: ``mlcycle_requests``
    (``status`` label; 5xx are errors) and ``mlcycle_request_duration_seconds`` buckets.
    Series of other routes are ignored when they carry a ``route`` label.

    Returns:
        ``{(role, version): Traffic}``; empty when the server exports no per-arm series.
    """
    from prometheus_client.parser import text_string_to_metric_families

    req: dict[tuple[str, str], list[int]] = {}
    buckets: dict[tuple[str, str], dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = s.labels
            if "role" not in labels or "version" not in labels:
                continue
            if labels.get("route", route) != route:
                continue
            key = (labels["role"], labels["version"])
            if s.name == "mlcycle_requests_total":
                counts = req.setdefault(key, [0, 0])
                counts[0] += int(s.value)
                if str(labels.get("status", "")).startswith("5"):
                    counts[1] += int(s.value)
            elif s.name == "mlcycle_request_duration_seconds_bucket":
                le = float(labels["le"])
                per = buckets.setdefault(key, {})
                per[le] = per.get(le, 0.0) + float(s.value)
    out: dict[tuple[str, str], Traffic] = {}
    for key in set(req) | set(buckets):
        q = _quantile_from_buckets(list(buckets.get(key, {}).items()), 0.99)
        n, e = req.get(key, [0, 0])
        out[key] = Traffic(n, e, None if q is None else q * 1000)
    return out


def scrape(url: str, timeout: float = 10.0) -> str:
    """The Prometheus text of a server's ``/metrics``.

    Raises:
        DataError: the server cannot be reached or answers an error.
    """
    import httpx

    try:
        r = httpx.get(url, timeout=timeout)
        r.raise_for_status()
    except httpx.HTTPError as exc:
        raise DataError(f"cannot read the server's metrics at {url}: {exc}") from exc
    return r.text
