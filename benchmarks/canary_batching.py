"""Canary batching: one batcher for both arms against one batcher per arm, in process.

A model whose call costs a fixed ``--call-ms`` (sleeping, as a native model releases the GIL)
is scored by 16 closed-loop clients, each request one row, a tenth of them for the challenger.
Three layouts of :class:`mlcycle.serve.batching.MicroBatcher`: one model alone; the canary
with a batcher per arm sharing the predict thread (what ``mlcycle serve --canary`` did before);
the canary with both arms in one batcher (what it does now). Prints req/s, model calls and
rows per call of each arm, and each canary's req/s as a ratio of the single model's. No HTTP:
this isolates the batching from parsing and the network, which ``serving.py`` measures.

    python benchmarks/canary_batching.py --call-ms 4 --seconds 3 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mlcycle.serve.batching import MicroBatcher


class FixedCost:
    """A model whose every call takes ``seconds`` whatever its rows."""

    def __init__(self, seconds: float, calls: list[int]) -> None:
        self.seconds = seconds
        self.calls = calls

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        time.sleep(self.seconds)
        self.calls.append(len(columns["x"]))
        return np.zeros(len(columns["x"]))


async def run(layout: str, share: float, call_s: float, seconds: float, clients: int) -> dict:
    calls: dict[str, list[int]] = {"champion": [], "challenger": []}
    champion = FixedCost(call_s, calls["champion"])
    challenger = FixedCost(call_s, calls["challenger"])
    one = MicroBatcher(lambda: champion, arm="champion")
    batchers = [one]
    submit: Callable[[str], Any]
    if layout == "one batcher":
        one.add_arm("challenger", lambda: challenger)

        def submit(arm: str) -> Any:
            return one.submit({"x": np.zeros(1)}, 1, arm=arm)
    else:
        other = MicroBatcher(lambda: challenger, executor=one.executor)
        batchers.append(other)

        def submit(arm: str) -> Any:
            return (one if arm == "champion" else other).submit({"x": np.zeros(1)}, 1)

    for b in batchers:
        b.start()
    done = 0
    rng = random.Random(0)
    end = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done
        while time.monotonic() < end:
            arm = "challenger" if rng.random() < share else "champion"
            await asyncio.sleep(0.0003)  # reading and parsing the request
            await submit(arm)
            done += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    for b in reversed(batchers):
        await b.stop()
    return {"rps": done / seconds, "calls": calls}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--call-ms", type=float, default=4.0, help="Cost of one model call.")
    ap.add_argument("--seconds", type=float, default=3.0, help="Per layout and round.")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--share", type=float, default=0.1, help="The challenger's share.")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    layouts = [("single model", 0.0, "one batcher"), ("canary, batcher per arm", args.share,
               "per arm"), ("canary, one batcher", args.share, "one batcher")]  # fmt: skip
    rps: dict[str, list[float]] = {label: [] for label, _, _ in layouts}
    last: dict[str, dict] = {}
    for r in range(args.rounds):  # alternating, so each layout sees the same machine load
        for label, share, layout in layouts[r % 3 :] + layouts[: r % 3]:
            out = asyncio.run(run(layout, share, args.call_ms / 1000, args.seconds, args.clients))
            rps[label].append(out["rps"])
            last[label] = out
    single = rps["single model"]
    for label, _, _ in layouts:
        ratios = [x / s for x, s in zip(rps[label], single, strict=True)]
        per_arm = ", ".join(
            f"{arm} {len(c)} calls x {sum(c) / len(c):.1f} rows"
            for arm, c in last[label]["calls"].items()
            if c
        )
        print(
            f"{label:25s} {statistics.median(rps[label]):7.0f} req/s  "
            f"{statistics.median(ratios):.2f}x single (rounds {min(ratios):.2f}-{max(ratios):.2f})"
            f"  last round: {per_arm}"
        )


if __name__ == "__main__":
    main()
